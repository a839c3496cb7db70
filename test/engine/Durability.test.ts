import { jetstream, jetstreamManager } from "@nats-io/jetstream"
import type { NatsConnection } from "@nats-io/transport-node"
import { isDeepStrictEqual } from "node:util"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { drained, type EngineProcess, eventually, startEngine, tempDir } from "../support/engine.ts"
import { PASS_EVENT } from "../../engine/ingest/Passes.ts"
import { dropTopology, type EventInput, natsConnect, publishEvents, type TestTopology, uniqueTopology } from "../support/nats.ts"

const DAY = 86_400_000
const MEMBERS = 400
const PURCHASES = 12_000

interface Expected {
  readonly count: number
  readonly total: number
}

/**
 * A history with its ground truth computed here, independently of the engine: registrations,
 * purchases, refunds (some of whole orders), and re-publishes of the same event id that get past
 * JetStream's duplicate window (new Nats-Msg-Id), all interleaved by member.
 */
const history = () => {
  const events: Array<EventInput> = []
  const replays: Array<EventInput> = []
  const orders = new Map<string, Map<string, { amount: number; refunded: number }>>()
  const now = Date.now()
  for (let m = 0; m < MEMBERS; m++) {
    events.push({ id: `reg-${m}`, type: "member.registered", memberId: `d${m}`, occurredAt: new Date(now - 300 * DAY).toISOString(), properties: { consent: { sms: true } } })
    orders.set(`d${m}`, new Map())
  }
  for (let i = 0; i < PURCHASES; i++) {
    const memberId = `d${(i * 7919) % MEMBERS}`
    const amount = 50 + ((i * 37) % 900)
    const event: EventInput = {
      id: `buy-${i}`,
      type: "purchase",
      memberId,
      occurredAt: new Date(now - ((i * 13) % 360) * DAY - 1000).toISOString(),
      properties: { orderId: `ord-${i}`, amount, currency: "CNY" }
    }
    events.push(event)
    orders.get(memberId)!.set(`ord-${i}`, { amount, refunded: 0 })
    if (i % 50 === 0) replays.push(event)
    if (i % 40 === 3) {
      const refund = i % 80 === 3 ? amount : 20
      events.push({ id: `ref-${i}`, type: "refund", memberId, occurredAt: new Date(now - 1000).toISOString(), properties: { orderId: `ord-${i}`, amount: refund } })
      orders.get(memberId)!.get(`ord-${i}`)!.refunded = refund
    }
  }
  const expected = new Map<string, Expected>()
  for (const [memberId, memberOrders] of orders) {
    let count = 0
    let total = 0
    for (const order of memberOrders.values()) {
      const net = Math.max(0, order.amount - order.refunded)
      if (net > 0) count++
      total += net
    }
    expected.set(memberId, { count, total })
  }
  return { events, replays, expected }
}

const profiles = async (engine: EngineProcess, ids: Iterable<string>) => {
  const out = new Map<string, Expected>()
  for (const memberId of ids) {
    const { body } = await engine.get(`/members/${memberId}`)
    const purchase = (body as { purchase?: Expected }).purchase
    out.set(memberId, purchase === undefined ? { count: -1, total: -1 } : { count: purchase.count, total: purchase.total })
  }
  return out
}

/**
 * The engine's own events in the stream (source `memberflow`, pass markers aside): their ids, and the
 * tag changes among them as `member_tags` keys them.
 */
const ownEvents = async (nc: NatsConnection, topology: TestTopology) => {
  const last = (await (await jetstreamManager(nc)).streams.info(topology.stream)).state.last_seq
  const ids: Array<string> = []
  const tags: Array<string> = []
  const messages = await (await jetstream(nc).consumers.get(topology.stream)).consume()
  for await (const msg of messages) {
    const event = msg.json<EventInput>()
    if (event.source === "memberflow" && event.type !== PASS_EVENT) {
      ids.push(event.id)
      if (event.type === "tag.added" || event.type === "tag.removed") tags.push(`${event.id} ${String(event.properties?.["tag"])} ${event.type === "tag.added" ? "add" : "remove"}`)
    }
    if (msg.seq >= last) break
  }
  messages.stop()
  return { ids: [...new Set(ids)].sort(), tags: [...new Set(tags)].sort() }
}

/** The engine's own events' rows in ClickHouse, as `ownEvents` gives the events. */
const ownRows = async (engine: EngineProcess) => ({
  ids: (await engine.sql<{ event_id: string }>("SELECT event_id FROM events FINAL WHERE source = 'memberflow'")).map((row) => row.event_id).sort(),
  tags: (await engine.sql<{ key: string }>("SELECT concat(event_id, ' ', tag, ' ', op) AS key FROM member_tags FINAL")).map((row) => row.key).sort()
})

const metric = async (engine: EngineProcess, name: string) =>
  Number(new RegExp(`^${name} (\\S+)$`, "m").exec(String((await engine.get("/metrics")).body))?.[1] ?? 0)

