import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { observeGc, renderPrometheus } from "../../engine/Metrics.ts"

const gauge = (text: string, name: string): number => {
  const match = new RegExp(`^${name} (\\S+)$`, "m").exec(text)
  if (match === null) throw new Error(`${name} is not in /metrics`)
  return Number(match[1])
}

describe("Metrics", () => {
  it.live("the event loop's delay: a thread held 300 ms shows in the next scrape, and the scrape after starts again", () =>
    Effect.gen(function* () {
      yield* renderPrometheus
      // Let the sampler take a few turns first, then hold the thread.
      yield* Effect.sleep("50 millis")
      const until = Date.now() + 300
      while (Date.now() < until) {
        // the engine's thread, busy
      }
      yield* Effect.sleep("50 millis")
      const held = yield* renderPrometheus
      expect(held).toContain("# TYPE nodejs_eventloop_lag_max_seconds gauge")
      expect(gauge(held, "nodejs_eventloop_lag_max_seconds")).toBeGreaterThanOrEqual(0.25)
      expect(gauge(held, "nodejs_eventloop_lag_max_seconds")).toBeLessThan(2)
      expect(gauge(held, "nodejs_eventloop_lag_p99_seconds")).toBeGreaterThan(0)

      yield* Effect.sleep("100 millis")
      const after = yield* renderPrometheus
      expect(gauge(after, "nodejs_eventloop_lag_max_seconds")).toBeLessThan(0.25)
    }))

  it.live("the collector's pauses: young-generation collections counted by kind, the longest pause since the last scrape", () =>
    Effect.gen(function* () {
      observeGc()
      yield* renderPrometheus
      // Short-lived garbage, far more than a young generation holds: scavenges must run.
      let kept = 0
      for (let round = 0; round < 200; round++) {
        const garbage = Array.from({ length: 10_000 }, (_, i) => ({ i, text: `member-${round}-${i}` }))
        kept += garbage.length
      }
      expect(kept).toBe(2_000_000)
      // The observer is told of the collections after the fact, on a later turn of the loop.
      yield* Effect.sleep("50 millis")
      const text = yield* renderPrometheus
      expect(text).toContain("# TYPE memberflow_gc_pause_seconds histogram")
      const minor = /^memberflow_gc_pause_seconds_count\{kind="minor"\} (\d+)$/m.exec(text)
      expect(Number(minor?.[1])).toBeGreaterThan(0)
      expect(Number(/^memberflow_gc_pause_seconds_sum\{kind="minor"\} (\S+)$/m.exec(text)?.[1])).toBeGreaterThan(0)
      expect(text).toContain("# TYPE nodejs_gc_pause_max_seconds gauge")
      expect(gauge(text, "nodejs_gc_pause_max_seconds")).toBeGreaterThan(0)
      expect(gauge(text, "nodejs_gc_pause_max_seconds")).toBeLessThan(5)
    }))
})
