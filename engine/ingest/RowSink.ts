import { Deferred, Effect, Exit, Fiber, MetricLabel } from "effect"
import type { Clickhouse } from "../Clickhouse.ts"
import type { RowLines } from "../store/RowBody.ts"
import * as Metrics from "../Metrics.ts"
import { retryForever } from "./Retry.ts"

/**
 * Analyst rows on their way to ClickHouse, written by one background loop in group commits: while an
 * insert runs, the batches behind it pile up and go in the next one. An insert costs ClickHouse
 * nearly as much for a hundred rows as for ten thousand, and waiting for each batch's own insert
 * was the largest stall of the pipeline; now the pipeline waits only when the rows not yet written
 * pass `maxRows` (backpressure). Each batch's `done` runs once its rows are in.
 *
 * A batch's rows are encoded as they are offered, onto each table's lines for the next insert
 * (engine/store/RowBody.ts): what waits is bytes outside the heap, not objects the collector copies.
 *
 * A commit starts `minGapMs` after the previous one started at the soonest
 * (`MEMBERFLOW_GROUP_COMMIT_MS`, 0 by default): an insert costs the embedded ClickHouse 20–30 ms of
 * CPU whatever its size, and back to back under live traffic its inserts and merges took more of
 * the machine's CPU than the engine's own thread; a gap trades that for latency (BENCHMARKS.md,
 * 2026-12-07, morning).
 */

export type TableRows = ReadonlyArray<readonly [table: string, rows: ReadonlyArray<unknown>]>
/** Rows already encoded as lines (RowBody `encodeLine`, UTF-8), by table and the columns they are in. */
export type EncodedRows = ReadonlyArray<readonly [table: string, columns: ReadonlyArray<string>, lines: ReadonlyArray<Uint8Array>]>

export interface RowSink {
  /** Queues a batch's rows; waits only while the sink holds more than its limit. */
  readonly offer: (tables: TableRows, done: () => void, encoded?: EncodedRows) => Effect.Effect<void>
  /** Resolves once everything offered so far is written. */
  readonly flushed: Effect.Effect<void>
  /**
   * A mark behind everything offered so far, taken at once (no backpressure): the effect it gives
   * resolves once all of that is written. Under a steady flow the sink is never empty, so `flushed`
   * can wait far longer than the rows one is waiting for.
   */
  readonly mark: Effect.Effect<Effect.Effect<void>>
  readonly stop: Effect.Effect<void>
}

export const makeRowSink = (clickhouse: Clickhouse["Type"], maxRows: number, minGapMs = 0) =>
  Effect.gen(function* () {
    /** The `done` of each batch offered since the insert under way started. */
    let queue: Array<() => void> = []
    /** The lines of the next insert, by table: more than one when rows came with columns the first lacked. */
    let lines = new Map<string, Array<RowLines>>()
    let queued = 0
    let inFlight = 0
    let wake: (() => void) | null = null
    const waiters: Array<{ readonly below: number; readonly resume: () => void }> = []
    const idle: Array<() => void> = []

    const settle = () => {
      for (let i = waiters.length - 1; i >= 0; i--) {
        const waiter = waiters[i]!
        if (queued + inFlight <= waiter.below) {
          waiters.splice(i, 1)
          waiter.resume()
        }
      }
      if (queued === 0 && inFlight === 0) for (const resume of idle.splice(0)) resume()
    }

    /** When the last commit started: the next waits until `minGapMs` after it. */
    let lastStart = Number.NEGATIVE_INFINITY
    const round = Effect.gen(function* () {
      if (queue.length === 0) {
        yield* Effect.async<void>((resume) => {
          wake = () => resume(Effect.void)
        })
        wake = null
      }
      const gap = lastStart + minGapMs - Date.now()
      if (gap > 0) yield* Effect.sleep(gap)
      lastStart = Date.now()
      const taken = queue
      const inserts = lines
      queue = []
      lines = new Map()
      inFlight = queued
      queued = 0
      // Tables at once; one table's lines in the order their rows came (a later row may replace an earlier).
      yield* Effect.forEach(
        inserts,
        ([table, list]) =>
          Effect.forEach(list, (each) => {
            const started = Date.now()
            return clickhouse.insertLines(table, each).pipe(
              Effect.retry(retryForever),
              Effect.tap(() => Metrics.insertSeconds.unsafeUpdate((Date.now() - started) / 1000, [MetricLabel.make("table", table)]))
            )
          }, { discard: true }),
        { concurrency: "unbounded", discard: true }
      )
      inFlight = 0
      for (const done of taken) done()
      settle()
    })
    const fiber = yield* round.pipe(Effect.forever, Effect.forkDaemon)

    const offer: RowSink["offer"] = (tables, done, encoded = []) =>
      Effect.gen(function* () {
        let rows = 0
        for (const [, list] of tables) rows += list.length
        for (const [, , list] of encoded) rows += list.length
        if (queued + inFlight > maxRows) {
          const waiting = performance.now()
          yield* Effect.async<void>((resume) => {
            waiters.push({ below: maxRows, resume: () => resume(Effect.void) })
          })
          Metrics.rowSinkWaitSeconds.unsafeUpdate((performance.now() - waiting) / 1000, [])
        }
        for (const [table, list] of tables) {
          if (list.length === 0) continue
          const rowsOf = list as ReadonlyArray<Record<string, unknown>>
          const open = lines.get(table)
          if (open === undefined) lines.set(table, [clickhouse.encode(rowsOf)])
          else if (!open[open.length - 1]!.append(rowsOf)) open.push(clickhouse.encode(rowsOf))
        }
        for (const [table, columns, list] of encoded) {
          if (list.length === 0) continue
          let open = lines.get(table)
          if (open === undefined) lines.set(table, (open = []))
          let last = open[open.length - 1]
          if (last === undefined || !last.hasColumns(columns)) open.push((last = clickhouse.lines(columns)))
          last.appendEncoded(list)
        }
        queue.push(done)
        queued += rows
        wake?.()
      })

    const flushed: RowSink["flushed"] = Effect.suspend(() =>
      queued === 0 && inFlight === 0 && queue.length === 0
        ? Effect.void
        : Effect.async<void>((resume) => {
            idle.push(() => resume(Effect.void))
            wake?.()
          })
    )

    // Behind the batches offered so far in `queue`: its `done` runs when the insert that takes them is.
    const mark: RowSink["mark"] = Effect.gen(function* () {
      const written = yield* Deferred.make<void>()
      queue.push(() => Deferred.unsafeDone(written, Exit.void))
      wake?.()
      return Deferred.await(written)
    })

    return { offer, flushed, mark, stop: Fiber.interrupt(fiber).pipe(Effect.asVoid) } satisfies RowSink
  })