describe("durability: crashes and several engines change nothing", () => {
  let nc: NatsConnection
  const topologies: Array<TestTopology> = []
  const engines: Array<EngineProcess> = []

  beforeAll(async () => {
    nc = await natsConnect()
  })

  afterAll(async () => {
    await Promise.all(engines.map((engine) => engine.kill("SIGKILL")))
    await nc?.close()
    for (const topology of topologies) await dropTopology(topology)
  })

  const start = async (topology: TestTopology, dataDir: string) => {
    const engine = await startEngine({ ...topology.env, MEMBERFLOW_DATA_DIR: dataDir, MEMBERFLOW_ACK_WAIT_MS: "3000", MEMBERFLOW_LEASE_MS: "3000" }, "durability")
    engines.push(engine)
    return engine
  }

  it("an engine killed with SIGKILL mid-stream and started again loses no event and applies none twice", { timeout: 240_000 }, async () => {
    const topology = uniqueTopology("crash")
    topologies.push(topology)
    const { events, replays, expected } = history()
    const dataDir = tempDir("crash")
    // Create the stream and consumer, then queue the whole history before the engine runs.
    const setup = await start(topology, dataDir)
    await setup.kill("SIGTERM")
    await publishEvents(nc, topology, events)
    const js = jetstream(nc)
    for (const event of replays) await js.publish(`${topology.subjectPrefix}.purchase`, JSON.stringify(event), { msgID: `again-${event.id}` })

    const first = await start(topology, dataDir)
    await eventually(async () => (await metric(first, "memberflow_events_received_total")) > 2000, 60_000, "the first engine to be mid-stream")
    expect(await first.kill("SIGKILL")).toBeNull()

    const second = await start(topology, dataDir)
    await eventually(() => drained([second]), 120_000, "the stream to be drained after the restart")
    const actual = await profiles(second, expected.keys())
    expect(Object.fromEntries(actual)).toEqual(Object.fromEntries(expected))

    // ClickHouse holds each accepted event once (FINAL collapses a crash's re-write).
    const [row] = await second.sql<{ n: number }>("SELECT count() AS n FROM events FINAL WHERE type IN ('purchase', 'refund', 'member.registered')")
    expect(Number(row?.n)).toBe(events.length)
    // And each of the engine's own events (tiers, tags, RFM) that is in the stream has its events row,
    // each tag change its member_tags row: those the killed engine published in its last batches
    // among them (the batch that makes an event writes its rows; the readers skip it).
    await eventually(async () => isDeepStrictEqual(await ownRows(second), await ownEvents(nc, topology)), 60_000, "the engine's own events' rows").catch(() => undefined)
    const own = await ownEvents(nc, topology)
    expect(own.ids.length).toBeGreaterThan(MEMBERS)
    expect(own.tags.length).toBeGreaterThan(0)
    expect(await ownRows(second)).toEqual(own)
    await second.kill("SIGTERM")
  })

  // Its waits allow 300 s between them (60 + 60 + 120 + 60), four engine starts besides: on a slow
  // hour of this shared machine (a fresh clone's run on 2026-12-07, every file about twice its
  // usual time) 240 s ended it while its engines were still draining.
  it("two engines on one stream, one of them killed mid-run, give the same profiles as one", { timeout: 420_000 }, async () => {
    const topology = uniqueTopology("twoengines")
    topologies.push(topology)
    const { events, replays, expected } = history()
    const setup = await start(topology, tempDir("two-setup"))
    await setup.kill("SIGTERM")
    const [a, b, c] = await Promise.all([start(topology, tempDir("two-a")), start(topology, tempDir("two-b")), start(topology, tempDir("two-c"))])
    // The first engine up owns every partition until the others' shares are handed over; on a cold
    // machine that took long enough for a and b to apply the whole history before c had any.
    await eventually(async () => {
      const states = await Promise.all([a, b, c].map(async (engine) => (await engine.get("/readyz")).body as { ingest?: { owned?: ReadonlyArray<unknown> } }))
      return states.every((state) => (state.ingest?.owned?.length ?? 0) > 0)
    }, 60_000, "the three engines to own member partitions")
    await publishEvents(nc, topology, events)
    const js = jetstream(nc)
    for (const event of replays) await js.publish(`${topology.subjectPrefix}.purchase`, JSON.stringify(event), { msgID: `again-${event.id}` })
    await eventually(async () => (await metric(c, "memberflow_events_received_total")) > 500, 60_000, "the third engine to be mid-stream")
    await c.kill("SIGKILL")
    await eventually(() => drained([a, b]), 120_000, "the stream to be drained by the survivors")
    const received = (await metric(a, "memberflow_events_received_total")) + (await metric(b, "memberflow_events_received_total"))
    expect(received).toBeGreaterThan(0)
    // Both survivors took part, and member state is one truth in KV whichever engine answers.
    expect(await metric(a, "memberflow_events_received_total")).toBeGreaterThan(0)
    expect(await metric(b, "memberflow_events_received_total")).toBeGreaterThan(0)
    // Drained can come before the partitions settle: the engine that took the killed one's share
    // may still hand some over, and one handed over while a pass is under way for it goes at its
    // last checkpoint; until its next owner has replayed from there, a lookup reads that checkpoint.
    // (A full run of the suite once met that window: seven members of two partitions read as unknown.)
    const settled = async (engine: EngineProcess) => isDeepStrictEqual(await profiles(engine, expected.keys()), expected)
    // Not settled in time: the assertions below show the difference.
    await eventually(async () => (await settled(a)) && (await settled(b)), 60_000, "the survivors' profiles to settle").catch(() => undefined)
    expect(Object.fromEntries(await profiles(a, expected.keys()))).toEqual(Object.fromEntries(expected))
    expect(Object.fromEntries(await profiles(b, expected.keys()))).toEqual(Object.fromEntries(expected))
  })
})
