import { Clock, Effect, Layer, Schedule } from "effect"
import { hostname } from "node:os"
import { passAllMembers } from "./Ingest.ts"
import { runJourneys } from "./journeys/Apply.ts"
import { nextTick } from "./journeys/Machine.ts"
import { JourneyRuntime } from "./JourneyRuntime.ts"
import { ProgramRuntime } from "./ProgramRuntime.ts"

/**
 * `schedule` (cron) journeys: at each tick, one engine (a KV lease per journey and tick) considers
 * every member for entry, in slices, through the members' compare-and-set writes. The slot keeps the
 * last tick a member was considered for, so a tick is never applied twice to a member even if two
 * engines ran it. Ticks missed while no engine ran are not replayed.
 */
export const BroadcastsLive = Layer.scopedDiscard(
  Effect.gen(function* () {
    const runtime = yield* ProgramRuntime
    const journeys = yield* JourneyRuntime
    const owner = `${hostname()}:${process.pid}`
    const started = yield* Clock.currentTimeMillis
    const nextTicks = new Map<string, number | null>()

    const broadcast = (journeyId: string, tick: number) =>
      Effect.gen(function* () {
        const set = yield* journeys.current
        const ctx = yield* runtime.context
        const now = yield* Clock.currentTimeMillis
        const { members } = yield* passAllMembers(
          (state, options) =>
            runJourneys({ state, changed: false, applied: [], duplicates: [], derived: [] }, set, ctx, now, options, [{ journeyId, tick }]),
          ctx,
          now
        )
        yield* Effect.logInfo("broadcast done").pipe(Effect.annotateLogs({ journey: journeyId, tick: new Date(tick).toISOString(), members }))
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
