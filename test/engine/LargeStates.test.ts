import { jetstreamManager } from "@nats-io/jetstream"
import { Kvm } from "@nats-io/kv"
import { connect, type NatsConnection } from "@nats-io/transport-node"
import { afterAll, describe, expect, it } from "vitest"
import { partitionOf } from "../../engine/ingest/Partition.ts"
import { memberKey } from "../../engine/MemberStore.ts"
import { readStored } from "../../engine/store/StateParts.ts"
import { drained, type EngineProcess, engineState, eventually, startEngine, tempDir } from "../support/engine.ts"
import { dropTopology, type EventInput, publishEvents, uniqueTopology } from "../support/nats.ts"
import { type PrivateNats, privateNats } from "../support/natsServer.ts"
import { expectRefusedAtStart } from "../support/settings.ts"

/** The NATS server's largest message here: the whale's state outgrows it after about 500 purchases. */
const MAX_PAYLOAD = 32_768
const PURCHASES = 700

interface Profile {
  readonly purchase?: { readonly count: number; readonly total: number }
}

/**
 * A member state grows with its member's lifetime (every event id it applied, every order), and a
 * NATS message, a KV value included, is at most the server's `max_payload` (1 MB by default). Such
 * a state used to be refused on every write: its checkpoint never ended, and with it every later
 * checkpoint of the engine. Here the server's limit is 32 KB, so a member with 700 purchases is
 * over it; the engine's default part size follows the server's limit.
 */
