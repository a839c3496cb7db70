import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { FileSystem } from "@effect/platform"
import { NodeContext, NodeRuntime } from "@effect/platform-node"
import { Effect, JSONSchema, type Schema } from "effect"
import { Journey } from "./Journey.ts"
import { Program } from "./Program.ts"

/**
 * JSON Schemas of the files marketers write, so editors (yaml-language-server) complete and check
 * them as they type. Run `npx tsx schemas/generate.ts` after changing a schema; a test fails while a
 * generated file is stale.
 */

export const SCHEMAS_DIR = path.dirname(fileURLToPath(import.meta.url))

interface Generated {
  readonly file: string
  readonly schema: Schema.Schema.Any
}

export const GENERATED: ReadonlyArray<Generated> = [
  { file: "program.schema.json", schema: Program },
  { file: "journey.schema.json", schema: Journey }
]

/** The exact text written to disk: the encoded side (what the YAML holds), additional keys refused. */
export const render = (schema: Schema.Schema.Any): string => `${JSON.stringify(JSONSchema.make(schema), null, 2)}\n`

const generate = Effect.gen(function* () {
  const fs = yield* FileSystem.FileSystem
  for (const { file, schema } of GENERATED) {
    const target = path.join(SCHEMAS_DIR, file)
    yield* fs.writeFileString(target, render(schema))
    yield* Effect.log(`wrote ${path.relative(process.cwd(), target)}`)
  }
})

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  NodeRuntime.runMain(generate.pipe(Effect.provide(NodeContext.layer)))
}
