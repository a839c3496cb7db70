import { readdir, readFile } from "node:fs/promises"
import * as path from "node:path"
import { Data, Effect, Either } from "effect"
import { Journey, JourneysInvalid } from "../../schemas/Journey.ts"
import type { Channel, Program } from "../../schemas/Program.ts"
import type { SourceIssue } from "../../schemas/ProgramErrors.ts"
import { PROGRAM_FILE, parseProgram } from "../program/ProgramFile.ts"
import { decodeSource, issueAt, parseYaml, sortIssues } from "../program/YamlDocument.ts"
import { checkJourneyRules } from "./JourneyFile/JourneyRules.ts"
import { checkStepGraph } from "./JourneyFile/StepGraph.ts"
import { checkTemplateUse, type TemplateFiles } from "./JourneyFile/TemplateUse.ts"
import { parseTemplates, readTemplateSources, type Templates, type TemplateSource } from "./Templates.ts"

/**
 * The journeys folder as a whole (journeys.md): program.yaml, one journey per other `*.yaml`, and
 * the templates they send. Validation never stops at the first problem: every error in every file
 * is reported at `file:line:column`, and warnings (SMS length, WeChat template messages in
 * marketing) separately. A journey's id must be its file name, which also keeps ids unique.
 */

export interface JourneyText {
  /** the path issues are labelled with */
  readonly file: string
  readonly text: string
}

/** Everything validation reads, so that validating is a pure function of it. */
export interface JourneySources {
  readonly dir: string
  readonly program: JourneyText | undefined
  readonly journeys: ReadonlyArray<JourneyText>
  readonly templates: ReadonlyArray<TemplateSource>
  /** unreadable files, a missing folder, stray template files */
  readonly errors: ReadonlyArray<SourceIssue>
  readonly warnings: ReadonlyArray<SourceIssue>
}

export interface ValidationReport {
  readonly errors: ReadonlyArray<SourceIssue>
  readonly warnings: ReadonlyArray<SourceIssue>
  readonly program: Program | undefined
  /** the journeys that passed every check, drafts included (the runtime ignores them) */
  readonly journeys: ReadonlyArray<Journey>
  readonly templates: Templates
  /** how many files were checked */
  readonly files: number
}

export interface LoadedJourneys {
  readonly program: Program
  readonly journeys: ReadonlyArray<Journey>
  readonly templates: Templates
  readonly warnings: ReadonlyArray<SourceIssue>
}

const isJourneyFile = (name: string) => /\.ya?ml$/.test(name) && name !== PROGRAM_FILE

/** The journey id a file must declare: its name without the extension. */
export const journeyIdOfFile = (file: string): string => path.basename(file).replace(/\.ya?ml$/, "")

export const readJourneySources = (dir: string): Effect.Effect<JourneySources> =>
  Effect.gen(function* () {
    const errors: Array<SourceIssue> = []
    const read = (file: string) =>
      Effect.tryPromise(() => readFile(file, "utf8")).pipe(
        Effect.map((text): JourneyText | undefined => ({ file, text })),
        Effect.catchAll((e) => {
          errors.push({ file, line: 1, column: 1, message: `cannot read: ${String(e.error)}` })
          return Effect.succeed(undefined)
        })
      )
    const entries = yield* Effect.tryPromise(() => readdir(dir, { withFileTypes: true })).pipe(
      Effect.catchAll((e) => {
        errors.push({ file: dir, line: 1, column: 1, message: `cannot read the journeys folder: ${String(e.error)}` })
        return Effect.succeed([])
      })
    )
    const names = entries.filter((e) => e.isFile()).map((e) => e.name).sort()
    let program: JourneyText | undefined
    if (names.includes(PROGRAM_FILE)) program = yield* read(path.join(dir, PROGRAM_FILE))
    else if (entries.length > 0) errors.push({ file: path.join(dir, PROGRAM_FILE), line: 1, column: 1, message: "missing: every journeys folder needs its program.yaml" })
    const journeys: Array<JourneyText> = []
    for (const name of names.filter(isJourneyFile)) {
      const text = yield* read(path.join(dir, name))
      if (text !== undefined) journeys.push(text)
    }
    const templates = yield* readTemplateSources(dir)
    return {
      dir,
      program,
      journeys,
      templates: templates.value ?? [],
      errors: [...errors, ...templates.errors],
      warnings: templates.warnings
    }
  })

