import type { KV } from "@nats-io/kv"
import { Clock, Config, Effect, Ref, Schedule, Schema } from "effect"
import { createHash } from "node:crypto"
import { readdir, readFile } from "node:fs/promises"
import { join } from "node:path"
import { Journey } from "../schemas/Journey.ts"
import type { JourneySet, LoadedJourney } from "./journeys/Apply.ts"
import { loadJourneys } from "./journeys/JourneyFile.ts"
import { shortHash } from "./member/MemberState/Ids.ts"
import { Nats } from "./Nats.ts"
import { Topology } from "./Topology.ts"

const encodeJourney = Schema.encodeSync(Journey)
const decodeJourney = Schema.decodeUnknownSync(Journey)

export interface JourneyStatus {
  readonly set: JourneySet
  /** When the folder last changed into something invalid: the error, while the running set stays. */
  readonly error: string | null
  readonly loadedAt: number
}

const versioned = (journeys: ReadonlyArray<Journey>): ReadonlyArray<LoadedJourney> =>
  journeys
    .filter((journey) => journey.status !== "draft")
    .map((journey) => ({ journey, version: shortHash(JSON.stringify(encodeJourney(journey)), 10) }))

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
 */
export class JourneyRuntime extends Effect.Service<JourneyRuntime>()("memberflow/JourneyRuntime", {
  scoped: Effect.gen(function* () {
    const dir = yield* Config.string("JOURNEYS_DIR").pipe(Config.withDefault("./journeys"))
    const pollMs = yield* Config.integer("MEMBERFLOW_JOURNEYS_POLL_MS").pipe(Config.withDefault(2000))
    const { kvm, use } = yield* Nats
    const topology = yield* Topology
    const meta: KV = yield* use("open meta bucket", () => kvm.create(topology.metaBucket, { history: 5 }))

    const known = new Map<string, Journey>()
    yield* use("read journey versions", async () => {
      for await (const key of await meta.keys("journey.>")) {
        const entry = await meta.get(key)
        if (entry === null || entry.operation !== "PUT") continue
        try {
          known.set(key.split(".")[2] ?? "", decodeJourney(JSON.parse(new TextDecoder().decode(entry.value))))
        } catch {
          // a version written by an older engine that no longer decodes: its members end with missing-step
        }
      }
    })
    const remember = (journeys: ReadonlyArray<LoadedJourney>) =>
      Effect.forEach(
        journeys.filter((j) => !known.has(j.version)),
        (j) =>
          use("store journey version", () => meta.put(`journey.${j.journey.id}.${j.version}`, JSON.stringify(encodeJourney(j.journey)))).pipe(
            Effect.tap(() => Effect.sync(() => known.set(j.version, j.journey)))
          ),
        { discard: true }
      )

    const initial = versioned((yield* loadJourneys(dir)).journeys)
    yield* remember(initial)
    const status = yield* Ref.make<JourneyStatus>({ set: { current: initial, versions: known }, error: null, loadedAt: yield* Clock.currentTimeMillis })
    yield* Effect.logInfo("journeys loaded").pipe(
      Effect.annotateLogs({ journeys: initial.map((j) => `${j.journey.id}@${j.version}`).join(", "), channels: "sandbox" })
    )

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
      yield* Ref.set(status, { set: { current: next, versions: known }, error: null, loadedAt: yield* Clock.currentTimeMillis })
      yield* Effect.logInfo("journeys reloaded").pipe(Effect.annotateLogs({ journeys: next.map((j) => `${j.journey.id}@${j.version}`).join(", ") }))
    })
    yield* reload.pipe(
      Effect.catchAllCause((cause) => Effect.logError("journeys reload failed", cause)),
      Effect.repeat(Schedule.spaced(`${pollMs} millis`)),
      Effect.forkScoped
    )

    return { dir, status: Ref.get(status), current: Effect.map(Ref.get(status), (s) => s.set) } as const
  })
}) {}
