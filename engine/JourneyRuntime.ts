import type { KV } from "@nats-io/kv"
import { Clock, Config, Effect, Ref, Schedule, Schema } from "effect"
import { createHash } from "node:crypto"
import { readdir, readFile } from "node:fs/promises"
import { join } from "node:path"
import { DEFAULT_VARIANT, Journey } from "../schemas/Journey.ts"
import { chTime } from "../schemas/Rows.ts"
import { Clickhouse } from "./Clickhouse.ts"
import type { JourneySet, LoadedJourney } from "./journeys/Apply.ts"
import { CONTROL } from "./journeys/Machine.ts"
import { type Brand, brandConfig } from "./journeys/Context.ts"
import { loadJourneys } from "./journeys/JourneyFile.ts"
import { shortHash } from "./member/MemberState/Ids.ts"
import { Nats } from "./Nats.ts"
import { Topology } from "./Topology.ts"
import * as Settings from "./Settings.ts"

const encodeJourney = Schema.encodeSync(Journey)
const decodeJourney = Schema.decodeUnknownSync(Journey)

export interface JourneyStatus {
  readonly set: JourneySet
  /** When the folder last changed into something invalid: the error, while the running set stays. */
  readonly error: string | null
  readonly loadedAt: number
}

/** A journey's version: a hash of its decoded definition (the same file read twice is one version). */
export const journeyVersion = (journey: Journey): string => shortHash(JSON.stringify(encodeJourney(journey)), 10)

/** The journeys that run (drafts do not), each with its version. */
export const versioned = (journeys: ReadonlyArray<Journey>): ReadonlyArray<LoadedJourney> =>
  journeys.filter((journey) => journey.status !== "draft").map((journey) => ({ journey, version: journeyVersion(journey) }))

/** A row of journey_variants: one arm of one journey version, as planned. */
export interface JourneyVariantRow {
  readonly journey_id: string
  readonly journey_version: string
  readonly variant: string
  readonly weight_percent: number
  readonly category: string
  readonly goal_event: string | null
  readonly goal_within_seconds: number | null
  readonly loaded_at: string
}

/**
 * The arms of a journey version and the % of its entrants each is planned to get, as variantOf
 * assigns them: control its `control` %, each variant its share of the rest by weight (weights sum to
 * 100, so this is weight × (100 − control) / 100); no experiment: the default arm at 100. A planned
 * winner promotion is not reflected: the plan is the split.
 */
export const plannedArms = (journey: Journey, version: string, loadedAt: number): ReadonlyArray<JourneyVariantRow> => {
  const row = (variant: string, weightPercent: number): JourneyVariantRow => ({
    journey_id: journey.id,
    journey_version: version,
    variant,
    weight_percent: weightPercent,
    category: journey.category,
    goal_event: journey.goal?.event ?? null,
    goal_within_seconds: journey.goal === undefined ? null : Math.round(journey.goal.within / 1000),
    loaded_at: chTime(loadedAt)
  })
  const experiment = journey.experiment
  if (experiment === undefined) return [row(DEFAULT_VARIANT, 100)]
  const total = experiment.variants.reduce((sum, v) => sum + v.weight, 0)
  const rest = 100 - experiment.control
  return [
    ...(experiment.control > 0 ? [row(CONTROL, experiment.control)] : []),
    ...experiment.variants.map((v) => row(v.id, total > 0 ? (v.weight / total) * rest : 0))
  ]
}

/** A fingerprint of every file under the folder, to notice edits without trusting fs.watch. */
const fingerprint = async (dir: string): Promise<string> => {
  const hash = createHash("sha1")
  const walk = async (folder: string): Promise<void> => {
    const entries = (await readdir(folder, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))
    for (const entry of entries) {
      const file = join(folder, entry.name)
      if (entry.isDirectory()) await walk(file)
      else hash.update(file).update(await readFile(file))
    }
  }
  await walk(dir)
  return hash.digest("hex")
}

/**
 * The journeys the engine runs, from JOURNEYS_DIR: validated at start (an invalid folder stops the
 * engine with `file:line:column` errors), then watched. A changed journey becomes a new version for
 * new entries while members inside finish on the version they entered: every version is kept in
 * the meta KV bucket, so that holds across restarts and engines too. An edit that fails validation
 * is refused: the running set stays, and the error is logged and shown at /readyz and GET /journeys.
 * Each version's planned arms go to the journey_variants table, for campaign_lift's sample-ratio check.
 */
