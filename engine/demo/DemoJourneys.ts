import { Data, Effect, Either } from "effect"
import { cp, mkdir, readdir, readFile, writeFile } from "node:fs/promises"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { isMap, isScalar, isSeq, parseDocument, type Document } from "yaml"
import { parseDuration } from "../../schemas/Duration.ts"

/**
 * The shipped journeys, demo-timed: `memberflow demo` compresses days into seconds so a 30-day
 * wait passes while you watch. Only what a journey waits for moves (step waits, `until` waits,
 * event-wait timeouts, the goal window); triggers, re-entry, exits, audiences, experiments and the
 * history windows inside conditions stay as shipped, so members enter exactly as they would in
 * production. The program keeps its tiers, RFM, tags and caps; quiet hours go (they follow the
 * wall clock, which compressed days do not) and the per-channel rate limits rise (the sandbox
 * hands nothing to a provider they would protect).
 */

export class DemoJourneysFailed extends Data.TaggedError("DemoJourneysFailed")<{ readonly message: string }> {}

/** The journeys folder this package ships. */
export const SHIPPED_JOURNEYS = fileURLToPath(new URL("../../journeys", import.meta.url))

const DAY_MS = 86_400_000

/** Sends per second per channel in the demo's sandbox. */
export const DEMO_RATE_LIMIT = 1000

/** A duration scaled to demo time, in whole seconds (at least one: durations have no smaller unit). */
export const scaleDuration = (text: string, secondsPerDay: number): Either.Either<string, string> =>
  Either.map(parseDuration(text), (ms) => `${Math.max(1, Math.round((ms / DAY_MS) * secondsPerDay))}s`)

/** "wait until HH:MM" is at most a day away. */
const untilWait = (secondsPerDay: number): string => `${Math.max(1, Math.round(secondsPerDay))}s`

export interface Transformed {
  readonly text: string
  /** what changed, for the file's header and the demo's output: `pause: wait 3d → 3s` */
  readonly changes: ReadonlyArray<string>
}

const header = (lines: ReadonlyArray<string>): string => lines.map((line) => (line === "" ? "#" : `# ${line}`)).join("\n") + "\n"

const parse = (text: string, file: string): Either.Either<Document, string> => {
  const doc = parseDocument(text, { prettyErrors: false })
  const first = doc.errors[0]
  return first === undefined ? Either.right(doc) : Either.left(`${file}: ${first.message}`)
}

/**
 * One journey file, demo-timed. The rest of the file is left as written (comments included), so
 * the result validates exactly like the original.
 */
export const demoJourneyText = (text: string, file: string, secondsPerDay: number): Either.Either<Transformed, string> =>
  Either.flatMap(parse(text, file), (doc) => {
    const changes: Array<string> = []
    const problems: Array<string> = []
    const scaled = (what: string, value: unknown): string | undefined => {
      const raw = isScalar(value) ? value.value : value
      if (typeof raw !== "string") return undefined
      const result = scaleDuration(raw, secondsPerDay)
      if (Either.isLeft(result)) {
        problems.push(`${file}: ${what}: ${result.left}`)
        return undefined
      }
      changes.push(`${what} ${raw} → ${result.right}`)
      return result.right
    }
    const steps = doc.get("steps", true)
    if (isSeq(steps)) {
      for (const step of steps.items) {
        if (!isMap(step)) continue
        const id = String(step.get("id") ?? "?")
        const wait = step.get("wait", true)
        if (wait === undefined) continue
        if (isMap(wait) && wait.has("until")) {
          const next = untilWait(secondsPerDay)
          changes.push(`${id}: wait until ${String(wait.get("until"))} → ${next}`)
          step.set("wait", doc.createNode(next))
        } else if (isMap(wait) && wait.has("timeout")) {
          const next = scaled(`${id}: wait timeout`, wait.get("timeout", true))
          if (next !== undefined) wait.set("timeout", next)
        } else {
          const next = scaled(`${id}: wait`, wait)
          if (next !== undefined) step.set("wait", doc.createNode(next))
        }
      }
    }
    const goal = doc.get("goal", true)
    if (isMap(goal) && goal.has("within")) {
      const next = scaled("goal within", goal.get("within", true))
      if (next !== undefined) goal.set("within", next)
    }
    if (problems.length > 0) return Either.left(problems.join("\n"))
    const note = header([
      `DEMO-TIMED by \`memberflow demo\`: 1 day = ${secondsPerDay} s for what this journey waits for.`,
      ...(changes.length === 0 ? ["Nothing here waits: the journey is as shipped."] : changes.map((c) => `  ${c}`)),
      "Trigger, re-entry, exits, audience and experiment are as shipped. Do not deploy this copy.",
      ""
    ])
    return Either.right({ text: note + doc.toString({ lineWidth: 0 }), changes })
  })

