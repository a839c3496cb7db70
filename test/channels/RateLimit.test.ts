import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, TestClock } from "effect"
import { intervalOf, makeRateLimiter } from "../../channels/RateLimit.ts"

describe("engine-wide rate limits per channel", () => {
  it("reads program.yaml's rates as the spacing between two sends", () => {
    expect(intervalOf("20/s")).toBe(50)
    expect(intervalOf("100/m")).toBe(600)
    expect(intervalOf("3600/h")).toBe(1000)
    expect(intervalOf(undefined)).toBeNull()
    expect(intervalOf("0/s")).toBeNull()
    expect(intervalOf("fast")).toBeNull()
  })

  it.effect("an excess waits for its slot (backpressure) and none is dropped: 20/s lets 10 sends through in 450 ms", () =>
    Effect.gen(function* () {
      const limiter = yield* makeRateLimiter(intervalOf("20/s"))
      const done: Array<number> = []
      const sends = yield* Effect.forEach(
        Array.from({ length: 10 }, (_, i) => i),
        (i) => limiter.take.pipe(Effect.zipRight(Effect.sync(() => done.push(i)))),
        { concurrency: "unbounded" }
      ).pipe(Effect.fork)
      yield* TestClock.adjust(0)
      expect(done).toHaveLength(1)
      yield* TestClock.adjust(200)
      expect(done).toHaveLength(5)
      yield* TestClock.adjust(250)
      expect(done).toHaveLength(10)
      yield* Fiber.join(sends)
    })
  )

  it.effect("no limit configured: nobody waits", () =>
    Effect.gen(function* () {
      const limiter = yield* makeRateLimiter(null)
      const waited = yield* Effect.forEach(Array.from({ length: 5 }), () => limiter.take)
      expect(waited).toEqual([0, 0, 0, 0, 0])
    })
  )
})
