import { type NatsConnection } from "@nats-io/transport-node"
import { connect } from "@nats-io/transport-node"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type EngineProcess, eventually, startEngine } from "../support/engine.ts"
import { journeysDir } from "../support/journeys.ts"
import { dropTopology, type EventInput, natsConnect, publishEvents, publishRaw, type TestTopology, uniqueTopology } from "../support/nats.ts"
import { privateNats, type PrivateNats } from "../support/natsServer.ts"

const DAY = 86_400_000
const ago = (days: number) => new Date(Date.now() - days * DAY).toISOString()

/** A mix of members and event kinds, Chinese text and escapes included; each refund is of an earlier purchase of its member. */
const eventsFor = (prefix: string, count: number): Array<EventInput> =>
  Array.from({ length: count }, (_, i): EventInput => {
    const memberId = `${prefix}-会员-${i % 7}`
    const id = `${prefix}-${i}`
    if (i < 7) return { id, type: "member.registered", memberId, occurredAt: ago(300), properties: { name: `王 "${i}" \\ 😀`, phone: `+861380000000${i}`, consent: { sms: true } } }
    // A refund of the member's purchase seven events before, a day after it.
    if (i % 5 === 0 && i >= 14) return { id, type: "refund", memberId, occurredAt: ago(199 - ((i - 7) % 190)), properties: { orderId: `${prefix}-o-${i - 7}`, amount: 10 } }
    if (i % 5 === 0) return { id, type: "checkin", memberId, occurredAt: ago(1) }
    if (i % 5 === 1) return { id, type: "page.viewed", memberId, occurredAt: ago(i % 90), source: "miniapp", properties: { page: `/商品/${i}`, nested: { list: [i, -0.5, 1e-7] } } }
    return { id, type: "purchase", memberId, occurredAt: ago(200 - (i % 190)), properties: { orderId: `${prefix}-o-${i}`, amount: 100 + i * 13.5, currency: "CNY", channel: i % 2 === 0 ? "store" : "online" } }
  })

interface EventRowSeen {
  readonly event_id: string
  readonly type: string
  readonly member_id: string
  readonly occurred_at: string
  readonly source: string
  readonly properties: string
  readonly amount: number | null
}

const eventRows = (engine: EngineProcess) =>
  engine.sql<EventRowSeen>("SELECT event_id, type, member_id, occurred_at, source, properties, amount FROM events FINAL WHERE source != 'memberflow' ORDER BY event_id")

const profileOf = async (engine: EngineProcess, memberId: string) => {
  const { purchase, spend365d, tier, rfm, tags, attributes } = (await engine.get(`/members/${encodeURIComponent(memberId)}`)).body as Record<string, unknown>
  return { purchase, spend365d, tier: (tier as { id?: unknown } | undefined)?.id, rfm, tags, attributes }
}

