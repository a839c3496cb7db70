import type { NatsConnection } from "@nats-io/transport-node"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { drained, type EngineProcess, eventually, startEngine, tempDir } from "../support/engine.ts"
import { journeysDir } from "../support/journeys.ts"
import { dropTopology, type EventInput, natsConnect, publishEvents, type TestTopology, uniqueTopology } from "../support/nats.ts"

const DAY = 86_400_000

interface Readiness {
  readonly ingest: { readonly engine: string; readonly partitions: number; readonly owned: ReadonlyArray<number>; readonly lag: number }
}

const readiness = async (engine: EngineProcess) => (await engine.get("/readyz")).body as Readiness

/** Purchases for members m0..m(n-1), each member's count and total known here. */
const purchases = (from: number, count: number, members: number) => {
  const events: Array<EventInput> = []
  const expected = new Map<string, { count: number; total: number }>()
  for (let i = from; i < from + count; i++) {
    const memberId = `m${i % members}`
    const amount = 10 + (i % 7) * 10
    events.push({ id: `buy-${i}`, type: "purchase", memberId, occurredAt: new Date(Date.now() - (i % 50) * DAY).toISOString(), properties: { orderId: `o-${i}`, amount, currency: "CNY" } })
    const e = expected.get(memberId) ?? { count: 0, total: 0 }
    expected.set(memberId, { count: e.count + 1, total: e.total + amount })
  }
  return { events, expected }
}

const merge = (a: Map<string, { count: number; total: number }>, b: Map<string, { count: number; total: number }>) => {
  const out = new Map(a)
  for (const [k, v] of b) {
    const e = out.get(k) ?? { count: 0, total: 0 }
    out.set(k, { count: e.count + v.count, total: e.total + v.total })
  }
  return out
}

const profiles = async (engine: EngineProcess, ids: Iterable<string>) => {
  const out: Record<string, { count: number; total: number }> = {}
  for (const memberId of ids) {
    const { body } = await engine.get(`/members/${memberId}`)
    const purchase = (body as { purchase?: { count: number; total: number } }).purchase
    out[memberId] = purchase === undefined ? { count: -1, total: -1 } : { count: purchase.count, total: purchase.total }
  }
  return out
}

