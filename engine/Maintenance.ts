import { Clock, Effect, Layer, Schedule } from "effect"
import { hostname } from "node:os"
import { chTime } from "../schemas/Rows.ts"
import { Clickhouse } from "./Clickhouse.ts"
import { Ingest, type IngestStatus } from "./Ingest.ts"
import * as Metrics from "./Metrics.ts"
import { publishPass } from "./ingest/Passes.ts"
import type { RfmCutpoints } from "./member/MemberState.ts"
import { Nats } from "./Nats.ts"
import { Topology } from "./Topology.ts"
import { ProgramRuntime } from "./ProgramRuntime.ts"
import * as Settings from "./Settings.ts"

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
 * The periodic pass: one engine per period (a KV lease) recomputes the quintile cut points from
 * ClickHouse, shares them, and puts a sweep marker on the event stream. Every engine then
 * re-evaluates the members of its partitions for what time alone changes (yearly tier reviews,
 * sliding windows, R, tag rules with `within`, entry timers of journeys deployed after a member last
 * changed) when it reaches the marker (engine/ingest/Passes.ts), in order with the events around it.
 */
export const sweep = Effect.fn("Maintenance.sweep")(function* (period: number) {
  const now = yield* Clock.currentTimeMillis
  const runtime = yield* ProgramRuntime
  const clickhouse = yield* Clickhouse
  let cutpoints: RfmCutpoints | null = null
  if (runtime.program.rfm.scores === "quintiles") {
    cutpoints = yield* computeQuintiles(now, runtime.program.rfm.window)
    if (cutpoints !== null) {
      yield* runtime.publishCutpoints(cutpoints)
      yield* clickhouse.insert("rfm_cutpoints", [{ computed_at: chTime(now), version: cutpoints.version, r: [...cutpoints.r], f: [...cutpoints.f], m: [...cutpoints.m] }])
    }
  }
  yield* publishPass(`mf-pass-sweep-${period}`, { kind: "sweep", cutpoints }, now)
  yield* Effect.logInfo("sweep started").pipe(Effect.annotateLogs({ cutpoints: cutpoints?.version ?? "unchanged" }))
})

/**
 * Whether this engine may rank the population now: it owns partitions, none of them is replaying
 * toward the stream's end, and the stream is no more than `maxLag` messages ahead of it. An engine
 * that owns nothing cannot tell how far the others are.
 */
export const caughtUp = (status: IngestStatus, maxLag: number): boolean =>
  status.owned.length > 0 && status.owned.every((part) => part.replaying === 0) && status.lag >= 0 && status.lag <= maxLag

/**
 * How long a sweep may be put off: after that it runs behind the stream all the same, with a
 * warning. An engine that never catches up (one that cannot keep up with its traffic) would
 * otherwise never recompute the cut points, review tiers or re-evaluate what time alone changes.
 */
export const SWEEP_MAX_WAIT_MS = 3_600_000

/**
 * What a tick does: rank `now` (caught up), `wait`, or rank `anyway` once it has been put off since
 * `putOffSince` for `maxWaitMs`.
 */
export const sweepDecision = (caught: boolean, putOffSince: number | null, now: number, maxWaitMs: number): "now" | "wait" | "anyway" =>
  caught ? "now" : putOffSince !== null && now - putOffSince >= maxWaitMs ? "anyway" : "wait"

export const MaintenanceLive = Layer.scopedDiscard(
  Effect.gen(function* () {
    const runtime = yield* ProgramRuntime
    const ingest = yield* Ingest
    const every = runtime.program.rfm.recompute
    const maxLag = yield* Settings.sweepMaxLag
    const owner = `${hostname()}:${process.pid}`
    const context = yield* Effect.context<Nats | Topology | Clickhouse | ProgramRuntime>()
    // An hour, or a period if that is longer.
    const maxWait = Math.max(SWEEP_MAX_WAIT_MS, every)
    // The last period this engine tried to claim, and the last it put off: each is tried and logged
    // once. Since when the sweep has been put off (null: it has not been).
    let tried = -1
    let deferred = -1
    let putOffSince: number | null = null
    // In /metrics from the start, as 0.
    Metrics.sweepPutOff.unsafeUpdate(0, [])
    const tick = Effect.gen(function* () {
      const now = yield* Clock.currentTimeMillis
      const period = Math.floor(now / every)
      if (period === tried) return
      const status = yield* ingest.status
      const decision = sweepDecision(caughtUp(status, maxLag), putOffSince, now, maxWait)
      Metrics.sweepPutOff.unsafeUpdate(decision === "wait" ? 1 : 0, [])
      if (decision === "wait") {
        putOffSince ??= now
        if (deferred !== period) {
          deferred = period
          yield* Effect.logInfo("sweep put off until this engine has caught up with the stream").pipe(
            Effect.annotateLogs({ behind: status.lag, partitions: status.owned.length })
          )
        }
        return
      }
      if (decision === "anyway") {
        yield* Effect.logWarning("sweep run behind the stream: put off too long").pipe(
          Effect.annotateLogs({ behind: status.lag, partitions: status.owned.length, putOffMs: now - (putOffSince ?? now) })
        )
      }
      putOffSince = null
      tried = period
      if (yield* runtime.claim(`sweep.${period}`, owner)) yield* sweep(period)
    }).pipe(
      Effect.provide(context),
      Effect.catchAllCause((cause) => Effect.logError("sweep failed", cause))
    )
    // Every tenth of the period (1 s at least, 5 s at most): once this period's claim is tried a tick
    // returns at once; until then it asks the stream for its end.
    yield* tick.pipe(Effect.repeat(Schedule.spaced(`${Math.min(Math.max(every / 10, 1000), 5000)} millis`)), Effect.delay("5 seconds"), Effect.forkScoped)
  })
)