export class JourneyRuntime extends Effect.Service<JourneyRuntime>()("memberflow/JourneyRuntime", {
  scoped: Effect.gen(function* () {
    const dir = yield* Config.string("JOURNEYS_DIR").pipe(Config.withDefault("./journeys"))
    const pollMs = yield* Settings.journeysPollMs
    const { kvm, use } = yield* Nats
    const topology = yield* Topology
    const meta: KV = yield* use("open meta bucket", () => kvm.create(topology.metaBucket, { history: 5 }))

    const known = new Map<string, Journey>()
    /** When each version was first stored (its KV entry's time): the same for every engine. */
    const registeredAt = new Map<string, number>()
    yield* use("read journey versions", async () => {
      for await (const key of await meta.keys("journey.>")) {
        const entry = await meta.get(key)
        if (entry === null || entry.operation !== "PUT") continue
        try {
          const version = key.split(".")[2] ?? ""
          known.set(version, decodeJourney(JSON.parse(new TextDecoder().decode(entry.value))))
          registeredAt.set(version, entry.created.getTime())
        } catch {
          // a version written by an older engine that no longer decodes: its members end with missing-step
        }
      }
    })
    const remember = (journeys: ReadonlyArray<LoadedJourney>) =>
      Effect.forEach(
        journeys.filter((j) => !known.has(j.version)),
        (j) => {
          const key = `journey.${j.journey.id}.${j.version}`
          return use("store journey version", async () => {
            await meta.put(key, JSON.stringify(encodeJourney(j.journey)))
            return (await meta.get(key))?.created.getTime()
          }).pipe(
            Effect.flatMap((created) => Effect.map(Clock.currentTimeMillis, (now) => {
              known.set(j.version, j.journey)
              registeredAt.set(j.version, created ?? now)
            }))
          )
        },
        { discard: true }
      )

    // Every version's planned arms go to journey_variants once per process (each engine on the
    // embedded ClickHouse has its own tables). One version's rows are the same whoever writes them,
    // so the ReplacingMergeTree keeps one. A failed insert is retried at the next poll.
    const clickhouse = yield* Clickhouse
    const planned = new Set<string>()
    const recordPlans = Effect.gen(function* () {
      const pending = [...known].filter(([version]) => !planned.has(version))
      if (pending.length === 0) return
      const now = yield* Clock.currentTimeMillis
      yield* clickhouse.insert("journey_variants", pending.flatMap(([version, journey]) => plannedArms(journey, version, registeredAt.get(version) ?? now)))
      for (const [version] of pending) planned.add(version)
    }).pipe(Effect.catchAll((error) => Effect.logWarning("journey_variants not written; retrying at the next poll").pipe(Effect.annotateLogs({ error: error.message }))))

    const brand: Brand = yield* brandConfig
    const first = yield* loadJourneys(dir)
    const initial = versioned(first.journeys)
    yield* remember(initial)
    yield* recordPlans
    const status = yield* Ref.make<JourneyStatus>({ set: { current: initial, versions: known, templates: first.templates, brand, winners: new Map() }, error: null, loadedAt: yield* Clock.currentTimeMillis })
    yield* Effect.logInfo("journeys loaded").pipe(
      Effect.annotateLogs({ journeys: initial.map((j) => `${j.journey.id}@${j.version}`).join(", "), brand: brand.name })
    )
    if (brand.unsubscribeKey === null && initial.length > 0) {
      yield* Effect.logWarning("unsubscribe links in messages are unsigned, and the engine refuses them: set MEMBERFLOW_UNSUBSCRIBE_KEY (README, configuration)")
    }

    let seen = yield* Effect.promise(() => fingerprint(dir))
    const reload = Effect.gen(function* () {
      const now = yield* Effect.promise(() => fingerprint(dir))
      if (now === seen) return
      seen = now
      const loaded = yield* loadJourneys(dir).pipe(Effect.either)
      if (loaded._tag === "Left") {
        const error = loaded.left.message
        yield* Ref.update(status, (s) => ({ ...s, error }))
        yield* Effect.logError("journeys folder refused; the running versions stay").pipe(Effect.annotateLogs({ issues: error }))
        return
      }
      const next = versioned(loaded.right.journeys)
      yield* remember(next)
      yield* Ref.set(status, { set: { current: next, versions: known, templates: loaded.right.templates, brand, winners: (yield* Ref.get(status)).set.winners }, error: null, loadedAt: yield* Clock.currentTimeMillis })
      yield* Effect.logInfo("journeys reloaded").pipe(Effect.annotateLogs({ journeys: next.map((j) => `${j.journey.id}@${j.version}`).join(", ") }))
    })
    // Experiment winners promoted by engine/Experiments.ts (any engine), read back by every engine.
    const readWinners = Effect.gen(function* () {
      const winners = yield* use("read experiment winners", async () => {
        const found = new Map<string, string>()
        for await (const key of await meta.keys("winner.>")) {
          const entry = await meta.get(key)
          if (entry !== null && entry.operation === "PUT") found.set(key.slice("winner.".length), new TextDecoder().decode(entry.value))
        }
        return found
      })
      const current = (yield* Ref.get(status)).set.winners
      const same = winners.size === current.size && [...winners].every(([id, variant]) => current.get(id) === variant)
      if (!same) {
        yield* Ref.update(status, (s) => ({ ...s, set: { ...s.set, winners } }))
        yield* Effect.logInfo("experiment winners").pipe(Effect.annotateLogs({ winners: [...winners].map(([id, v]) => `${id}=${v}`).join(", ") }))
      }
    }).pipe(Effect.catchAll((error) => Effect.logWarning("experiment winners not read").pipe(Effect.annotateLogs({ error: error.message }))))
    yield* readWinners
    yield* reload.pipe(
      Effect.catchAllCause((cause) => Effect.logError("journeys reload failed", cause)),
      Effect.zipRight(recordPlans),
      Effect.zipRight(readWinners),
      Effect.repeat(Schedule.spaced(`${pollMs} millis`)),
      Effect.forkScoped
    )

    /** Promotes an experiment's winner for every engine (engine/Experiments.ts). */
    const promote = (journeyId: string, variant: string) => use("store experiment winner", () => meta.put(`winner.${journeyId}`, variant)).pipe(Effect.zipRight(readWinners))

    return { dir, status: Ref.get(status), current: Effect.map(Ref.get(status), (s) => s.set), promote } as const
  })
}) {}
