import { jetstream, jetstreamManager, type JsMsg } from "@nats-io/jetstream"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { NatsConnection } from "@nats-io/transport-node"
import { arrivalMs } from "../../../engine/ingest/ApplyBatch.ts"
import { dropTopology, natsConnect, type TestTopology, uniqueTopology } from "../../support/nats.ts"

/** The arrival instant as the stream stamped it, to the millisecond, the slow exact way. */
const exact = (nanos: bigint) => Number(nanos / 1_000_000n)

describe("arrivalMs: a message's arrival in the stream, in milliseconds", () => {
  let topology: TestTopology
  let nc: NatsConnection

  beforeAll(async () => {
    topology = uniqueTopology("arrival")
    nc = await natsConnect()
  })
  afterAll(async () => {
    await nc?.close()
    if (topology) await dropTopology(topology)
  })

  it("is the server's timestamp truncated to the millisecond, for real messages read from a stream", async () => {
    const js = jetstream(nc)
    await (await jetstreamManager(nc)).streams.add({ name: topology.stream, subjects: [`${topology.subjectPrefix}.>`] })
    for (let i = 0; i < 300; i++) await js.publish(`${topology.subjectPrefix}.arrival.test`, "{}")
    const consumer = await js.consumers.get(topology.stream)
    const messages = await consumer.fetch({ max_messages: 300, expires: 5_000 })
    let read = 0
    for await (const msg of messages) {
      expect(arrivalMs(msg)).toBe(exact(msg.timestampNanos))
      read++
    }
    expect(read).toBe(300)
  })

  it("is exact next to a millisecond boundary, where the parsed double is off by up to 256 ns", () => {
    // Nanosecond figures as the server writes them in the ack subject, and as the client's parsed
    // info carries them (parseInt: the nearest double).
    const cases = ["1796365591566999999", "1796365591567000000", "1796365591567000001", "1796365591566999872", "1796365591566500000"]
    for (const text of cases) {
      const msg = { info: { timestampNanos: Number.parseInt(text, 10) }, timestampNanos: BigInt(text) } as unknown as JsMsg
      expect(arrivalMs(msg), text).toBe(exact(BigInt(text)))
    }
  })
})