/** Checks everything read; pure. */
export const validateSources = (sources: JourneySources): ValidationReport => {
  const errors: Array<SourceIssue> = [...sources.errors]
  const warnings: Array<SourceIssue> = [...sources.warnings]
  let program: Program | undefined
  if (sources.program !== undefined) {
    const parsed = parseProgram(sources.program.text, sources.program.file)
    if (Either.isLeft(parsed)) errors.push(...parsed.left.issues)
    else program = parsed.right
  }
  const templates = parseTemplates(sources.templates)
  errors.push(...templates.errors)
  warnings.push(...templates.warnings)
  const parsedTemplates = templates.value ?? { email: new Map(), sms: new Map(), wechat: new Map() }
  const namesOf = (channel: Channel) => new Set(sources.templates.filter((t) => t.channel === channel).map((t) => t.name))
  const present = { email: namesOf("email"), sms: namesOf("sms"), wechat: namesOf("wechat") }
  const files: TemplateFiles = { present, parsed: parsedTemplates }
  const journeys: Array<Journey> = []
  const firstFileOf = new Map<string, string>()
  for (const source of sources.journeys) {
    const checked = parseJourney(source, { dir: sources.dir, program, templates: files })
    errors.push(...checked.errors)
    warnings.push(...checked.warnings)
    const journey = checked.value
    if (journey === undefined) continue
    const first = firstFileOf.get(journey.id)
    if (first !== undefined) {
      errors.push(...issuesAt(source, ["id"], `journey id "${journey.id}" is already used by ${first}`))
      continue
    }
    firstFileOf.set(journey.id, source.file)
    if (checked.errors.length === 0) journeys.push(journey)
  }
  return {
    errors: sortIssues(errors),
    warnings: sortIssues(warnings),
    program,
    journeys,
    templates: parsedTemplates,
    files: (sources.program === undefined ? 0 : 1) + sources.journeys.length + sources.templates.length
  }
}

export interface JourneyCheckContext {
  /** the journeys folder, to name missing template files */
  readonly dir: string
  /** tier ids to check conditions against; undefined when program.yaml is itself invalid */
  readonly program: Program | undefined
  readonly templates: TemplateFiles
}

/** One journey file: decoded, then its rules, step graph and templates checked. */
export const parseJourney = (
  source: JourneyText,
  context: JourneyCheckContext
): { readonly value: Journey | undefined; readonly errors: ReadonlyArray<SourceIssue>; readonly warnings: ReadonlyArray<SourceIssue> } => {
  const decoded = Either.flatMap(parseYaml(source.text, source.file), (yaml) => Either.map(decodeSource(Journey, yaml), (journey) => ({ yaml, journey })))
  if (Either.isLeft(decoded)) return { value: undefined, errors: decoded.left, warnings: [] }
  const { yaml, journey } = decoded.right
  const at = (p: ReadonlyArray<string | number>, message: string, anchor?: "key" | "value" | "node") => issueAt(yaml, p, message, anchor)
  const rules = checkJourneyRules(journey, journeyIdOfFile(source.file), context.program, at)
  const templates = checkTemplateUse(journey, context.dir, context.templates, at)
  return {
    value: journey,
    errors: [...rules.errors, ...checkStepGraph(journey.steps, at), ...templates.errors],
    warnings: [...rules.warnings, ...templates.warnings]
  }
}

const issuesAt = (source: JourneyText, p: ReadonlyArray<string>, message: string): Array<SourceIssue> =>
  Either.match(parseYaml(source.text, source.file), {
    onLeft: () => [{ file: source.file, line: 1, column: 1, message }],
    onRight: (yaml) => [issueAt(yaml, p, message)]
  })

/** Reads and checks the whole folder; never fails: problems are in the report. */
export const validateDir = (dir: string): Effect.Effect<ValidationReport> =>
  Effect.map(readJourneySources(dir), validateSources).pipe(Effect.withSpan("JourneyFile.validateDir", { attributes: { dir } }))

/** The folder, usable: program, journeys and templates, or every error (warnings do not refuse it). */
export const loadJourneys = (dir: string): Effect.Effect<LoadedJourneys, JourneysInvalid> =>
  Effect.flatMap(validateDir(dir), (report) =>
    report.errors.length > 0 || report.program === undefined
      ? Effect.fail(
          new JourneysInvalid({
            issues: report.errors.length > 0 ? report.errors : [{ file: path.join(dir, PROGRAM_FILE), line: 1, column: 1, message: "missing program.yaml" }]
          })
        )
      : Effect.succeed({ program: report.program, journeys: report.journeys, templates: report.templates, warnings: report.warnings })
  )

/** What `memberflow validate` prints: errors, then warnings, each `file:line:column: …`, then a summary line. */
export const formatReport = (report: ValidationReport): string => {
  const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`
  const lines = [
    ...report.errors.map((i) => `${i.file}:${i.line}:${i.column}: ${i.message}`),
    ...report.warnings.map((i) => `${i.file}:${i.line}:${i.column}: warning: ${i.message}`)
  ]
  const verdict = report.errors.length === 0 ? "ok" : "invalid"
  lines.push(
    `${verdict}: ${plural(report.errors.length, "error")}, ${plural(report.warnings.length, "warning")} in ${plural(report.files, "file")} (${plural(report.journeys.length, "valid journey")})`
  )
  return lines.join("\n")
}

/** `memberflow validate` found errors: they are already printed, so the failure only counts them. */
export class ValidationFailed extends Data.TaggedError("ValidationFailed")<{ readonly errors: number }> {
  override get message(): string {
    return `${this.errors} error${this.errors === 1 ? "" : "s"} in the journeys folder (listed above)`
  }
}
