import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Metric } from "effect"
import { Clickhouse } from "../../../engine/Clickhouse.ts"
import { makeRowSink } from "../../../engine/ingest/RowSink.ts"
import * as Metrics from "../../../engine/Metrics.ts"
import { chTime } from "../../../schemas/Rows.ts"
import { tempClickhouseLayer } from "../../support/clickhouse.ts"

const row = (id: string) => ({ rejection_id: id, received_at: chTime(Date.now()), subject: "t.sink", raw: "{}", reason: "row sink test" })

describe("the row sink", () => {
  // Live: the inserts into chDB take real time, and the offers keep coming meanwhile.
  it.live(
    "a mark comes back once the rows offered before it are in, while rows keep coming, and `flushed` once they stop and all are in",
    () =>
      Effect.gen(function* () {
        const clickhouse = yield* Clickhouse
        const sink = yield* makeRowSink(clickhouse, 1_000_000)
        const done: Array<number> = []
        let offered = 0
        let stop = false
        // A steady flow, as ingestion under a backlog: the sink is never empty while it runs.
        const producer = yield* Effect.gen(function* () {
          while (!stop) {
            const n = offered++
            yield* sink.offer([["rejected_events", [row(`sink-${n}`)]]], () => done.push(n))
            yield* Effect.sleep("2 millis")
          }
        }).pipe(Effect.fork)
        yield* Effect.sleep("50 millis")

        // Rows offered by now are in after a few inserts, though the flow has not stopped.
        const target = offered - 1
        const written = yield* sink.mark
        yield* written
        expect(done).toContain(target)

        stop = true
        yield* Fiber.join(producer)
        yield* sink.flushed
        expect(done.length).toBe(offered)
        const counted = yield* clickhouse.query<{ n: number }>("SELECT toUInt32(count()) AS n FROM rejected_events FINAL WHERE subject = 't.sink'")
        expect(counted[0]?.n).toBe(offered)
        yield* sink.stop
      }).pipe(Effect.provide(tempClickhouseLayer())),
    60_000
  )

  it.live(
    "with a gap between group commits (MEMBERFLOW_GROUP_COMMIT_MS), a steady flow goes in a few large inserts, not one per few rows, and every row lands",
    () =>
      Effect.gen(function* () {
        const clickhouse = yield* Clickhouse
        const gapMs = 300
        const sink = yield* makeRowSink(clickhouse, 1_000_000, gapMs)
        // When each batch was written: a group commit's batches are told theirs together, in one loop.
        const writtenAt: Array<number> = []
        let offered = 0
        const started = performance.now()
        while (performance.now() - started < 1_200) {
          const n = offered++
          yield* sink.offer([["rejected_events", [row(`gap-${n}`)]]], () => writtenAt.push(performance.now()))
          yield* Effect.sleep("2 millis")
        }
        const elapsed = performance.now() - started
        yield* sink.flushed
        expect(writtenAt.length).toBe(offered)
        const commits: Array<number> = []
        for (const at of writtenAt) if (commits.length === 0 || at - commits[commits.length - 1]! > 5) commits.push(at)
        // Back to back, a commit of a few rows into chDB takes tens of milliseconds: dozens of them
        // in 1.2 s. With the gap, one at the first offer and then one each 300 ms at most.
        expect(commits.length).toBeGreaterThanOrEqual(2)
        expect(commits.length).toBeLessThanOrEqual(Math.ceil(elapsed / gapMs) + 2)
        const counted = yield* clickhouse.query<{ n: number }>("SELECT toUInt32(count()) AS n FROM rejected_events FINAL WHERE rejection_id LIKE 'gap-%'")
        expect(counted[0]?.n).toBe(offered)
        yield* sink.stop
      }).pipe(Effect.provide(tempClickhouseLayer())),
    60_000
  )

  it.live(
    "an offer past the pending-rows limit waits for the inserts (counted in memberflow_row_sink_wait_seconds_total), and every row still lands",
    () =>
      Effect.gen(function* () {
        const clickhouse = yield* Clickhouse
        // Three rows may wait for ClickHouse at once: offers of two rows each soon have to wait.
        const sink = yield* makeRowSink(clickhouse, 3)
        const before = (yield* Metric.value(Metrics.rowSinkWaitSeconds)).count
        const done: Array<number> = []
        for (let n = 0; n < 40; n++) {
          yield* sink.offer([["rejected_events", [row(`limit-${n}-a`), row(`limit-${n}-b`)]]], () => done.push(n))
        }
        yield* sink.flushed
        expect(done).toEqual(Array.from({ length: 40 }, (_, n) => n))
        const waited = (yield* Metric.value(Metrics.rowSinkWaitSeconds)).count - before
        expect(waited).toBeGreaterThan(0)
        const counted = yield* clickhouse.query<{ n: number }>("SELECT toUInt32(count()) AS n FROM rejected_events FINAL WHERE rejection_id LIKE 'limit-%'")
        expect(counted[0]?.n).toBe(80)
        yield* sink.stop
      }).pipe(Effect.provide(tempClickhouseLayer())),
    60_000
  )

  it.live(
    "rows that bring a column the waiting rows lack are inserted too, after them: a later row of the same key replaces the earlier",
    () =>
      Effect.gen(function* () {
        const clickhouse = yield* Clickhouse
        const sink = yield* makeRowSink(clickhouse, 1_000_000)
        const done: Array<string> = []
        const { raw: _, ...withoutRaw } = row("cols-1")
        yield* sink.offer([["rejected_events", [{ ...withoutRaw, reason: "first" }, { ...withoutRaw, rejection_id: "cols-2" }]]], () => done.push("a"))
        yield* sink.offer([["rejected_events", [{ ...row("cols-1"), raw: "{\"x\":1}", reason: "second" }]]], () => done.push("b"))
        yield* sink.flushed
        expect(done).toEqual(["a", "b"])
        const rows = yield* clickhouse.query<{ rejection_id: string; raw: string; reason: string }>(
          "SELECT rejection_id, raw, reason FROM rejected_events FINAL WHERE rejection_id LIKE 'cols-%' ORDER BY rejection_id"
        )
        expect(rows).toEqual([
          { rejection_id: "cols-1", raw: "{\"x\":1}", reason: "second" },
          { rejection_id: "cols-2", raw: "", reason: "row sink test" }
        ])
        yield* sink.stop
      }).pipe(Effect.provide(tempClickhouseLayer())),
    60_000
  )
})
