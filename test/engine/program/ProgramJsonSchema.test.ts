import { readFileSync } from "node:fs"
import { join } from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { GENERATED, render, SCHEMAS_DIR } from "../../../schemas/generate.ts"

describe("JSON Schemas for editors", () => {
  for (const { file, schema } of GENERATED) {
    it(`schemas/${file} matches the schema it is generated from (run: npx tsx schemas/generate.ts)`, () => {
      const onDisk = readFileSync(join(SCHEMAS_DIR, file), "utf8")
      expect(onDisk).toBe(render(schema))
    })
  }

  it("the program schema refuses unknown keys and requires what program.yaml must have", () => {
    const program: unknown = JSON.parse(readFileSync(join(SCHEMAS_DIR, "program.schema.json"), "utf8"))
    expect(program).toMatchObject({
      $ref: "#/$defs/Program",
      $defs: {
        Program: {
          required: ["currency", "timezone", "tiers", "rfm"],
          additionalProperties: false
        }
      }
    })
  })

  it("the shipped program.yaml tells editors where its schema is", () => {
    const firstLine = readFileSync(join(SCHEMAS_DIR, "../journeys/program.yaml"), "utf8").split("\n")[0]
    expect(firstLine).toBe("# yaml-language-server: $schema=../schemas/program.schema.json")
  })
})
