import { Clock, Effect, Layer, Schedule } from "effect"
import { hostname } from "node:os"
import { chTime } from "../schemas/Rows.ts"
import { Clickhouse } from "./Clickhouse.ts"
import { passAllMembers } from "./Ingest.ts"
import { refresh, type RfmCutpoints } from "./member/MemberState.ts"
import { runJourneys } from "./journeys/Apply.ts"
import { JourneyRuntime } from "./JourneyRuntime.ts"
import { ProgramRuntime } from "./ProgramRuntime.ts"

type Four = readonly [number, number, number, number]

/**
 * Quintile cut points from the population in ClickHouse: c_k is the value at rank ceil(k·n/5) of the
 * ascending values, so "score = 1 + cut points exceeded" ranks ties first. R ranks the last purchase
 * time (the most recent fifth scores 5). Only members with a purchase inside the window count.
 */
export const computeQuintiles = Effect.fn("Maintenance.computeQuintiles")(function* (now: number, windowMs: number) {
  const clickhouse = yield* Clickhouse
  const rows = yield* clickhouse.query<{ n: string | number; r: Array<number>; f: Array<number>; m: Array<number> }>(
    `WITH
       latest AS (
         SELECT member_id,
                argMax(last_purchase_at, version) AS lp,
                argMax(rfm_frequency, version) AS fr,
                argMax(rfm_monetary, version) AS mo
         FROM member_profiles GROUP BY member_id
       ),
       population AS (
         SELECT toFloat64(toUnixTimestamp64Milli(assumeNotNull(lp))) AS r, toFloat64(fr) AS f, toFloat64(mo) AS m
         FROM latest
         WHERE lp IS NOT NULL AND lp >= fromUnixTimestamp64Milli({since:Int64}, 'UTC') AND fr > 0
       )
     SELECT count() AS n,
            arrayMap(k -> arrayElement(arraySort(groupArray(r)), toUInt64(ceil(k * count() / 5))), [1, 2, 3, 4]) AS r,
            arrayMap(k -> arrayElement(arraySort(groupArray(f)), toUInt64(ceil(k * count() / 5))), [1, 2, 3, 4]) AS f,
            arrayMap(k -> arrayElement(arraySort(groupArray(m)), toUInt64(ceil(k * count() / 5))), [1, 2, 3, 4]) AS m
     FROM population`,
    { since: now - windowMs }
  )
  const row = rows[0]
  if (row === undefined || Number(row.n) === 0) return null
  const four = (values: Array<number>): Four => [values[0] ?? 0, values[1] ?? 0, values[2] ?? 0, values[3] ?? 0]
  return { version: String(now), r: four(row.r), f: four(row.f), m: four(row.m) } satisfies RfmCutpoints
})

/**
 * The periodic pass every engine takes part in and one engine wins per period: recompute quintile
 * cut points, then re-evaluate every member for what time alone changes (yearly tier reviews,
 * sliding windows, R, tag rules with `within`). Writes go through the same compare-and-set path as
 * events, so it is safe alongside ingestion on any engine.
 */
export const sweep = Effect.fn("Maintenance.sweep")(function* () {
  const now = yield* Clock.currentTimeMillis
  const runtime = yield* ProgramRuntime
  const clickhouse = yield* Clickhouse
  const journeySet = yield* (yield* JourneyRuntime).current
  if (runtime.program.rfm.scores === "quintiles") {
    const cut = yield* computeQuintiles(now, runtime.program.rfm.window)
    if (cut !== null) {
      yield* runtime.publishCutpoints(cut)
      yield* clickhouse.insert("rfm_cutpoints", [{ computed_at: chTime(now), version: cut.version, r: [...cut.r], f: [...cut.f], m: [...cut.m] }])
    }
  }
  const ctx = yield* runtime.context
  // Journeys too: entry timers for date and inactivity journeys members have none for yet (a
  // journey deployed after they last changed).
  const { members, written } = yield* passAllMembers(
    (state, options) => runJourneys(refresh(state, ctx, now, options), journeySet, ctx, now, options),
    ctx,
    now
  )
  yield* Effect.logInfo("sweep done").pipe(Effect.annotateLogs({ members, changed: written }))
  return { members, changed: written }
})

export const MaintenanceLive = Layer.scopedDiscard(
  Effect.gen(function* () {
    const runtime = yield* ProgramRuntime
    const every = runtime.program.rfm.recompute
    const owner = `${hostname()}:${process.pid}`
    const tick = Effect.gen(function* () {
      const now = yield* Clock.currentTimeMillis
      if (yield* runtime.claim(`sweep.${Math.floor(now / every)}`, owner)) yield* sweep()
    }).pipe(Effect.catchAllCause((cause) => Effect.logError("sweep failed", cause)))
    yield* tick.pipe(Effect.repeat(Schedule.spaced(`${Math.max(every / 10, 1000)} millis`)), Effect.delay("5 seconds"), Effect.forkScoped)
  })
)
