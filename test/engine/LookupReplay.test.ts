import type { NatsConnection } from "@nats-io/transport-node"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { partitionOf } from "../../engine/ingest/Partition.ts"
import { drained, type EngineProcess, eventually, startEngine, tempDir } from "../support/engine.ts"
import { dropTopology, type EventInput, natsConnect, publishEvents, type TestTopology, uniqueTopology } from "../support/nats.ts"

const FILLER = 60_000
const PARTITIONS = 16

interface Replaying {
  readonly partition: number
  readonly behind: number
}

/**
 * A partition taken by an engine that must replay the stream to catch up (after a crash, or handed
 * over at its last checkpoint): until it has, what it holds of a member, and what KV holds, can be
 * older than the stream. A lookup then waits, and at the end of its wait gets 503 with the reason,
 * never an older state: the delivery worker's consent check reads members this way.
 */
describe("member lookups while a partition is replayed", () => {
  let nc: NatsConnection
  let topology: TestTopology
  const engines: Array<EngineProcess> = []

  beforeAll(async () => {
    nc = await natsConnect()
    topology = uniqueTopology("lookupreplay")
  })

  afterAll(async () => {
    await Promise.all(engines.map((engine) => engine.kill("SIGKILL")))
    await nc?.close()
    await dropTopology(topology)
  })

  it("answers 503 (or waits) while the owner replays, and then the member as the whole stream made it: never an older state", async () => {
    const env = { ...topology.env, MEMBERFLOW_LEASE_MS: "3000" }
    const setup = await startEngine({ ...env, MEMBERFLOW_DATA_DIR: tempDir("lookup-setup") }, "lookup-replay")
    engines.push(setup)
    await setup.kill("SIGTERM")

    // The member's history is spread through a backlog the engine must replay before it is current.
    const target = "replay-target"
    const at = new Date(Date.now() - 60_000).toISOString()
    const events: Array<EventInput> = [{ id: "t-reg", type: "member.registered", memberId: target, occurredAt: at, properties: { consent: { sms: true } } }]
    for (let i = 0; i < FILLER; i++) {
      events.push({ id: `f-${i}`, type: "page.viewed", memberId: `filler-${i % 3000}`, occurredAt: at, properties: { page: "/home" } })
      if (i % 20_000 === 19_999) {
        events.push({ id: `t-buy-${i}`, type: "purchase", memberId: target, occurredAt: at, properties: { orderId: `t-order-${i}`, amount: 100, currency: "CNY" } })
      }
    }
    await publishEvents(nc, topology, events)

    const engine = await startEngine({ ...env, MEMBERFLOW_DATA_DIR: tempDir("lookup-replay") }, "lookup-replay")
    engines.push(engine)
    const partition = partitionOf(target, PARTITIONS)
    const seen: Array<{ status: number; count: number | null; replaying: number }> = []
    let done = false
    while (!done) {
      const ready = (await engine.get("/readyz")).body as { ingest?: { partitions?: number; owned?: ReadonlyArray<number>; replaying?: ReadonlyArray<Replaying> } }
      expect(ready.ingest?.partitions ?? PARTITIONS).toBe(PARTITIONS)
      if (ready.ingest?.owned?.includes(partition) === true) {
        // Owned: from here on every answer is either "not yet" or the whole history.
        const replaying = ready.ingest.replaying?.find((part) => part.partition === partition)?.behind ?? 0
        const { status, body } = await engine.get(`/members/${target}`)
        const count = (body as { purchase?: { count?: number } }).purchase?.count ?? null
        seen.push({ status, count, replaying })
        done = status === 200 && replaying === 0 && (await drained([engine]))
      }
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    for (const answer of seen) {
      if (answer.status === 503) continue
      expect(answer, "a lookup answered while the partition was replayed").toMatchObject({ status: 200, count: 3 })
    }
    // The window was there to be seen: /readyz showed the partition behind, and lookups waited or got 503.
    expect(seen.some((answer) => answer.replaying > 0)).toBe(true)
    expect(seen.at(-1)).toMatchObject({ status: 200, count: 3, replaying: 0 })
    await engine.kill("SIGTERM")
  })

  /**
   * The lease gap: on a fresh topology with `leaseMs` leases, a first engine applies `events` (not
   * checkpointed: the interval is 30 s, so KV does not know `target`), `applied` checks it, the engine
   * is SIGKILLed, `killed` runs, and a second engine starts; `during` runs on it while `target`'s
   * partition has no owner yet (the killed engine's lease has not run out).
   */
  const inOwnerGap = async (
    label: string,
    leaseMs: number,
    target: string,
    events: ReadonlyArray<EventInput>,
    steps: {
      readonly applied: (first: EngineProcess) => Promise<void>
      readonly killed?: (gap: TestTopology) => Promise<void>
      readonly during: (second: EngineProcess) => Promise<void>
    }
  ) => {
    const gap = uniqueTopology(label)
    try {
      const env = { ...gap.env, MEMBERFLOW_LEASE_MS: String(leaseMs) }
      const first = await startEngine({ ...env, MEMBERFLOW_DATA_DIR: tempDir(`${label}-a`) }, label)
      engines.push(first)
      await publishEvents(nc, gap, events)
      await eventually(() => drained([first]), 30_000, "the first engine to apply the events")
      await steps.applied(first)
      await first.kill("SIGKILL")
      await steps.killed?.(gap)
      const second = await startEngine({ ...env, MEMBERFLOW_DATA_DIR: tempDir(`${label}-b`) }, label)
      engines.push(second)
      const owned = ((await second.get("/readyz")).body as { ingest?: { owned?: ReadonlyArray<number> } }).ingest?.owned ?? []
      expect(owned).not.toContain(partitionOf(target, PARTITIONS))
      await steps.during(second)
      await second.kill("SIGTERM")
    } finally {
      await dropTopology(gap)
    }
  }

  it("a lookup while no engine owns the partition (its owner killed, its lease not run out yet) waits for the next owner: KV would not know the member", async () => {
    const target = "gap-target"
    const at = new Date(Date.now() - 60_000).toISOString()
    // The next engine takes the partitions only once the killed one's leases have run out (3 s).
    await inOwnerGap("lookupgap", 3_000, target, [
      { id: "g-reg", type: "member.registered", memberId: target, occurredAt: at, properties: { consent: { sms: true } } },
      ...[1, 2, 3].map((n) => ({ id: `g-buy-${n}`, type: "purchase", memberId: target, occurredAt: at, properties: { orderId: `g-order-${n}`, amount: 100, currency: "CNY" } }))
    ], {
      applied: async (first) => {
        expect(((await first.get(`/members/${target}`)).body as { purchase?: { count?: number } }).purchase?.count).toBe(3)
      },
      during: async (second) => {
        const { status, body } = await second.get(`/members/${target}`)
        expect(status).toBe(200)
        expect((body as { purchase?: { count?: number } }).purchase?.count).toBe(3)
      }
    })
  })

  it("a marketing message handed over while no engine owns the member's partition waits for the next owner: an opt-out not checkpointed yet still wins", async () => {
    const target = "consent-gap-target"
    const phone = "+8613500000009"
    const messageId = `consent-gap-${Date.now()}`
    // A long lease: the next engine's delivery runs well before it may take the partitions.
    await inOwnerGap("consentgap", 12_000, target, [
      { id: "cg-reg", type: "member.registered", memberId: target, occurredAt: new Date(Date.now() - 120_000).toISOString(), properties: { phone, consent: { sms: true } } },
      { id: "cg-out", type: "consent.updated", memberId: target, occurredAt: new Date(Date.now() - 60_000).toISOString(), properties: { channel: "sms", granted: false } }
    ], {
      applied: async (first) => {
        expect(((await first.get(`/members/${target}`)).body as { consent?: { sms?: boolean } }).consent?.sms).toBe(false)
      },
      // A marketing SMS scheduled before the opt-out (published now, after the first engine is gone:
      // a message it had taken would come back only after its ack wait, by when the partition is owned).
      killed: async (gap) => {
        const { jetstream } = await import("@nats-io/jetstream")
        const request = {
          messageId,
          enrollmentId: "consent-gap-enrollment",
          journeyId: "consent-gap",
          stepId: "offer",
          variant: "A",
          template: "offer",
          marketing: true,
          notBefore: null,
          createdAt: Date.now(),
          messages: [{ channel: "sms", messageId, memberId: target, to: phone, body: "20% off this weekend" }]
        }
        await jetstream(nc).publish(`messages.${gap.subjectPrefix}.sms`, JSON.stringify({ id: `request-${messageId}`, type: "message.requested", memberId: target, properties: request }), { msgID: `request-${messageId}` })
      },
      // Decided once the next owner has the member again: suppressed, never sent on KV's word.
      during: async (second) => {
        const rows = async () => second.sql<{ status: string; reason: string }>(`SELECT status, reason FROM messages FINAL WHERE message_id = '${messageId}'`)
        await eventually(async () => (await rows()).length === 1, 60_000, "the message decided")
        const [row] = await rows()
        expect(row?.status).toBe("suppressed")
        expect(row?.reason).toContain("opted out")
      }
    })
  }, 120_000)
})
