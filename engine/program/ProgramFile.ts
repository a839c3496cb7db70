import { readFile } from "node:fs/promises"
import * as path from "node:path"
import { Effect, Either } from "effect"
import { ProgramInvalid } from "../../schemas/ProgramErrors.ts"
import { Program } from "../../schemas/Program.ts"
import { checkProgram } from "./ProgramFile/ProgramRules.ts"
import { decodeSource, parseYaml, sortIssues } from "./YamlDocument.ts"

/** journeys/program.yaml: read, parsed, decoded and checked, or every reason it is not usable. */

export const PROGRAM_FILE = "program.yaml"

/** Parses and checks program.yaml text; `file` is only used to label issues. */
export const parseProgram = (text: string, file: string): Either.Either<Program, ProgramInvalid> =>
  parseYaml(text, file).pipe(
    Either.flatMap((source) =>
      Either.flatMap(decodeSource(Program, source), (program) => {
        const issues = checkProgram(program, source)
        return issues.length === 0 ? Either.right(program) : Either.left(sortIssues(issues))
      })
    ),
    Either.mapLeft((issues) => new ProgramInvalid({ issues }))
  )

/** Loads `<dir>/program.yaml`; issues are labelled with that path so a terminal can open them. */
export const loadProgram = Effect.fn("ProgramFile.load")(function* (dir: string) {
  const file = path.join(dir, PROGRAM_FILE)
  const text = yield* Effect.tryPromise({
    try: () => readFile(file, "utf8"),
    catch: (cause) =>
      new ProgramInvalid({
        issues: [{ file, line: 1, column: 1, message: `cannot read the program: ${cause instanceof Error ? cause.message : String(cause)}` }]
      })
  })
  return yield* parseProgram(text, file)
})
