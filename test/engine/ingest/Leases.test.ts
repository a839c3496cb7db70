import { Kvm } from "@nats-io/kv"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { Leases, partitionCount } from "../../../engine/ingest/Leases.ts"
import { partitionOf } from "../../../engine/ingest/Partition.ts"
import { natsConnect } from "../../support/nats.ts"
import type { NatsConnection } from "@nats-io/transport-node"
import { jetstreamManager } from "@nats-io/jetstream"

const TTL = 10_000

describe("partition leases", () => {
  let nc: NatsConnection
  const buckets: Array<string> = []
  beforeAll(async () => {
    nc = await natsConnect()
  })
  afterAll(async () => {
    const jsm = await jetstreamManager(nc)
    for (const bucket of buckets) await jsm.streams.delete(`KV_${bucket}`).catch(() => false)
    await nc.close()
  })
  const bucket = async (label: string) => {
    const name = `mft_leases_${label}_${Date.now()}_${process.pid}`
    buckets.push(name)
    return new Kvm(nc).create(name, { history: 5 })
  }

  it("the first engine fixes the partition count, and later ones read it whatever they ask for", async () => {
    const kv = await bucket("count")
    expect(await partitionCount(kv, 8)).toBe(8)
    expect(await partitionCount(kv, 32)).toBe(8)
  })

  it("splits members stably: the same member always lands in the same partition, and members spread", () => {
    const counts = new Array<number>(16).fill(0)
    for (let i = 0; i < 16_000; i++) counts[partitionOf(`member-${i}`, 16)]!++
    expect(partitionOf("lily", 16)).toBe(partitionOf("lily", 16))
    expect(Math.min(...counts)).toBeGreaterThan(800)
    expect(Math.max(...counts)).toBeLessThan(1200)
  })

  it("one engine takes every partition; a second gets a fair share only as the first hands it over", async () => {
    const kv = await bucket("share")
    let clock = 1_000_000
    const a = new Leases(kv, "engine-a", 4, TTL, () => clock)
    const b = new Leases(kv, "engine-b", 4, TTL, () => clock)
    const first = await a.round()
    expect(first.gained.map((g) => g.partition).sort()).toEqual([0, 1, 2, 3])
    expect(first.gained.every((g) => g.position === 0)).toBe(true)
    // b sees a's leases fresh: it takes nothing, but counts a as live
    expect((await b.round()).gained).toEqual([])
    // a now counts two engines: two partitions are its surplus
    const second = await a.round()
    expect(second.surplus).toHaveLength(2)
    for (const partition of second.surplus) {
      expect(await a.commit(partition, 40)).toBe(true)
      expect(await a.release(partition, 40)).toBe(true)
    }
    const taken = await b.round()
    expect(taken.gained.map((g) => g.partition).sort()).toEqual([...second.surplus].sort())
    // the position travels with the partition
    expect(taken.gained.every((g) => g.position === 40)).toBe(true)
    expect([...a.owned(), ...b.owned()].sort()).toEqual([0, 1, 2, 3])
    clock += 1
  })

  it("an engine that stopped renewing loses its partitions after a lease time, and finds out at its next write", async () => {
    const kv = await bucket("expiry")
    let clock = 5_000_000
    const a = new Leases(kv, "engine-a", 2, TTL, () => clock)
    const b = new Leases(kv, "engine-b", 2, TTL, () => clock)
    await a.round()
    expect(await a.commit(0, 17)).toBe(true)
    expect((await b.round()).gained).toEqual([])
    clock += TTL - 1
    expect((await b.round()).gained).toEqual([])
    // a is silent (stalled, partitioned away) for a whole lease
    clock += 2
    const takeover = await b.round()
    expect(takeover.gained.map((g) => g.partition).sort()).toEqual([0, 1])
    expect(takeover.gained.find((g) => g.partition === 0)?.position).toBe(17)
    // a wakes up: its commit and its renewal fail, so it stops writing
    expect(await a.commit(0, 99)).toBe(false)
    const woke = await a.round()
    expect(woke.lost).toEqual([1])
    expect(a.owned()).toEqual([])
    expect(b.owned()).toEqual([0, 1])
  })

  it("an engine shutting down takes back none of the partitions it hands over, though a lease round is under way", async () => {
    const kv = await bucket("closing")
    const clock = 1_000_000
    const a = new Leases(kv, "engine-a", 4, TTL, () => clock)
    expect((await a.round()).gained).toHaveLength(4)
    // Shutdown begins while a round is under way; the engine then hands each partition over.
    const round = a.round()
    a.stopTaking()
    for (const partition of [0, 1, 2, 3]) expect(await a.release(partition, 10 + partition)).toBe(true)
    const last = await round
    expect(last.gained).toEqual([])
    expect(a.owned()).toEqual([])
    // Nor does a round after it, and once the engine has left another takes every partition at once.
    expect(await a.round()).toEqual({ gained: [], lost: [], surplus: [] })
    await a.leave(() => true)
    const b = new Leases(kv, "engine-b", 4, TTL, () => clock)
    expect([...(await b.round()).gained].sort((x, y) => x.partition - y.partition)).toEqual([0, 1, 2, 3].map((partition) => ({ partition, position: 10 + partition })))
  })

  it("partitions a round took that the engine never began are handed back at once when it leaves", async () => {
    const kv = await bucket("unbegun")
    const clock = 1_000_000
    const a = new Leases(kv, "engine-a", 4, TTL, () => clock)
    await a.round()
    expect(await a.commit(3, 25)).toBe(true)
    await a.leave((partition) => partition < 2)
    expect(a.owned()).toEqual([0, 1])
    const b = new Leases(kv, "engine-b", 4, TTL, () => clock)
    // a's leases of 0 and 1 are fresh: b takes only the two handed back, at their committed positions.
    expect([...(await b.round()).gained].sort((x, y) => x.partition - y.partition)).toEqual([{ partition: 2, position: 0 }, { partition: 3, position: 25 }])
  })
})