describe("the event reader: on its own thread (the default, from the bundle or the sources) or on the engine's (MEMBERFLOW_READER=thread)", () => {
  const topologies: Array<TestTopology> = []
  const engines: Array<EngineProcess> = []
  let nc: NatsConnection

  beforeAll(async () => {
    nc = await natsConnect()
  })
  afterAll(async () => {
    for (const engine of engines) await engine.kill("SIGTERM")
    await nc?.close()
    for (const topology of topologies) await dropTopology(topology)
  })

  it("gives the same events rows, refusals and member profiles either way", async () => {
    const worker = uniqueTopology("readerworker")
    const thread = uniqueTopology("readerthread")
    const sources = uniqueTopology("readersources")
    topologies.push(worker, thread, sources)
    // RFM by fixed cut points: quintiles come from the population when an engine's sweep runs, whenever that is.
    const dir = journeysDir([["scores: quintiles", "scores: fixed"]])
    const [onWorker, onThread, fromSources] = await Promise.all([
      startEngine({ ...worker.env, JOURNEYS_DIR: dir }, "reader-worker"),
      startEngine({ ...thread.env, JOURNEYS_DIR: dir, MEMBERFLOW_READER: "thread" }, "reader-thread"),
      // The reader's thread started from its TypeScript source through tsx, as the engine is.
      startEngine({ ...sources.env, JOURNEYS_DIR: dir, MEMBERFLOW_NO_BUNDLE: "1" }, "reader-sources")
    ])
    engines.push(onWorker, onThread, fromSources)
    const events = eventsFor("r", 300)
    for (const topology of [worker, thread, sources]) {
      await publishEvents(nc, topology, events.slice(0, 150))
      await publishRaw(nc, `${topology.subjectPrefix}.purchase`, "{ not json")
      await publishRaw(nc, `${topology.subjectPrefix}.purchase`, new Uint8Array([0xff, 0xfe, 0x7b]))
      await publishEvents(nc, topology, events.slice(150))
    }
    const applied = async (engine: EngineProcess) => (await eventRows(engine)).length === events.length
    const refused = async (engine: EngineProcess) =>
      (await engine.sql<{ n: number }>("SELECT count() AS n FROM rejected_events FINAL"))[0]?.n === 2
    for (const engine of [onWorker, onThread, fromSources]) await eventually(async () => (await applied(engine)) && (await refused(engine)), 30_000, "all rows")

    expect(await eventRows(onWorker)).toEqual(await eventRows(onThread))
    expect(await eventRows(fromSources)).toEqual(await eventRows(onThread))
    const refusals = (engine: EngineProcess) => engine.sql<{ reason: string; raw: string }>("SELECT reason, raw FROM rejected_events FINAL ORDER BY received_at")
    const seen = await refusals(onWorker)
    expect(seen.map((r) => r.reason)).toEqual(["payload is not JSON: Expected property name or '}' in JSON at position 2", "payload is not valid UTF-8"])
    expect(seen).toEqual(await refusals(onThread))
    expect(await refusals(fromSources)).toEqual(seen)
    // Contact points stay out of the events rows on both.
    expect((await eventRows(onWorker)).some((row) => row.properties.includes("13800000"))).toBe(false)
    for (let m = 0; m < 7; m++) {
      const memberId = `r-会员-${m}`
      const profile = await profileOf(onWorker, memberId)
      expect(profile.purchase).toBeDefined()
      expect(profile).toEqual(await profileOf(onThread, memberId))
      expect(await profileOf(fromSources, memberId)).toEqual(profile)
    }
  }, 90_000)
})

describe("the reader's own NATS connection", () => {
  let nats: PrivateNats | null = null
  let engine: EngineProcess | null = null

  afterAll(async () => {
    await engine?.kill("SIGTERM")
    await nats?.stop()
  })

  it("comes back when the NATS server restarts, and every event from before, during and after the outage is applied once", async () => {
    nats = await privateNats("reader")
    const topology = uniqueTopology("readerrestart")
    engine = await startEngine({ ...topology.env, NATS_URL: nats.url }, "reader-restart")
    const publisher = await connect({ servers: nats.url, noAsyncTraces: true, maxReconnectAttempts: -1, reconnectTimeWait: 200 })
    try {
      const events = eventsFor("n", 400)
      await publishEvents(publisher, topology, events.slice(0, 200))
      await eventually(async () => (await eventRows(engine!)).length === 200, 30_000, "the first half")
      await nats.stop()
      await new Promise((resolve) => setTimeout(resolve, 2_000))
      await nats.start()
      // Published as an upstream service would: retried until the server answers (the ids dedupe).
      await eventually(() => publishEvents(publisher, topology, events.slice(200)).then(() => true), 30_000, "publishing after the restart")
      await eventually(async () => (await eventRows(engine!)).length === 400, 60_000, "every event after the restart", async () => engine!.output().slice(-3000))
      const ids = (await eventRows(engine)).map((row) => row.event_id)
      expect(new Set(ids).size).toBe(400)
      // Each member's purchases and refunds counted once: none lost, none applied twice.
      for (let m = 0; m < 7; m++) {
        const memberId = `n-会员-${m}`
        const mine = events.filter((event) => event.memberId === memberId)
        const bought = mine.filter((event) => event.type === "purchase")
        const refunded = mine.filter((event) => event.type === "refund")
        const total = bought.reduce((sum, event) => sum + Number(event.properties?.["amount"]), 0) - 10 * refunded.length
        const { purchase } = (await profileOf(engine, memberId)) as { purchase: { count: number; total: number } }
        expect(purchase).toMatchObject({ count: bought.length })
        expect(purchase.total).toBeCloseTo(total, 2)
      }
    } finally {
      await publisher.close()
    }
  }, 120_000)
})
