import { DeliverPolicy, jetstream, jetstreamManager, type JsMsg } from "@nats-io/jetstream"
import { headers, type NatsConnection } from "@nats-io/transport-node"
import { MessageChannel } from "node:worker_threads"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { eventLine } from "../../../engine/ingest/ApplyBatch.ts"
import { decodeDelivered, type Delivered, deliver, encodeDelivered } from "../../../engine/ingest/Delivered.ts"
import { partitionOf, partitionOfSequence } from "../../../engine/ingest/Partition.ts"
import { PASS_MEMBER } from "../../../engine/ingest/Passes.ts"
import { APPLIED_HEADER } from "../../../engine/ingest/RecordBatch.ts"
import { dropTopology, natsConnect, type TestTopology, uniqueTopology } from "../../support/nats.ts"

/** What the engine's thread compares: the payload as bytes of one kind, the row left out. */
const comparable = ({ row: _, data, ...item }: Delivered) => ({ ...item, data: data === null ? null : Buffer.from(data).toString("hex") })

describe("events decoded on the reader's thread reach the engine's thread as they were decoded there", () => {
  let topology: TestTopology
  let nc: NatsConnection

  beforeAll(async () => {
    topology = uniqueTopology("delivered")
    nc = await natsConnect()
  })
  afterAll(async () => {
    await nc?.close()
    if (topology) await dropTopology(topology)
  })

  it("accepted and refused alike, in stream order, each event with its events row as the engine's thread would make it, the engine's own applied events left out", async () => {
    const js = jetstream(nc)
    await (await jetstreamManager(nc)).streams.add({ name: topology.stream, subjects: [`${topology.subjectPrefix}.>`] })
    const at = new Date(Date.now() - 86_400_000).toISOString()
    const subject = (type: string) => `${topology.subjectPrefix}.${type}`
    const json = (event: object) => JSON.stringify(event)
    const payloads: Array<readonly [string, string | Uint8Array]> = [
      [subject("member.registered"), json({ id: "d-1", type: "member.registered", memberId: "王小明", occurredAt: at, properties: { name: "王小明 \"小王\" \\ 😀", phone: "+8613800138000", email: "wang@example.com", consent: { sms: true } } })],
      [subject("purchase"), json({ id: "d-2", type: "purchase", memberId: "王小明", occurredAt: at, properties: { orderId: "订单-1", amount: 1299.5, currency: "CNY", channel: "store" } })],
      [subject("page.viewed"), json({ id: "d-3", type: "page.viewed", memberId: "m\u00e9", occurredAt: at, source: "miniapp", properties: { page: "/a?b=\u2028c", nested: { list: [1, -0.5, 1e-7, 12345678901234], none: null, yes: true } } })],
      [subject("purchase"), "{ not json"],
      [subject("purchase"), new Uint8Array([0xff, 0xfe, 0x00, 0x7b])],
      [subject("refund"), json({ id: "d-4", type: "purchase", memberId: "m1", occurredAt: at, properties: { orderId: "o", amount: 1, currency: "CNY" } })],
      [subject("checkin"), json({ id: "d-5", type: "checkin", memberId: "m1", occurredAt: at })]
    ]
    for (const [s, data] of payloads) await js.publish(s, data)
    const applied = headers()
    applied.set(APPLIED_HEADER, "1")
    await js.publish(subject("tier.changed"), json({ id: "d-6", type: "tier.changed", memberId: "m1", occurredAt: at, source: "memberflow", properties: { from: null, to: "gold" } }), { headers: applied })

    const consumer = await js.consumers.get(topology.stream)
    const messages: Array<JsMsg> = []
    for await (const msg of await consumer.fetch({ max_messages: payloads.length + 1, expires: 5_000 })) messages.push(msg)
    expect(messages).toHaveLength(payloads.length + 1)

    const read = deliver(messages, { subjectPrefix: topology.subjectPrefix, maxBytes: 64 * 1024 })
    // The engine's own applied event is not handed on, but the batch reads through it.
    expect(read.through).toBe(messages[messages.length - 1]!.seq)
    expect(read.items.map((item) => item.seq)).toEqual(messages.slice(0, payloads.length).map((msg) => msg.seq))
    expect(read.items.map((item) => item.event?.id ?? null)).toEqual(["d-1", "d-2", "d-3", null, null, null, "d-5"])

    // Across threads as the reader sends it: the text copied, the rows' buffer transferred.
    const { text, rows } = encodeDelivered(read)
    const { port1, port2 } = new MessageChannel()
    const received = new Promise<{ text: string; rows: ArrayBuffer }>((resolve) => port2.once("message", resolve))
    port1.postMessage({ text, rows }, [rows])
    const across = await received
    port1.close()
    expect(rows.byteLength).toBe(0)
    const taken = decodeDelivered(read.through, across.text, across.rows)

    expect(taken.through).toBe(read.through)
    expect(taken.items.map(comparable)).toEqual(read.items.map(comparable))
    for (const item of taken.items) {
      if (item.event === null) {
        expect(item.row).toBeNull()
        continue
      }
      // Byte for byte the line the engine's thread makes from the event (contact points masked).
      expect(Buffer.from(item.row!).toString("utf8")).toBe(eventLine(item.event, item.arrival))
    }
    const registered = Buffer.from(taken.items[0]!.row!).toString("utf8")
    expect(registered).not.toContain("13800138000")
    expect(registered).not.toContain("wang@example.com")
    // Refusals keep their reason, subject and exact payload.
    expect(taken.items[4]!.reason).toBe("payload is not valid UTF-8")
    expect(Buffer.from(taken.items[4]!.data!)).toEqual(Buffer.from([0xff, 0xfe, 0x00, 0x7b]))
    expect(taken.items[5]!.reason).toMatch(/does not match subject/)
    expect(taken.items[5]!.subject).toBe(subject("refund"))
  })

  it("with the partitions an engine owns, hands on only their events and refusals, and every pass marker", async () => {
    const js = jetstream(nc)
    const at = new Date(Date.now() - 86_400_000).toISOString()
    const subject = (type: string) => `${topology.subjectPrefix}.${type}`
    const members = Array.from({ length: 40 }, (_, i) => `filtered-${i}`)
    const first = (await js.publish(subject("checkin"), JSON.stringify({ id: "f-0", type: "checkin", memberId: members[0], occurredAt: at }))).seq
    for (let i = 1; i < members.length; i++) await js.publish(subject("checkin"), JSON.stringify({ id: `f-${i}`, type: "checkin", memberId: members[i], occurredAt: at }))
    for (let i = 0; i < 8; i++) await js.publish(subject("checkin"), "not json")
    await js.publish(subject("memberflow.pass"), JSON.stringify({ id: "f-pass", type: "memberflow.pass", memberId: PASS_MEMBER, occurredAt: at, source: "memberflow", properties: { kind: "sweep" } }))
    const consumer = await js.consumers.get(topology.stream, { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: first })
    const messages: Array<JsMsg> = []
    for await (const msg of await consumer.fetch({ max_messages: members.length + 9, expires: 5_000 })) messages.push(msg)
    expect(messages).toHaveLength(members.length + 9)
    const owned = new Set([1, 3])
    const read = deliver(messages, { subjectPrefix: topology.subjectPrefix, maxBytes: 64 * 1024 }, { count: 4, owned })
    const all = deliver(messages, { subjectPrefix: topology.subjectPrefix, maxBytes: 64 * 1024 })
    const ours = all.items.filter((item) =>
      item.event?.memberId === PASS_MEMBER || owned.has(item.event === null ? partitionOfSequence(item.seq, 4) : partitionOf(item.event.memberId, 4))
    )
    expect(read.items.map(comparable)).toEqual(ours.map(comparable))
    expect(read.through).toBe(all.through)
    // Some of each kind on either side of the filter.
    expect(read.items.some((item) => item.event === null)).toBe(true)
    expect(read.items.some((item) => item.event?.id === "f-pass")).toBe(true)
    expect(read.items.filter((item) => item.event?.type === "checkin").length).toBeGreaterThan(0)
    expect(read.items.length).toBeLessThan(all.items.length)
  })
})