/** program.yaml for the demo: no quiet hours, sandbox-sized rate limits; everything else as shipped. */
export const demoProgramText = (text: string, file: string): Either.Either<Transformed, string> =>
  Either.map(parse(text, file), (doc) => {
    const changes: Array<string> = []
    const policies = doc.get("policies", true)
    if (isMap(policies)) {
      if (policies.has("quietHours")) {
        policies.delete("quietHours")
        changes.push("policies.quietHours removed: quiet hours follow the wall clock, which the demo's compressed days do not")
      }
      const limits = policies.get("rateLimits", true)
      if (isMap(limits)) {
        for (const pair of limits.items) {
          const channel = isScalar(pair.key) ? String(pair.key.value) : String(pair.key)
          limits.set(channel, `${DEMO_RATE_LIMIT}/s`)
        }
        changes.push(`policies.rateLimits ${DEMO_RATE_LIMIT}/s per channel: the sandbox hands nothing to a provider`)
      }
    }
    const note = header([
      "DEMO copy written by `memberflow demo`. Changed from the shipped program.yaml:",
      ...changes.map((c) => `  ${c}`),
      "Tiers, RFM, tags, the global control group and frequency caps are as shipped. Do not deploy this copy.",
      ""
    ])
    return { text: note + doc.toString({ lineWidth: 0 }), changes }
  })

export interface DemoJourneys {
  readonly dir: string
  /** journey id → its changes */
  readonly journeys: ReadonlyMap<string, ReadonlyArray<string>>
  readonly program: ReadonlyArray<string>
}

const io = <A>(what: string, f: () => Promise<A>) =>
  Effect.tryPromise({ try: f, catch: (cause) => new DemoJourneysFailed({ message: `${what}: ${cause instanceof Error ? cause.message : String(cause)}` }) })

/**
 * Writes the demo's journeys folder: program.yaml and every journey of `source`, demo-timed, and
 * the templates as shipped.
 */
export const writeDemoJourneys = (source: string, target: string, secondsPerDay: number) =>
  Effect.gen(function* () {
    yield* io(`create ${target}`, () => mkdir(target, { recursive: true }))
    const names = (yield* io(`read ${source}`, () => readdir(source))).filter((name) => /\.ya?ml$/.test(name)).sort()
    const journeys = new Map<string, ReadonlyArray<string>>()
    let program: ReadonlyArray<string> = []
    for (const name of names) {
      const text = yield* io(`read ${name}`, () => readFile(path.join(source, name), "utf8"))
      const isProgram = name === "program.yaml"
      const result = isProgram ? demoProgramText(text, name) : demoJourneyText(text, name, secondsPerDay)
      if (Either.isLeft(result)) return yield* new DemoJourneysFailed({ message: result.left })
      yield* io(`write ${name}`, () => writeFile(path.join(target, name), result.right.text))
      if (isProgram) program = result.right.changes
      else journeys.set(name.replace(/\.ya?ml$/, ""), result.right.changes)
    }
    yield* io("copy templates", () => cp(path.join(source, "templates"), path.join(target, "templates"), { recursive: true }))
    return { dir: target, journeys, program } satisfies DemoJourneys
  })
