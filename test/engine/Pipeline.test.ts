import type { NatsConnection } from "@nats-io/transport-node"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type EngineProcess, eventually, startEngine } from "../support/engine.ts"
import { journeysDir } from "../support/journeys.ts"
import { dropTopology, type EventInput, natsConnect, publishEvents, type TestTopology, uniqueTopology } from "../support/nats.ts"

const DAY = 86_400_000
const ago = (days: number) => new Date(Date.now() - days * DAY).toISOString()

interface Profile {
  readonly tier: { readonly id: string }
  readonly purchase: { readonly count: number; readonly total: number }
  readonly spend365d: number
  readonly rfm: { readonly r: number; readonly f: number; readonly m: number; readonly segment: string }
  readonly tags: ReadonlyArray<string>
}

describe("the event pipeline, end to end through `memberflow run`", () => {
  let topology: TestTopology
  let nc: NatsConnection
  let engine: EngineProcess

  beforeAll(async () => {
    topology = uniqueTopology("pipeline")
    nc = await natsConnect()
    // Fixed cut points make the expected RFM segment a matter of arithmetic.
    const dir = journeysDir([["scores: quintiles", "scores: fixed"]])
    engine = await startEngine({ ...topology.env, JOURNEYS_DIR: dir }, "pipeline")
  })

  afterAll(async () => {
    await engine?.kill("SIGTERM")
    await nc?.close()
    if (topology) await dropTopology(topology)
  })

  const profile = async (memberId: string) => (await engine.get(`/members/${encodeURIComponent(memberId)}`)).body as Profile

  it("purchases in order, out of order, duplicated and refunded give exactly the right profile, tier and segment", async () => {
    const member = "alice"
    const purchase = (id: string, orderId: string, amount: number, days: number): EventInput => ({
      id,
      type: "purchase",
      memberId: member,
      occurredAt: ago(days),
      properties: { orderId, amount, currency: "CNY" }
    })
    const events: Array<EventInput> = [
      { id: "a-reg", type: "member.registered", memberId: member, occurredAt: ago(200), properties: { name: "Alice", birthday: "05-17", consent: { sms: true } } },
      purchase("a-p3", "o3", 15000, 10), // newest first: out of order
      purchase("a-p1", "o1", 3000, 100),
      purchase("a-p2", "o2", 4000, 50),
      purchase("a-p2", "o2", 4000, 50), // the same event again (inside JetStream's window: dropped there)
      purchase("a-p1-again", "o1", 3000, 100), // the same order under another event id: the engine drops it
      { id: "a-r3", type: "refund", memberId: member, occurredAt: ago(5), properties: { orderId: "o3", amount: 5000 } }
    ]
    await publishEvents(nc, topology, events)
    await eventually(async () => (await profile(member)).purchase?.total === 17000, 20_000, "alice's refund")
    const p = await profile(member)
    expect(p.purchase).toMatchObject({ count: 3, total: 17000 })
    expect(p.spend365d).toBe(17000)
    // 22,000 reached gold; the refund does not downgrade before the yearly review.
    expect(p.tier.id).toBe("gold")
    // Fixed cut points: 5 days since the last purchase → R 5; 3 orders → F 3; 17,000 → M 4.
    expect(p.rfm).toEqual({ r: 5, f: 3, m: 4, segment: "potential_loyalists" })

    await eventually(async () => {
      const rows = await engine.sql<{ purchase_total: number; tier: string; rfm_segment: string }>(
        "SELECT purchase_total, tier, rfm_segment FROM member_profiles FINAL WHERE member_id = 'alice'"
      )
      return rows.length === 1 && Number(rows[0]?.purchase_total) === 17000
    }, 10_000, "alice's row in ClickHouse")
    const [row] = await engine.sql<{ tier: string; rfm_segment: string; spend_365d: number }>(
      "SELECT tier, rfm_segment, spend_365d FROM member_profiles FINAL WHERE member_id = 'alice'"
    )
    expect(row).toMatchObject({ tier: "gold", rfm_segment: "potential_loyalists" })
    const events_ = await engine.sql<{ n: string }>("SELECT count() AS n FROM events FINAL WHERE member_id = 'alice' AND type IN ('purchase', 'refund')")
    expect(Number(events_[0]?.n)).toBe(4)
  })

  it("a late member.updated does not overwrite a newer attribute, and an opt-out takes effect", async () => {
    const member = "carol"
    await publishEvents(nc, topology, [
      { id: "c-reg", type: "member.registered", memberId: member, occurredAt: ago(30), properties: { locale: "zh-CN", consent: { sms: true, email: true } } },
      { id: "c-upd-new", type: "member.updated", memberId: member, occurredAt: ago(1), properties: { locale: "en" } },
      { id: "c-upd-old", type: "member.updated", memberId: member, occurredAt: ago(10), properties: { locale: "zh-TW" } },
      { id: "c-optout", type: "consent.updated", memberId: member, occurredAt: ago(2), properties: { channel: "sms", granted: false } }
    ])
    // The opt-out is published last: once it shows, everything before it in the stream was applied.
    await eventually(async () => {
      const body = (await engine.get(`/members/${member}`)).body as { consent?: Record<string, boolean> }
      return body.consent?.["sms"] === false
    }, 20_000, "carol's opt-out")
    const body = (await engine.get(`/members/${member}`)).body as { locale: string; consent: Record<string, boolean> }
    expect(body.locale).toBe("en")
    expect(body.consent).toMatchObject({ sms: false, email: true })
  })

  it("a tier upgrade publishes tier.changed exactly once, even when its purchase is replayed", async () => {
    const member = "bob"
    const big: EventInput = { id: "b-p1", type: "purchase", memberId: member, occurredAt: ago(3), properties: { orderId: "bo1", amount: 25000, currency: "CNY" } }
    await publishEvents(nc, topology, [big])
    await eventually(async () => (await profile(member)).tier?.id === "gold", 20_000, "bob's upgrade")
    // A re-publish under a new message id, past JetStream's duplicate window as far as NATS knows.
    const { jetstream } = await import("@nats-io/jetstream")
    await jetstream(nc).publish(`${topology.subjectPrefix}.purchase`, JSON.stringify(big), { msgID: "b-p1-replayed" })
    await eventually(async () => {
      const rows = await engine.sql<{ n: string }>("SELECT count() AS n FROM events WHERE member_id = 'bob' AND type = 'tier.changed'")
      return Number(rows[0]?.n) >= 1
    }, 20_000, "bob's tier.changed in ClickHouse")
    await eventually(async () => {
      const metrics = String((await engine.get("/metrics")).body)
      return Number(/^memberflow_events_duplicate_total (\d+)/m.exec(metrics)?.[1] ?? 0) >= 1
    }, 20_000, "the replay to be seen")
    const rows = await engine.sql<{ n: string; to: string }>(
      "SELECT count() AS n, any(JSONExtractString(properties, 'to')) AS to FROM events WHERE member_id = 'bob' AND type = 'tier.changed'"
    )
    expect({ n: Number(rows[0]?.n), to: rows[0]?.to }).toEqual({ n: 1, to: "gold" })
    // On the stream as events.md gives the engine's own events: the envelope's fields, source
    // "memberflow", marked as applied by the write that made it.
    const { jetstreamManager } = await import("@nats-io/jetstream")
    const published = await (await jetstreamManager(nc)).streams.getMessage(topology.stream, { last_by_subj: `${topology.subjectPrefix}.tier.changed` })
    const body = published!.json<Record<string, unknown>>()
    expect(Object.keys(body).sort()).toEqual(["id", "memberId", "occurredAt", "properties", "source", "type"])
    expect(body).toMatchObject({ type: "tier.changed", memberId: member, occurredAt: big.occurredAt, source: "memberflow", properties: { to: "gold", reason: "upgrade" } })
    expect(published!.header.get("Memberflow-Applied")).toBe("1")
    // The batches that published it were timed from their first publish to JetStream's last acknowledgement.
    const metrics = String((await engine.get("/metrics")).body)
    expect(Number(/^memberflow_publish_seconds_count (\d+)$/m.exec(metrics)?.[1])).toBeGreaterThanOrEqual(1)
    expect(Number(/^memberflow_publish_seconds_sum (\S+)$/m.exec(metrics)?.[1])).toBeLessThan(20)
    const p = await profile(member)
    expect(p.purchase).toMatchObject({ count: 1, total: 25000 })
  })

  it("rule tags are added and removed as the member changes, with a member_tags row for each change", async () => {
    const member = "dave"
    const buy = (id: string, amount: number): EventInput => ({
      id,
      type: "purchase",
      memberId: member,
      occurredAt: ago(1),
      properties: { orderId: id, amount, currency: "CNY" }
    })
    // 3,500 of the 5,000 silver needs: 1,500 to go, within program.yaml's 2,000 → 即將升級.
    await publishEvents(nc, topology, [buy("d-1", 3500)])
    await eventually(async () => (await profile(member)).tags?.includes("near-next-tier") === true, 20_000, "near-next-tier added")
    // 5,500 reaches silver; gold is 14,500 away → the tag goes.
    await publishEvents(nc, topology, [buy("d-2", 2000)])
    await eventually(async () => (await profile(member)).tier?.id === "silver", 20_000, "dave's silver")
    expect((await profile(member)).tags).not.toContain("near-next-tier")
    await eventually(async () => {
      const rows = await engine.sql<{ op: string }>(
        "SELECT op FROM member_tags FINAL WHERE member_id = 'dave' AND tag = 'near-next-tier' ORDER BY at, op"
      )
      return rows.map((row) => row.op).join(",") === "add,remove"
    }, 20_000, "member_tags rows for dave")
    const [row] = await engine.sql<{ source: string }>("SELECT any(source) AS source FROM member_tags FINAL WHERE member_id = 'dave'")
    expect(row?.source).toBe("near-next-tier")
  })
})
