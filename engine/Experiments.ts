import { Clock, Effect, Layer, Schedule } from "effect"
import { Clickhouse } from "./Clickhouse.ts"
import { type ArmCounts, pickWinner } from "./journeys/Winner.ts"
import { JourneyRuntime } from "./JourneyRuntime.ts"
import * as Settings from "./Settings.ts"

/**
 * `experiment.winner` promotion: every MEMBERFLOW_EXPERIMENTS_CHECK_MS, each running journey with a
 * winner rule and no winner yet is judged from campaign_lift (engine/journeys/Winner.ts). A winner
 * is stored in the meta KV bucket, so every engine gives it to new non-control entrants from then
 * on; members already inside keep their variant, and control stays control (the holdout goes on
 * measuring). Once promoted, the arms no longer follow the planned split: campaign_lift's
 * sample-ratio check will flag them, which is expected.
 */
export const ExperimentsLive = Layer.scopedDiscard(
  Effect.gen(function* () {
    const every = yield* Settings.experimentsCheckMs
    const runtime = yield* JourneyRuntime
    const clickhouse = yield* Clickhouse
    const check = Effect.gen(function* () {
      const set = yield* runtime.current
      for (const { journey } of set.current) {
        const experiment = journey.experiment
        if (experiment?.winner === undefined || set.winners.has(journey.id)) continue
        const id = journey.id.replace(/[^a-z0-9-]/g, "")
        const arms = yield* clickhouse.query<{ variant: string; enrolled: number; converted: number; p_value: number | null; lift: number | null }>(
          `SELECT variant, enrolled, converted, p_value, lift FROM campaign_lift WHERE journey_id = '${id}'`
        )
        const started = yield* clickhouse.query<{ first: string | null }>(
          `SELECT if(count() = 0, NULL, toString(toUnixTimestamp64Milli(min(entered_at)))) AS first FROM journey_enrollments WHERE journey_id = '${id}'`
        )
        const first = started[0]?.first
        const counts: Array<ArmCounts> = arms.map((a) => ({
          variant: a.variant,
          enrolled: Number(a.enrolled),
          converted: Number(a.converted),
          pValue: a.p_value === null ? null : Number(a.p_value),
          lift: a.lift === null ? null : Number(a.lift)
        }))
        const decision = pickWinner(experiment, counts, first === null || first === undefined ? null : Number(first), yield* Clock.currentTimeMillis)
        if (decision.kind !== "winner") continue
        yield* runtime.promote(journey.id, decision.variant)
        yield* Effect.logInfo("experiment winner promoted").pipe(Effect.annotateLogs({ journey: journey.id, variant: decision.variant, why: decision.reason }))
      }
    }).pipe(Effect.catchAll((error) => Effect.logWarning("experiment check failed; next time").pipe(Effect.annotateLogs({ error: error.message }))))
    yield* check.pipe(Effect.repeat(Schedule.spaced(`${every} millis`)), Effect.delay(`${Math.min(every, 30_000)} millis`), Effect.forkScoped)
  })
)
