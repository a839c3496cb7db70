import { jetstream, jetstreamManager, type JsMsg } from "@nats-io/jetstream"
import { headers, type NatsConnection } from "@nats-io/transport-node"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { APPLIED_HEADER, isApplied, rawHeaders } from "../../../engine/ingest/RecordBatch.ts"
import { StreamPublisher } from "../../../engine/nats/StreamPublisher.ts"
import { natsConnect, uniqueTopology } from "../../support/nats.ts"

const { stream, subjectPrefix } = uniqueTopology("applied")

describe("isApplied: the engine's own already-applied events, told apart without decoding every message's headers", () => {
  let nc: NatsConnection
  let publisher: StreamPublisher

  beforeAll(async () => {
    nc = await natsConnect()
    await (await jetstreamManager(nc)).streams.add({ name: stream, subjects: [`${subjectPrefix}.>`] })
    publisher = new StreamPublisher(nc)
  })
  afterAll(async () => {
    publisher?.close()
    await (await jetstreamManager(nc)).streams.delete(stream).catch(() => undefined)
    await nc?.close()
  })

  it("agrees with the decoded headers on every kind of message, read back from a real stream", async () => {
    const js = jetstream(nc)
    const subject = `${subjectPrefix}.e`
    const other = headers()
    other.set("X-Note", `${APPLIED_HEADER}: 1`)
    const zero = headers()
    zero.set(APPLIED_HEADER, "0")
    const expected: Array<boolean> = []
    // as the engine publishes its applied events
    await publisher.publish(subject, "{}", { msgID: "a1", headers: [[APPLIED_HEADER, "1"]] })
    expected.push(true)
    // and with the header first, without a message id
    await publisher.publish(subject, "{}", { headers: [[APPLIED_HEADER, "1"]] })
    expected.push(true)
    // as an older engine did, through the client's headers object
    const h = headers()
    h.set(APPLIED_HEADER, "1")
    await js.publish(subject, "{}", { headers: h })
    expected.push(true)
    // upstream events: with a message id, without headers, another value, the text inside another header
    await js.publish(subject, "{}", { msgID: "u1" })
    expected.push(false)
    await js.publish(subject, "{}")
    expected.push(false)
    await js.publish(subject, "{}", { headers: zero })
    expected.push(false)
    await js.publish(subject, "{}", { headers: other })
    expected.push(false)

    const consumer = await js.consumers.get(stream)
    const messages = await consumer.fetch({ max_messages: expected.length, expires: 5_000 })
    const seen: Array<JsMsg> = []
    for await (const msg of messages) seen.push(msg)
    expect(seen.length).toBe(expected.length)
    for (const [i, msg] of seen.entries()) {
      // The raw path, not the fallback: a client upgrade that moves the bytes shows here.
      expect(rawHeaders(msg), `message ${i}`).not.toBeUndefined()
      expect(isApplied(msg), `message ${i}`).toBe(expected[i])
      expect(isApplied(msg), `message ${i}`).toBe(msg.headers?.get(APPLIED_HEADER) === "1")
    }
  })
})