describe("member partitions: engines share them, hand them over and take them back after a crash", () => {
  let topology: TestTopology
  let nc: NatsConnection
  let dir: string
  const engines: Array<EngineProcess> = []

  beforeAll(async () => {
    topology = uniqueTopology("partitions")
    nc = await natsConnect()
    // The shipped program and journeys: a replay must repeat the journeys' decisions too.
    dir = journeysDir()
  })

  afterAll(async () => {
    await Promise.all(engines.map((engine) => engine.kill("SIGKILL")))
    await nc?.close()
    if (topology) await dropTopology(topology)
  })

  const start = async (label: string, env: Record<string, string> = {}) => {
    const engine = await startEngine({ ...topology.env, JOURNEYS_DIR: dir, MEMBERFLOW_DATA_DIR: tempDir(label), MEMBERFLOW_LEASE_MS: "4000", ...env }, label)
    engines.push(engine)
    return engine
  }

  it("a second engine gets a fair share, either answers for any member, and a SIGTERMed engine's partitions move at once", async () => {
    const a = await start("parta")
    const first = purchases(0, 3000, 300)
    await publishEvents(nc, topology, first.events)
    await eventually(() => drained([a]), 60_000, "the first engine to apply everything")
    expect((await readiness(a)).ingest.owned).toHaveLength(16)

    const b = await start("partb")
    await eventually(async () => {
      const [ra, rb] = await Promise.all([readiness(a), readiness(b)])
      return ra.ingest.owned.length === 8 && rb.ingest.owned.length === 8
    }, 60_000, "the two engines to own 8 partitions each")
    const [ra, rb] = await Promise.all([readiness(a), readiness(b)])
    expect([...ra.ingest.owned, ...rb.ingest.owned].sort((x, y) => x - y)).toEqual(Array.from({ length: 16 }, (_, p) => p))

    const second = purchases(3000, 3000, 300)
    await publishEvents(nc, topology, second.events)
    await eventually(() => drained([a, b]), 60_000, "both engines to apply the second half")
    const expected = Object.fromEntries(merge(first.expected, second.expected))
    // Each engine answers for every member: its own from memory, the others' by asking their owner.
    expect(await profiles(a, Object.keys(expected))).toEqual(expected)
    expect(await profiles(b, Object.keys(expected))).toEqual(expected)

    // SIGTERM hands over: b has everything well before a lease (4 s) could have run out. Timed from
    // b's side while a is still exiting: what a does after the hand-over (closing ClickHouse) is not
    // part of it, and a's drain lines explain a failure.
    const stopped = Date.now()
    const exited = a.kill("SIGTERM")
    await eventually(async () => (await readiness(b)).ingest.owned.length === 16, 10_000, "b to take a's partitions")
    const handover = Date.now() - stopped
    expect(await exited).toBe(0)
    const drain = a.output().split("\n").filter((line) => /draining|drained|handed over|expire|drain did not/.test(line)).join("\n")
    expect(drain, drain).toContain('"partitions":"all handed over"')
    expect(handover, drain).toBeLessThan(4_000)
    const third = purchases(6000, 600, 300)
    await publishEvents(nc, topology, third.events)
    await eventually(() => drained([b]), 60_000, "b alone to apply the rest")
    expect(await profiles(b, Object.keys(expected))).toEqual(Object.fromEntries(merge(merge(first.expected, second.expected), third.expected)))
    const [row] = await b.sql<{ n: number }>("SELECT count() AS n FROM events FINAL WHERE type = 'purchase'")
    // b's own ClickHouse holds what b applied: at least the last part, each event once
    expect(Number(row?.n)).toBeGreaterThanOrEqual(600)
    await b.kill("SIGTERM")
  })

  it("after a SIGKILL far from the last checkpoint the next engine replays from it: every event once, tier changes announced once", async () => {
    const topo = uniqueTopology("replay")
    try {
      const env = { ...topo.env, JOURNEYS_DIR: dir, MEMBERFLOW_LEASE_MS: "3000" }
      // Checkpoints so rare that the kill comes long after the last one: the whole history is replayed.
      const victim = await startEngine({ ...env, MEMBERFLOW_DATA_DIR: tempDir("replay1"), MEMBERFLOW_CHECKPOINT_MS: "600000" }, "replay1")
      engines.push(victim)
      const history = purchases(0, 4000, 200)
      // Big spenders: each member climbs tiers, so tier.changed events are made (and must not repeat).
      const events = history.events.map((e) => ({ ...e, properties: { ...e.properties, amount: Number(e.properties?.["amount"]) * 40 } }))
      await publishEvents(nc, topo, events)
      await eventually(() => drained([victim]), 60_000, "the first engine to apply everything")
      const tierEvents = async (engine: EngineProcess) =>
        Number((await engine.sql<{ n: number }>("SELECT count() AS n FROM events FINAL WHERE type = 'tier.changed'"))[0]?.n)
      const announced = await tierEvents(victim)
      expect(announced).toBeGreaterThan(0)
      const before = await profiles(victim, history.expected.keys())
      expect(await victim.kill("SIGKILL")).toBeNull()

      const heir = await startEngine({ ...env, MEMBERFLOW_DATA_DIR: tempDir("replay2") }, "replay2")
      engines.push(heir)
      await eventually(() => drained([heir]), 90_000, "the next engine to replay and catch up")
      // The same profiles as before the crash, every purchase counted once
      expect(await profiles(heir, history.expected.keys())).toEqual(before)
      for (const [memberId, want] of history.expected) expect(before[memberId]?.count).toBe(want.count)
      // The replay made the same tier changes with the same ids: the stream holds each once
      const { jetstreamManager } = await import("@nats-io/jetstream")
      const jsm = await jetstreamManager(nc)
      const info = await jsm.streams.info(topo.stream, { subjects_filter: `${topo.subjectPrefix}.tier.changed` })
      const perSubject = info.state.subjects?.[`${topo.subjectPrefix}.tier.changed`] ?? 0
      expect(perSubject).toBe(announced)
      await heir.kill("SIGTERM")
    } finally {
      await dropTopology(topo)
    }
  })
})

describe("an engine restarted on its own data directory", () => {
  it("takes back the partitions its killed process held at once, and a second process on that directory is refused", async () => {
    const topo = uniqueTopology("reclaim")
    const nc = await natsConnect()
    const dataDir = tempDir("reclaim")
    // A lease time far longer than the test: only being the same engine can bring the partitions back.
    const env = { ...topo.env, JOURNEYS_DIR: journeysDir(), MEMBERFLOW_DATA_DIR: dataDir, MEMBERFLOW_LEASE_MS: "600000" }
    const started: Array<EngineProcess> = []
    try {
      const first = await startEngine(env, "reclaim1")
      started.push(first)
      const before = purchases(0, 500, 50)
      await publishEvents(nc, topo, before.events)
      await eventually(() => drained([first]), 60_000, "the engine to apply the first events")
      const id = (await readiness(first)).ingest.engine

      // A second process on the same directory would be the same engine twice: refused, and the
      // first goes on.
      const twin = await startEngine(env, "reclaim-twin").then(
        () => "started",
        (error: Error) => error.message
      )
      expect(twin).toContain(`MEMBERFLOW_DATA_DIR ${dataDir} is in use by process ${first.child.pid}`)
      expect((await first.get("/readyz")).status).toBe(200)

      expect(await first.kill("SIGKILL")).toBeNull()
      const after = purchases(500, 500, 50)
      await publishEvents(nc, topo, after.events)
      const again = await startEngine(env, "reclaim2")
      started.push(again)
      await eventually(() => drained([again]), 60_000, "the restarted engine to own every partition and catch up")
      const state = await readiness(again)
      expect(state.ingest.engine).toBe(id)
      expect(state.ingest.owned).toHaveLength(16)
      expect(await profiles(again, before.expected.keys())).toEqual(Object.fromEntries(merge(before.expected, after.expected)))
      expect(await again.kill("SIGTERM")).toBe(0)
    } finally {
      await Promise.all(started.map((engine) => engine.kill("SIGKILL")))
      await nc.close()
      await dropTopology(topo)
    }
  })
})
