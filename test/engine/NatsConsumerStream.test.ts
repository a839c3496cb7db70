import { AckPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream"
import { Effect, Fiber, Stream } from "effect"
import { describe, expect, it } from "vitest"
import { consumerStream } from "../../engine/Nats.ts"
import { awaitDrained } from "../../engine/Shutdown.ts"
import { natsConnect } from "../support/nats.ts"

// The engine's loops read consumers as Streams; a stop (SIGTERM, or a start that fails half-way)
// must end them even when no message is coming.
describe("stopping a consumer loop", () => {
  it("interrupting a stream over an idle consumer ends it, after it has delivered what came", async () => {
    const nc = await natsConnect()
    const jsm = await jetstreamManager(nc)
    const js = jetstream(nc)
    const name = `MF_T_CSTREAM_${Date.now()}_${process.pid}`
    await jsm.streams.add({ name, subjects: [`${name}.>`] })
    await jsm.consumers.add(name, { durable_name: "c", ack_policy: AckPolicy.Explicit })
    try {
      await Promise.all([1, 2, 3].map((n) => js.publish(`${name}.x`, String(n))))
      const messages = await (await js.consumers.get(name, "c")).consume({ max_messages: 10, expires: 5_000 })
      const seen: Array<string> = []
      const outcome = await Effect.runPromise(
        Effect.gen(function* () {
          const fiber = yield* consumerStream(messages, "consume test").pipe(
            Stream.tap((msg) => Effect.sync(() => (seen.push(msg.string()), msg.ack()))),
            Stream.runCollect,
            Effect.fork
          )
          while (seen.length < 3) yield* Effect.sleep("20 millis")
          // Nothing more will arrive: the stream is parked in the client's iterator.
          yield* Fiber.interrupt(fiber)
          return yield* Fiber.await(fiber)
        }).pipe(Effect.timeout("10 seconds"))
      )
      expect(outcome._tag).toBe("Failure")
      expect(seen).toEqual(["1", "2", "3"])
    } finally {
      await jsm.streams.delete(name)
      await nc.close()
    }
  })

  it("a drain wait inside a finalizer gives up when the budget is spent, though finalizers are uninterruptible", async () => {
    const started = Date.now()
    const result = await Effect.runPromise(
      Effect.gen(function* () {
        const never = yield* Effect.fork(Effect.never)
        // The shared budget starts at the first ask; a fresh process has all 7 s of it.
        yield* Effect.uninterruptible(awaitDrained(never))
        yield* Fiber.interrupt(never)
        return "drained"
      }).pipe(Effect.timeout("20 seconds"))
    )
    expect(result).toBe("drained")
    const elapsed = Date.now() - started
    expect(elapsed).toBeGreaterThanOrEqual(6_900)
    expect(elapsed).toBeLessThan(15_000)
  })
})
