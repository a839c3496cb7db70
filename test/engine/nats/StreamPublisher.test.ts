import { jetstreamManager } from "@nats-io/jetstream"
import { Kvm } from "@nats-io/kv"
import type { NatsConnection } from "@nats-io/transport-node"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { PublishError, StreamPublisher } from "../../../engine/nats/StreamPublisher.ts"
import { natsConnect, uniqueTopology } from "../../support/nats.ts"

const { stream, subjectPrefix } = uniqueTopology("publisher")

describe("StreamPublisher: JetStream publishes acknowledged on one subscription", () => {
  let nc: NatsConnection
  let publisher: StreamPublisher

  beforeAll(async () => {
    nc = await natsConnect()
    const jsm = await jetstreamManager(nc)
    await jsm.streams.add({ name: stream, subjects: [`${subjectPrefix}.>`] })
    publisher = new StreamPublisher(nc, 300)
  })

  afterAll(async () => {
    publisher?.close()
    await (await jetstreamManager(nc)).streams.delete(stream).catch(() => undefined)
    await nc?.close()
  })

  it("answers each publish with its own sequence, drops a repeated Nats-Msg-Id, and writes the headers as given", async () => {
    const acks = await Promise.all(Array.from({ length: 200 }, (_, i) => publisher.publish(`${subjectPrefix}.a`, `{"n":${i}}`, { msgID: `id-${i}`, headers: [["Memberflow-Applied", "1"]] })))
    expect(new Set(acks.map((a) => a.seq)).size).toBe(200)
    expect(acks.every((a) => a.stream === stream && !a.duplicate)).toBe(true)
    const again = await publisher.publish(`${subjectPrefix}.a`, "{}", { msgID: "id-7" })
    expect(again).toEqual({ stream, seq: acks[7]!.seq, duplicate: true })
    const stored = await (await jetstreamManager(nc)).streams.getMessage(stream, { seq: acks[7]!.seq })
    expect(stored?.string()).toBe('{"n":7}')
    expect(stored?.header.get("Nats-Msg-Id")).toBe("id-7")
    expect(stored?.header.get("Memberflow-Applied")).toBe("1")
  })

  it("publishes a group for one promise: every message stored with its headers, each PubAck given with its index, repeats flagged", async () => {
    const subject = `${subjectPrefix}.group`
    const messages = Array.from({ length: 300 }, (_, i) => ({ subject, data: `{"g":${i}}`, options: { msgID: `g-${i}`, headers: [["Memberflow-Applied", "1"]] as const } }))
    const acks: Array<{ seq: number; duplicate: boolean }> = []
    await publisher.publishAll(messages, (i, ack) => {
      acks[i] = { seq: ack.seq, duplicate: ack.duplicate }
    })
    expect(acks.filter((a) => a !== undefined && !a.duplicate)).toHaveLength(300)
    expect(new Set(acks.map((a) => a.seq)).size).toBe(300)
    const jsm = await jetstreamManager(nc)
    for (const i of [0, 149, 299]) {
      const stored = await jsm.streams.getMessage(stream, { seq: acks[i]!.seq })
      expect(stored?.string()).toBe(`{"g":${i}}`)
      expect(stored?.header.get("Nats-Msg-Id")).toBe(`g-${i}`)
      expect(stored?.header.get("Memberflow-Applied")).toBe("1")
    }
    // Published again (a batch retried): each answered as the duplicate of its first write.
    const again: Array<{ seq: number; duplicate: boolean }> = []
    await publisher.publishAll(messages, (i, ack) => {
      again[i] = { seq: ack.seq, duplicate: ack.duplicate }
    })
    expect(again).toEqual(acks.map((a) => ({ seq: a.seq, duplicate: true })))
    // Without `onAck` the answers are not read, only told apart from errors.
    const before = (await jsm.streams.info(stream)).state.messages
    await publisher.publishAll([{ subject, data: "x" }, { subject, data: "y" }])
    expect((await jsm.streams.info(stream)).state.messages).toBe(before + 2)
    await expect(publisher.publishAll([])).resolves.toBeUndefined()
    expect(publisher.inFlight).toBe(0)
  })

  it("fails a group with its first refusal, read even where the PubAcks are not, and still sends the rest", async () => {
    const subject = `${subjectPrefix}.groupcas`
    const first = await publisher.publish(subject, "0", { expectLastSubjectSequence: 0 })
    const jsm = await jetstreamManager(nc)
    const before = (await jsm.streams.info(stream)).state.messages
    const refused = await publisher
      .publishAll([
        { subject: `${subjectPrefix}.fine`, data: "a", options: { msgID: "fine-a" } },
        { subject, data: "stale", options: { expectLastSubjectSequence: first.seq + 1_000 } },
        { subject: `${subjectPrefix}.fine`, data: "b", options: { msgID: "fine-b" } }
      ])
      .catch((e: unknown) => e)
    expect(refused).toBeInstanceOf(PublishError)
    expect((refused as PublishError).errCode).toBe(10071)
    // The two good messages were written all the same (a retry finds them as duplicates).
    await expect.poll(async () => (await jsm.streams.info(stream)).state.messages).toBe(before + 2)
    const none = await publisher.publishAll([{ subject: `nostream.${subjectPrefix}.y`, data: "y" }]).catch((e: unknown) => e)
    expect((none as PublishError).code).toBe(503)
    const broken = await publisher.publishAll([{ subject, data: "z", options: { msgID: "bad\nid" } }]).catch((e: unknown) => e)
    expect((broken as Error).message).toMatch(/line break/)
    await expect.poll(() => publisher.inFlight).toBe(0)
  })

  it("writes only over the expected last message of a subject (JetStream's compare-and-set), refusing with its error code", async () => {
    const subject = `${subjectPrefix}.cas`
    const first = await publisher.publish(subject, "1", { expectLastSubjectSequence: 0 })
    const second = await publisher.publish(subject, "2", { expectLastSubjectSequence: first.seq })
    expect(second.seq).toBeGreaterThan(first.seq)
    const stale = await publisher.publish(subject, "3", { expectLastSubjectSequence: first.seq }).catch((e: unknown) => e)
    expect(stale).toBeInstanceOf(PublishError)
    expect((stale as PublishError).errCode).toBe(10071)
    expect((stale as PublishError).message).toMatch(/wrong last sequence/)
    const created = await publisher.publish(subject, "4", { expectLastSubjectSequence: 0 }).catch((e: unknown) => e)
    expect((created as PublishError).errCode).toBe(10071)
  })

  it("writes KV entries as kv.create and kv.update do: read back by the KV client at the revision it answered, a stale revision refused", async () => {
    const bucket = `${stream.toLowerCase()}_kv`
    const kv = await new Kvm(nc).create(bucket, { history: 1 })
    try {
      const first = await publisher.kvWrite(bucket, "m.a", '{"v":1}', 0)
      expect((await kv.get("m.a"))?.revision).toBe(first)
      const second = await publisher.kvWrite(bucket, "m.a", '{"v":2}', first)
      const read = await kv.get("m.a")
      expect({ revision: read?.revision, value: read?.string() }).toEqual({ revision: second, value: '{"v":2}' })
      const stale = await publisher.kvWrite(bucket, "m.a", '{"v":3}', first).catch((e: unknown) => e)
      expect((stale as PublishError).errCode).toBe(10071)
      expect((await kv.get("m.a"))?.string()).toBe('{"v":2}')
    } finally {
      await kv.destroy()
    }
  })

  it("fails clearly when no stream takes the subject, when nobody answers in time, and on a header with a line break", async () => {
    const none = await publisher.publish(`nostream.${subjectPrefix}.x`, "x").catch((e: unknown) => e)
    expect(none).toBeInstanceOf(PublishError)
    expect((none as PublishError).code).toBe(503)
    // A plain subscriber takes the message and never answers: the sweep fails the publish.
    const silent = nc.subscribe(`silent.${subjectPrefix}`, { callback: () => undefined })
    const started = Date.now()
    const late = await publisher.publish(`silent.${subjectPrefix}`, "x").catch((e: unknown) => e)
    silent.unsubscribe()
    expect((late as Error).message).toMatch(/no acknowledgement within 300 ms/)
    expect(Date.now() - started).toBeGreaterThanOrEqual(300)
    const broken = await publisher.publish(`${subjectPrefix}.a`, "x", { msgID: "two\r\nlines" }).catch((e: unknown) => e)
    expect((broken as Error).message).toMatch(/line break/)
    expect(publisher.inFlight).toBe(0)
  })
})
