import { readdirSync, readFileSync } from "node:fs"
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

  it("the journey schema refuses unknown keys, requires what a journey must have and lets a trigger and a step have one kind", () => {
    const journey: unknown = JSON.parse(readFileSync(join(SCHEMAS_DIR, "journey.schema.json"), "utf8"))
    const oneOf = (keys: ReadonlyArray<string>) => ({ allOf: [{ oneOf: keys.map((key) => ({ required: [key] })) }] })
    expect(journey).toMatchObject({
      $ref: "#/$defs/Journey",
      $defs: {
        Journey: { required: ["id", "name", "status", "category", "trigger", "steps"], additionalProperties: false },
        Trigger: { additionalProperties: false, ...oneOf(["event", "segment", "date", "inactivity", "schedule"]) },
        Step: { required: ["id"], additionalProperties: false, ...oneOf(["send", "wait", "branch", "split", "tag", "emit", "goto", "exit"]) }
      }
    })
  })

  it("every shipped journey tells editors where its schema is", () => {
    const dir = join(SCHEMAS_DIR, "../journeys")
    const journeys = readdirSync(dir).filter((f) => f.endsWith(".yaml") && f !== "program.yaml")
    expect(journeys.length).toBeGreaterThan(0)
    for (const file of journeys) {
      expect(readFileSync(join(dir, file), "utf8").split("\n")[0], file).toBe("# yaml-language-server: $schema=../schemas/journey.schema.json")
    }
  })
})
