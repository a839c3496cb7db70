import { Clock, Effect, Layer, Schedule } from "effect"
import { hostname } from "node:os"
import { publishPass } from "./ingest/Passes.ts"
import { nextTick } from "./journeys/Machine.ts"
import { JourneyRuntime } from "./JourneyRuntime.ts"
import { Nats } from "./Nats.ts"
import { ProgramRuntime } from "./ProgramRuntime.ts"
import { Topology } from "./Topology.ts"

/**
 * `schedule` (cron) journeys: at each tick, one engine (a KV lease per journey and tick) puts a tick
 * marker on the event stream, and each engine considers the members of its partitions for entry when
 * it reaches it. The slot keeps the last tick a member was considered for, so a tick is never applied
 * twice to a member, even when a crash replays it. Ticks missed while no engine ran are not replayed.
 */
export const BroadcastsLive = Layer.scopedDiscard(
  Effect.gen(function* () {
    const runtime = yield* ProgramRuntime
    const journeys = yield* JourneyRuntime
    const owner = `${hostname()}:${process.pid}`
    const started = yield* Clock.currentTimeMillis
    const nextTicks = new Map<string, number | null>()

    const context = yield* Effect.context<Nats | Topology>()
    // A tick marker on the stream: every engine considers the members of its partitions when it
    // reaches it (engine/ingest/Passes.ts).
    const broadcast = (journeyId: string, tick: number) =>
      Effect.gen(function* () {
        const now = yield* Clock.currentTimeMillis
        yield* publishPass(`mf-pass-tick-${journeyId}-${tick}`, { kind: "tick", journeyId, tick }, now).pipe(Effect.provide(context))
        yield* Effect.logInfo("broadcast started").pipe(Effect.annotateLogs({ journey: journeyId, tick: new Date(tick).toISOString() }))
      })

    const check = Effect.gen(function* () {
      const now = yield* Clock.currentTimeMillis
      const { current } = yield* journeys.current
      for (const { journey } of current) {
        if (!("schedule" in journey.trigger) || journey.status !== "active") continue
        const { cron, timezone } = journey.trigger.schedule
        const zone = timezone ?? runtime.program.timezone
        let tick = nextTicks.get(journey.id)
        if (tick === undefined) tick = nextTick(cron, zone, started)
        if (tick === null || tick > now) {
          nextTicks.set(journey.id, tick)
          continue
        }
        nextTicks.set(journey.id, nextTick(cron, zone, tick))
        if (yield* runtime.claim(`schedule.${journey.id}.${tick}`, owner)) yield* broadcast(journey.id, tick)
      }
    }).pipe(Effect.catchAllCause((cause) => Effect.logError("schedule check failed", cause)))
    yield* check.pipe(Effect.repeat(Schedule.spaced("1 second")), Effect.forkScoped)
  })
)
