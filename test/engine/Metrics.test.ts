import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { renderPrometheus } from "../../engine/Metrics.ts"

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
})
