import { AckPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream"
import { describe, expect, it } from "vitest"
import { batcher } from "../../../engine/ingest/Batcher.ts"
import { natsConnect } from "../../support/nats.ts"

describe("batching the consumer's messages", () => {
  it("hands over every delivered message promptly, the tail of a burst included", async () => {
    const nc = await natsConnect()
    const jsm = await jetstreamManager(nc)
    const js = jetstream(nc)
    const name = `MF_T_BATCHER_${Date.now()}_${process.pid}`
    await jsm.streams.add({ name, subjects: [`${name}.>`] })
    await jsm.consumers.add(name, { durable_name: "c", ack_policy: AckPolicy.Explicit, max_ack_pending: 50_000 })
    const messages = await (await js.consumers.get(name, "c")).consume({ max_messages: 8000 })
    const next = batcher(messages, 4000, 25)
    const sizes: Array<number> = []
    let got = 0
    const loop = (async () => {
      for (;;) {
        const batch = await next()
        if (batch === null) return
        sizes.push(batch.length)
        got += batch.length
        // Slow work per batch, as the engine does: the client's pull callbacks run meanwhile.
        await new Promise((resolve) => setTimeout(resolve, 100))
        for (const msg of batch) msg.ack()
      }
    })()
    try {
      // A burst that is not a multiple of the batch size leaves a tail behind full batches.
      for (let round = 1; round <= 3; round++) {
        await Promise.all(Array.from({ length: 15_037 }, () => js.publish(`${name}.x`, "event")))
        const deadline = Date.now() + 10_000
        while (got < round * 15_037 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50))
        expect(got).toBe(round * 15_037)
      }
      expect(Math.max(...sizes)).toBeLessThanOrEqual(4000)
      messages.stop()
      await loop
      expect(await next()).toBeNull()
    } finally {
      await jsm.streams.delete(name)
      await nc.close()
    }
  })
})