describe("a member whose state outgrows the largest NATS message", () => {
  let server: PrivateNats
  let nc: NatsConnection
  const engines: Array<EngineProcess> = []

  afterAll(async () => {
    await Promise.all(engines.map((engine) => engine.kill("SIGKILL")))
    await nc?.close()
    await server?.stop()
  })

  it("is checkpointed in parts, answered by its owner in parts, and read back whole by the next engine after a crash: nothing lost, nothing applied twice", async () => {
    server = await privateNats("large-states", { config: `max_payload: ${MAX_PAYLOAD}\n` })
    nc = await connect({ servers: server.url })
    expect(nc.info?.max_payload).toBe(MAX_PAYLOAD)
    const topology = uniqueTopology("largestates")
    const env = { ...topology.env, NATS_URL: server.url, MEMBERFLOW_CHECKPOINT_MS: "1000", MEMBERFLOW_LEASE_MS: "3000" }
    const at = new Date(Date.now() - 3_600_000).toISOString()
    const purchase = (i: number): EventInput => ({ id: `whale-buy-${i}`, type: "purchase", memberId: "whale", occurredAt: at, properties: { orderId: `whale-order-${i}`, amount: 10, currency: "CNY" } })
    const events: Array<EventInput> = [
      { id: "whale-reg", type: "member.registered", memberId: "whale", occurredAt: at, properties: { name: "鯨", consent: { sms: true } } },
      { id: "minnow-reg", type: "member.registered", memberId: "minnow", occurredAt: at, properties: { name: "小魚" } },
      { id: "minnow-buy", type: "purchase", memberId: "minnow", occurredAt: at, properties: { orderId: "minnow-order", amount: 99, currency: "CNY" } }
    ]
    for (let i = 0; i < PURCHASES; i++) events.push(purchase(i))
    const first = await startEngine({ ...env, MEMBERFLOW_DATA_DIR: tempDir("large-states-1") }, "large-states")
    engines.push(first)
    await publishEvents(nc, topology, events)
    await eventually(() => drained([first]), 60_000, "the first engine drained", () => engineState(first))

    // Checkpointed: the whale's key holds a head naming its parts, and the partition's position
    // moved past its events (a stuck checkpoint kept it where it was).
    const kv = await new Kvm(nc).open(`${topology.kvPrefix}_members`)
    const meta = await new Kvm(nc).open(`${topology.kvPrefix}_meta`)
    const jsm = await jetstreamManager(nc)
    const streamEnd = (await jsm.streams.info(topology.stream)).state.last_seq
    const position = async () => {
      const entry = await meta.get(`partition.${partitionOf("whale", 16)}`)
      return entry === null ? 0 : (JSON.parse(entry.string()) as { position: number }).position
    }
    await eventually(async () => (await position()) >= streamEnd - 5 && (await kv.get(memberKey("whale")))?.string().startsWith('{"$parts":') === true, 30_000, "the whale's state checkpointed in parts", async () => `position ${await position()} of ${streamEnd}\n${await engineState(first)}`)
    const head = JSON.parse((await kv.get(memberKey("whale")))!.string()) as { $parts: Array<string>; bytes: number }
    expect(head.bytes).toBeGreaterThan(MAX_PAYLOAD)
    expect(head.$parts.length).toBe(Math.ceil(head.bytes / (MAX_PAYLOAD - 4_096)))
    // A small member is stored whole, as before (at its own partition's checkpoint).
    await eventually(async () => (await kv.get(memberKey("minnow")))?.string().startsWith('{"memberId":"minnow"') === true, 30_000, "the minnow's state checkpointed whole")

    // Its owner's answer to a lookup is larger than a message too: it comes in parts.
    const whale = await first.get("/members/whale")
    expect(whale.status).toBe(200)
    expect((whale.body as Profile).purchase).toMatchObject({ count: PURCHASES, total: PURCHASES * 10 })

    // Killed; more purchases and a re-delivered old one meanwhile. The next engine reads the state
    // from its parts and applies each event once. Its checkpoints are far apart, so KV still holds
    // what the first one wrote: the lookup's answer is its owner's, in parts.
    await first.kill("SIGKILL")
    await publishEvents(nc, topology, [...[PURCHASES, PURCHASES + 1, PURCHASES + 2].map(purchase), { ...purchase(3), id: "whale-buy-3" }])
    const second = await startEngine({ ...env, MEMBERFLOW_CHECKPOINT_MS: "600000", MEMBERFLOW_DATA_DIR: tempDir("large-states-2") }, "large-states")
    engines.push(second)
    await eventually(() => drained([second]), 60_000, "the second engine drained", () => engineState(second))
    const after = (await second.get("/members/whale")).body as Profile
    expect(after.purchase).toMatchObject({ count: PURCHASES + 3, total: (PURCHASES + 3) * 10 })
    const inKv = await readStored(kv, memberKey("whale"))
    expect(inKv?.parts).toEqual(head.$parts)
    expect((JSON.parse(inKv!.json) as { orders: { amount: Array<number> } }).orders.amount).toHaveLength(PURCHASES)

    // Handed over at shutdown: written again, in new parts, and the former parts removed.
    expect(await second.kill("SIGTERM")).toBe(0)
    const latest = await readStored(kv, memberKey("whale"))
    expect(latest?.parts).not.toBeNull()
    expect(latest?.parts).not.toEqual(head.$parts)
    expect((JSON.parse(latest!.json) as { orders: { amount: Array<number> } }).orders.amount).toHaveLength(PURCHASES + 3)
    const info = await jsm.streams.info(`KV_${topology.kvPrefix}_members`, { subjects_filter: `$KV.${topology.kvPrefix}_members.p.>` })
    const subjects = Object.keys(info.state.subjects ?? {}).map((subject) => subject.slice(`$KV.${topology.kvPrefix}_members.`.length))
    expect(subjects.sort()).toEqual([...latest!.parts!].sort())
  }, 180_000)
})

describe("the largest state written as one KV value", () => {
  it("is refused at start when it is not a whole number from 1,024 to the server's largest message less 1,024, naming the setting", async () => {
    const topology = uniqueTopology("kvvalue")
    try {
      // The machine's server takes messages of up to 1 MB.
      await expectRefusedAtStart(topology.env, "MEMBERFLOW_KV_VALUE_BYTES", ["100", "1048000", "big"], "kvvalue")
    } finally {
      await dropTopology(topology)
    }
  }, 120_000)
})
