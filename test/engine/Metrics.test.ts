import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { observeGc, renderPrometheus, threadSchedule, watchHolds, type Hold } from "../../engine/Metrics.ts"

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

  it.live("a hold of the thread is told apart: on a core (busy), or blocked (neither on a core nor waiting for one), and counted in /metrics", () =>
    Effect.gen(function* () {
      const holds: Array<Hold & { readonly at: number }> = []
      const stop = watchHolds((hold) => holds.push({ ...hold, at: performance.now() }))
      const before = yield* renderPrometheus
      const counter = (text: string, name: string) => (new RegExp(`^${name} `, "m").test(text) ? gauge(text, name) : 0)
      yield* Effect.sleep("120 millis")
      // Busy 400 ms: the thread computes.
      const until = Date.now() + 400
      while (Date.now() < until) {
        // the engine's thread, busy
      }
      const busyEnd = performance.now()
      yield* Effect.sleep("120 millis")
      // Held 400 ms off the CPU: the thread blocked (as when the machine's other work has the cores).
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 400)
      const blockedEnd = performance.now()
      yield* Effect.sleep("120 millis")
      stop()
      const after = yield* renderPrometheus

      // Each is told by the first tick after it (the machine's load may add holds of its own).
      const busy = holds.find((hold) => hold.at >= busyEnd && hold.at < blockedEnd - 400)
      const blocked = holds.find((hold) => hold.at >= blockedEnd)
      expect(busy?.heldMs).toBeGreaterThanOrEqual(250)
      expect(blocked?.heldMs).toBeGreaterThanOrEqual(250)
      // Other test files share the two cores (a full suite runs three at once): a low bound for the
      // busy hold on a core, a lower one over the blocked hold (neither on a core nor waiting for one).
      expect(busy?.cpuMs).toBeGreaterThanOrEqual(60)
      expect(busy?.waitingMs).toBeTypeOf("number")
      expect(blocked?.cpuMs).toBeLessThanOrEqual(40)
      expect(blocked?.waitingMs).toBeLessThanOrEqual(40)

      const held = counter(after, "memberflow_event_loop_held_seconds_total") - counter(before, "memberflow_event_loop_held_seconds_total")
      expect(held).toBeCloseTo(holds.reduce((sum, hold) => sum + hold.heldMs, 0) / 1000, 3)
      const heldCpu = counter(after, "memberflow_event_loop_held_cpu_seconds_total") - counter(before, "memberflow_event_loop_held_cpu_seconds_total")
      expect(heldCpu).toBeCloseTo(holds.reduce((sum, hold) => sum + (hold.cpuMs ?? 0), 0) / 1000, 3)
      const heldWaiting = counter(after, "memberflow_event_loop_held_waiting_seconds_total") - counter(before, "memberflow_event_loop_held_waiting_seconds_total")
      expect(heldWaiting).toBeCloseTo(holds.reduce((sum, hold) => sum + (hold.waitingMs ?? 0), 0) / 1000, 3)
      // The thread's CPU: at least the busy hold's, and no more than the whole process's.
      expect(after).toContain("# TYPE memberflow_engine_thread_cpu_seconds_total counter")
      const thread = gauge(after, "memberflow_engine_thread_cpu_seconds_total")
      expect(thread - gauge(before, "memberflow_engine_thread_cpu_seconds_total")).toBeGreaterThanOrEqual(0.06)
      expect(gauge(after, "process_cpu_seconds_total")).toBeGreaterThanOrEqual(thread)
      expect(gauge(after, "memberflow_engine_thread_waiting_seconds_total")).toBeGreaterThanOrEqual(0)
    }))

  it("the thread's time on a core is read from /proc and grows as the thread computes, not while it sleeps", () => {
    const start = threadSchedule()
    expect(start).not.toBeNull()
    const until = Date.now() + 150
    while (Date.now() < until) {
      // busy
    }
    // Under a full suite the thread may get a third of the 150 ms; asleep it gets next to none.
    const busy = threadSchedule()!
    expect(busy.cpu - start!.cpu).toBeGreaterThan(0.02)
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 200)
    const slept = threadSchedule()!
    expect(slept.cpu - busy.cpu).toBeLessThan(0.01)
    expect(slept.waiting).toBeGreaterThanOrEqual(busy.waiting)
  })
})
