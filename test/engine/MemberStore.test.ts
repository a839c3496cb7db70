import { afterAll, describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Context, Effect, Fiber, Layer, Metric, MetricLabel } from "effect"
import { rm } from "node:fs/promises"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { jetstreamManager } from "@nats-io/jetstream"
import { Kvm } from "@nats-io/kv"
import { paced } from "../../engine/ingest/CheckpointPace.ts"
import { applyEvents, type Draft } from "../../engine/member/MemberState.ts"
import { memberKey, MemberStore } from "../../engine/MemberStore.ts"
import { memberReads } from "../../engine/Metrics.ts"
import { Nats } from "../../engine/Nats.ts"
import { Topology } from "../../engine/Topology.ts"
import { privateNats } from "../support/natsServer.ts"
import { dropTopology, NATS_URL, natsConnect, uniqueTopology } from "../support/nats.ts"
import { ctx, NOW, purchase } from "./member/fixtures.ts"

const topology = uniqueTopology("store")

const layer = MemberStore.Default.pipe(
  Layer.provide(Layer.merge(Nats.layer, Topology.make({ stream: topology.stream, subjectPrefix: topology.subjectPrefix, membersBucket: `${topology.kvPrefix}_members` }))),
  Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map([["NATS_URL", NATS_URL], ["MEMBERFLOW_CACHE_MEMBERS", "10"]]))))
)

/** The partition of a test member id: the number before its "|". */
const partitionOf = (memberId: string) => Number(memberId.split("|")[0])

/** As a batch and the checkpoint after it: loads the members, sets each one's version, writes them. */
const writeVersion = (store: MemberStore, partition: number, members: ReadonlyArray<string>, version: number) =>
  Effect.gen(function* () {
    yield* store.load(members.map((id) => [id, partition] as const))
    for (const id of members) store.put(id, partition, { ...store.take(id), version })
    expect(yield* store.flush(store.snapshot(partition))).toBe(0)
  })

// After the whole file, not in a describe or in its last test: a run of some tests only (-t) left the
// bucket behind, and so did the tests after the first describe (they use the same bucket).
afterAll(() => dropTopology(topology))

describe("the member store's cache", () => {
  it.effect(
    "keeps every changed state until its checkpoint and the batch's own members until the next batch, then only the cache size, and reads the dropped ones back from KV as they were written",
    () =>
      Effect.gen(function* () {
        const store = yield* MemberStore
        const ids = Array.from({ length: 50 }, (_, i) => `cache-${i}`)
        for (let round = 1; round <= 3; round++) {
          yield* store.load(ids.map((id) => [id, 0] as const))
          for (const id of ids) {
            const state = store.take(id)
            store.put(id, 0, { ...state, version: round * 100 + Number(id.slice(6)) })
          }
          // Changed since the last checkpoint: all kept, whatever the cache size.
          expect(store.cacheSize()).toBe(50)
          expect(store.dirtyCount(0)).toBe(50)
          expect(yield* store.flush(store.snapshot(0))).toBe(0)
          expect(store.dirtyCount(0)).toBe(0)
          // Written, but held by the batch that loaded them until the next one loads its members:
          // then only the cache size stays (and the next batch's member).
          expect(store.cacheSize()).toBe(50)
          yield* store.load([["someone-else", 0]])
          expect(store.cacheSize()).toBe(11)
        }
        // The evicted ones come back from KV with what the last checkpoint wrote.
        yield* store.load(ids.map((id) => [id, 0] as const))
        expect(ids.map((id) => store.take(id).version)).toEqual(ids.map((id) => 300 + Number(id.slice(6))))
      }).pipe(Effect.provide(layer)),
    30_000
  )

  it.effect(
    "gives the members a load read from KV (a partition of its own: the bucket is shared), and forgets those of them still as stored when told (a pass's reads), keeping the changed ones and the rest of the cache",
    () =>
      Effect.gen(function* () {
        const store = yield* MemberStore
        const hot = Array.from({ length: 5 }, (_, i) => `9|forget-hot-${i}`)
        yield* writeVersion(store, 9, hot, 7)
        expect(store.cacheSize()).toBe(5)
        const cold = ["9|forget-cold-a", "9|forget-cold-b", "9|forget-cold-c"]
        const readIn = yield* store.load([...hot.slice(0, 2), ...cold].map((id) => [id, 9] as const))
        // The cached ones were not read again.
        expect([...readIn].sort()).toEqual(cold)
        expect(store.cacheSize()).toBe(8)
        store.put("9|forget-cold-b", 9, { ...store.take("9|forget-cold-b"), version: 3 })
        store.forget(readIn)
        // The changed one stays until its checkpoint; the members cached before stay cached.
        expect(store.cacheSize()).toBe(6)
        expect(yield* store.load(hot.map((id) => [id, 9] as const))).toEqual([])
        expect(store.dirtyCount(9)).toBe(1)
        expect(yield* store.flush(store.snapshot(9))).toBe(0)
        // A forgotten one is read again when next needed, as it is stored.
        expect(yield* store.load([["9|forget-cold-a", 9]])).toEqual(["9|forget-cold-a"])
        expect(store.take("9|forget-cold-a").version).toBe(0)
        expect(yield* store.load([["9|forget-cold-b", 9]])).toEqual([])
        expect(store.take("9|forget-cold-b").version).toBe(3)
      }).pipe(Effect.provide(layer)),
    30_000
  )

  it.effect(
    "lists every member of the asked partitions for a pass: those written to KV by this store or another, evicted or not, and those not written yet",
    () =>
      Effect.gen(function* () {
        const store = yield* MemberStore
        const other = yield* Layer.build(layer).pipe(Effect.map((context) => Context.get(context, MemberStore)))
        // Written and evicted past the cache size (10), with ids KV keys cannot hold as they are.
        const written = Array.from({ length: 40 }, (_, i) => `${i % 3}|會員 ${i}.x/y`)
        for (const partition of [0, 1, 2]) {
          yield* writeVersion(store, partition, written.filter((id) => partitionOf(id) === partition), 1)
        }
        yield* store.load([["1|loaded, never changed", 1]])
        expect(store.cacheSize()).toBeLessThan(40)
        // Written by another engine's store: only in KV.
        yield* writeVersion(other, 0, ["0|from the other engine"], 1)
        // Changed here, not written yet: only in the cache.
        yield* store.load([["2|not written yet", 2]])
        store.put("2|not written yet", 2, { ...store.take("2|not written yet"), version: 1 })

        // A key of the bucket that is not a member's (the listing reads the whole bucket): skipped.
        yield* Effect.promise(async () => {
          const nc = await natsConnect()
          try {
            await (await new Kvm(nc).open(`${topology.kvPrefix}_members`)).put("note.not-a-member", "{}")
          } finally {
            await nc.close()
          }
        })

        // Any id at all has a partition, as with the engine's hash: an id made of that key would be
        // listed (the ids of the test before, `cache-<n>`, are real members of no partition asked).
        const listed = yield* store.membersOf(new Set([0, 2]), (id) => (/^\d+\|/.test(id) ? partitionOf(id) : id.startsWith("cache-") ? -1 : 0))
        expect([...listed.keys()].sort()).toEqual([0, 2])
        expect([...(listed.get(0) ?? [])].sort()).toEqual([...written.filter((id) => partitionOf(id) === 0), "0|from the other engine"].sort())
        expect([...(listed.get(2) ?? [])].sort()).toEqual([...written.filter((id) => partitionOf(id) === 2), "2|not written yet"].sort())
        // Partitions not asked for are not listed; a partition with no member is listed empty.
        expect((yield* store.membersOf(new Set([7]), partitionOf)).get(7)).toEqual([])
      }).pipe(Effect.scoped, Effect.provide(layer)),
    30_000
  )

  it.effect(
    "a partition listed once stays indexed by this store's own writes, so a pass after the first reads no key; a partition dropped is listed again",
    () =>
      Effect.gen(function* () {
        const store = yield* MemberStore
        const other = yield* Layer.build(layer).pipe(Effect.map((context) => Context.get(context, MemberStore)))
        const first = Array.from({ length: 5 }, (_, i) => `12|first ${i}`)
        yield* writeVersion(store, 12, first, 1)
        expect(new Set((yield* store.membersOf(new Set([12]), partitionOf)).get(12))).toEqual(new Set(first))
        // Only the owner writes a partition's members. A key written by another store now is one a
        // listing would find: its absence below shows that no listing was made.
        yield* writeVersion(other, 12, ["12|written by another store"], 1)
        // Written here since, past the cache size (10): most are evicted, and listed all the same.
        const since = Array.from({ length: 30 }, (_, i) => `12|since ${i}`)
        yield* writeVersion(store, 12, since, 1)
        expect(store.cacheSize()).toBeLessThan(35)
        const indexed = (yield* store.membersOf(new Set([12]), partitionOf)).get(12) ?? []
        expect(new Set(indexed)).toEqual(new Set([...first, ...since]))
        // Dropped (handed over, or lost): the next pass over it lists it again, and finds every key.
        store.dropPartition(12)
        const listed = (yield* store.membersOf(new Set([12]), partitionOf)).get(12) ?? []
        expect(new Set(listed)).toEqual(new Set([...first, ...since, "12|written by another store"]))
      }).pipe(Effect.scoped, Effect.provide(layer)),
    30_000
  )

  it.effect(
    "passes that need a partition while its listing is under way wait for that listing and get the same members",
    () =>
      Effect.gen(function* () {
        const store = yield* MemberStore
        const ids = Array.from({ length: 20 }, (_, i) => `13|member ${i}`)
        yield* writeVersion(store, 13, ids, 1)
        store.dropPartition(13)
        let listings = 0
        const paced = <A,>(work: () => Promise<A>) => {
          listings++
          return work()
        }
        const [a, b] = yield* Effect.all([store.membersOf(new Set([13]), partitionOf, paced), store.membersOf(new Set([13]), partitionOf, paced)], { concurrency: 2 })
        expect(new Set(a.get(13))).toEqual(new Set(ids))
        expect(new Set(b.get(13))).toEqual(new Set(ids))
        // One fetch of keys, by the first: the second waited for it.
        expect(listings).toBe(1)
      }).pipe(Effect.provide(layer)),
    30_000
  )

  // Live: the writes and the listing run side by side in real time.
  it.live(
    "lists every member while checkpoints keep writing them over, and ends without waiting for the writes to stop",
    () =>
      Effect.gen(function* () {
        const store = yield* MemberStore
        const ids = Array.from({ length: 3000 }, (_, i) => `${4 + (i % 2)}|rewritten ${i}`)
        const mine = ids.filter((id) => partitionOf(id) === 4)
        const rewrite = (version: number) =>
          Effect.gen(function* () {
            for (const partition of [4, 5]) yield* writeVersion(store, partition, ids.filter((id) => partitionOf(id) === partition), version)
          })
        yield* rewrite(1)
        // Written over and over (each write moves the key to the end of the bucket's stream) until
        // the listing is done, or for 30 s.
        let listed: ReadonlyMap<number, ReadonlyArray<string>> | null = null
        const writer = Effect.gen(function* () {
          const until = Date.now() + 30_000
          let version = 2
          while (listed === null && Date.now() < until) yield* rewrite(version++)
          return { rounds: version - 2, afterListing: listed !== null }
        })
        const [{ rounds, afterListing }] = yield* Effect.all(
          [
            writer,
            Effect.sleep("300 millis").pipe(
              Effect.zipRight(store.membersOf(new Set([4]), partitionOf)),
              Effect.tap((result) => Effect.sync(() => (listed = result)))
            )
          ],
          { concurrency: 2 }
        )
        const result = listed as ReadonlyMap<number, ReadonlyArray<string>> | null
        expect([...(result?.get(4) ?? [])].sort()).toEqual([...mine].sort())
        expect(result?.has(5)).toBe(false)
        // It ended while the writes went on: they stopped because it had, not after 30 s.
        expect(rounds).toBeGreaterThan(0)
        expect(afterListing).toBe(true)
        expect(store.dirtyCount(4) + store.dirtyCount(5)).toBe(0)
        const stored = yield* store.stored(mine[0]!)
        expect(stored?.version).toBe(rounds + 1)
      }).pipe(Effect.provide(layer)),
    90_000
  )

  it.effect(
    "a checkpoint writes each state as it was at its barrier, though batches change states in place before it is written; the change goes in with the next one",
    () =>
      Effect.gen(function* () {
        const store = yield* MemberStore
        const ids = ["barrier-a", "barrier-b", "barrier-c"]
        yield* store.load(ids.map((id) => [id, 3] as const))
        // As a batch changes them: in place, the state `take` gave.
        const change = (id: string, version: number, city: string) => {
          const state = store.take(id) as Draft
          state.version = version
          state.attributes["city"] = { v: city, at: version }
          store.put(id, 3, state)
        }
        for (const id of ids) change(id, 1, "上海")
        const snap = store.snapshot(3)
        // Between the barrier and the write: a is changed by the next batch, b only read, c untouched.
        change("barrier-a", 2, "杭州")
        expect(store.peek("barrier-b").version).toBe(1)
        expect(yield* store.flush(snap)).toBe(0)
        for (const id of ids) {
          const stored = yield* store.stored(id)
          expect([id, stored?.version, stored?.attributes["city"]?.v]).toEqual([id, 1, "上海"])
        }
        // Only a changed since the barrier: still to be written, and the next checkpoint writes it.
        expect(store.dirtyCount(3)).toBe(1)
        expect(yield* store.flush(store.snapshot(3))).toBe(0)
        expect(store.dirtyCount(3)).toBe(0)
        const a = yield* store.stored("barrier-a")
        expect([a?.version, a?.attributes["city"]?.v]).toEqual([2, "杭州"])
        // A state changed after its copy was written is written whole by the next checkpoint.
        change("barrier-b", 3, "成都")
        expect(yield* store.flush(store.snapshot(3))).toBe(0)
        expect((yield* store.stored("barrier-b"))?.attributes["city"]?.v).toBe("成都")
      }).pipe(Effect.provide(layer)),
    30_000
  )

  // On the live clock: the pace runs on real time.
  it.live(
    "a paced checkpoint (engine/ingest/CheckpointPace.ts) writes its states over the spread, each as it was at the barrier though batches change some of them meanwhile, and hurried it writes the rest at once",
    () =>
      Effect.gen(function* () {
        const store = yield* MemberStore
        const ids = Array.from({ length: 40 }, (_, i) => `paced-${i}`)
        yield* store.load(ids.map((id) => [id, 6] as const))
        const change = (id: string, version: number) => {
          const state = store.take(id) as Draft
          state.version = version
          store.put(id, 6, state)
        }
        for (const id of ids) change(id, 1)
        // Spread over 800 ms: the last state starts 780 ms in at the soonest.
        const began = Date.now()
        const flushing = yield* store.flush(store.snapshot(6), paced(ids.length, 800)).pipe(Effect.fork)
        // A batch in the middle of it changes states written already and states still waiting.
        yield* Effect.sleep("400 millis")
        for (const id of [ids[0]!, ids[39]!]) change(id, 2)
        expect(yield* Fiber.join(flushing)).toBe(0)
        expect(Date.now() - began).toBeGreaterThanOrEqual(779)
        for (const id of ids) expect([id, (yield* store.stored(id))?.version]).toEqual([id, 1])
        expect(store.dirtyCount(6)).toBe(2)
        // The next one, hurried as a hand-over does, though spread over ten minutes: done at once
        // (the test's timeout would fail it otherwise), the two changes in it.
        for (const id of ids.slice(1, 39)) change(id, 3)
        const pace = paced(ids.length, 600_000)
        const next = yield* store.flush(store.snapshot(6), pace).pipe(Effect.fork)
        yield* Effect.sleep("100 millis")
        pace.hurry()
        expect(yield* Fiber.join(next)).toBe(0)
        expect(store.dirtyCount(6)).toBe(0)
        for (const id of ids) expect([id, (yield* store.stored(id))?.version]).toEqual([id, id === ids[0] || id === ids[39] ? 2 : 3])
      }).pipe(Effect.provide(layer)),
    30_000
  )

  it.effect("a write over a state another owner wrote since is refused, not made (an engine that lost its partition cannot overwrite the new owner)", () =>
    Effect.gen(function* () {
      const old = yield* Layer.build(layer).pipe(Effect.map((context) => Context.get(context, MemberStore)))
      const next = yield* Layer.build(layer).pipe(Effect.map((context) => Context.get(context, MemberStore)))
      yield* old.load([["contested", 1]])
      old.put("contested", 1, { ...old.take("contested"), version: 1 })
      expect(yield* old.flush(old.snapshot(1))).toBe(0)
      // The partition moves: the new owner reads what the old one wrote and writes on.
      yield* next.load([["contested", 1]])
      expect(next.take("contested").version).toBe(1)
      next.put("contested", 1, { ...next.take("contested"), version: 2 })
      expect(yield* next.flush(next.snapshot(1))).toBe(0)
      // The old owner, not knowing, writes again: refused.
      old.put("contested", 1, { ...old.take("contested"), version: 99 })
      expect(yield* old.flush(old.snapshot(1))).toBe(1)
      const stored = yield* next.stored("contested")
      expect(stored?.version).toBe(2)
    }).pipe(Effect.scoped)
  )

  it.effect(
    "in a partition listed, a member KV has none of is made new without asking KV, one it has is read from KV; and one another writer made since is refused at its write, not overwritten",
    () =>
      Effect.gen(function* () {
        const reads = (from: string) =>
          Metric.value(Metric.taggedWithLabels(memberReads, [MetricLabel.make("from", from)])).pipe(Effect.map((state) => state.count))
        const storeOf = Layer.build(layer).pipe(Effect.map((context) => Context.get(context, MemberStore)))
        const before = yield* storeOf
        yield* writeVersion(before, 20, ["20|known"], 3)
        const owner = yield* storeOf
        expect((yield* owner.membersOf(new Set([20]), partitionOf)).get(20)).toEqual(["20|known"])
        const [kv0, listing0] = [yield* reads("kv"), yield* reads("listing")]
        yield* owner.load([["20|known", 20], ["20|new", 20], ["21|unlisted", 21]])
        // Two reads from KV (the member it holds, and one of a partition not listed), one not made.
        expect([(yield* reads("kv")) - kv0, (yield* reads("listing")) - listing0]).toEqual([2, 1])
        expect(owner.take("20|known").version).toBe(3)
        expect(owner.take("20|new").version).toBe(0)
        // Written by this owner, it is listed from the write: read back from KV once evicted.
        owner.put("20|new", 20, { ...owner.take("20|new"), version: 1 })
        expect(yield* owner.flush(owner.snapshot(20))).toBe(0)
        yield* owner.load(Array.from({ length: 20 }, (_, i) => [`20|filler ${i}`, 20] as const))
        yield* owner.load([["someone-else", 0]])
        const kv1 = yield* reads("kv")
        yield* owner.load([["20|new", 20]])
        expect((yield* reads("kv")) - kv1).toBe(1)
        expect(owner.take("20|new").version).toBe(1)
        // Another writer (an engine that has not noticed it lost the partition) makes a member the
        // listing did not have: the owner, made to start it new, cannot write over it.
        yield* writeVersion(before, 20, ["20|late"], 7)
        yield* owner.load([["20|late", 20]])
        expect(owner.take("20|late").version).toBe(0)
        owner.put("20|late", 20, { ...owner.take("20|late"), version: 1 })
        expect(yield* owner.flush(owner.snapshot(20))).toBe(1)
        expect((yield* owner.stored("20|late"))?.version).toBe(7)
      }).pipe(Effect.scoped),
    30_000
  )
})


describe("the member store's writes when NATS stalls", () => {
  it.effect(
    "a write answered too late and retried is recognised as its own, not taken for another engine's (which made a lone engine give its partition up)",
    () =>
      Effect.gen(function* () {
        // A server of its own, frozen for longer than a publish waits for its answer (5 s).
        const nats = yield* Effect.acquireRelease(
          Effect.promise(() => privateNats("store")),
          (server) => Effect.promise(() => server.stop().then(() => rm(server.dir, { recursive: true, force: true })))
        )
        const own = uniqueTopology("storestall")
        const store = yield* Layer.build(
          MemberStore.Default.pipe(
            Layer.provide(Layer.merge(Nats.layer, Topology.make({ stream: own.stream, subjectPrefix: own.subjectPrefix, membersBucket: `${own.kvPrefix}_members` }))),
            Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map([["NATS_URL", nats.url]]))))
          )
        ).pipe(Effect.map((context) => Context.get(context, MemberStore)))
        const change = (version: number) => store.put("stalled", 5, { ...store.take("stalled"), version })
        yield* store.load([["stalled", 5]])
        change(1)
        expect(yield* store.flush(store.snapshot(5))).toBe(0)

        // The write reaches the frozen server; its answer is given up on after 5 s and it is sent
        // again; when the server wakes up it writes the first and refuses the second.
        change(2)
        const frozen = nats.pause(7_000)
        const conflicts = yield* store.flush(store.snapshot(5))
        yield* Effect.promise(() => frozen)
        expect(conflicts).toBe(0)
        expect(store.dirtyCount(5)).toBe(0)
        expect((yield* store.stored("stalled"))?.version).toBe(2)
        // And it knows the revision it wrote: the next write goes through.
        change(3)
        expect(yield* store.flush(store.snapshot(5))).toBe(0)
        expect((yield* store.stored("stalled"))?.version).toBe(3)
      }).pipe(Effect.scoped),
    60_000
  )

  it.effect("a state an engine stored in the former format is read as the current one, and written back compact at its next change", () =>
    Effect.gen(function* () {
      const store = yield* MemberStore
      // As an engine of before the compact format left it in the bucket (test/engine/member/formerFormat.ts).
      const former = readFileSync(join(import.meta.dirname, "member/formerFormat.json"), "utf8")
      const nc = yield* Effect.promise(() => natsConnect())
      const kv = yield* Effect.promise(() => new Kvm(nc).open(`${topology.kvPrefix}_members`))
      yield* Effect.promise(() => kv.put(memberKey("m-1"), former))
      yield* store.load([["m-1", 5]])
      const state = store.take("m-1")
      expect(typeof state.seen).toBe("string")
      expect(state.orders.at).toHaveLength(3)
      const next = applyEvents(state, [purchase("O-9", 100, NOW, "f-p9")], ctx, NOW, { owned: true }).state
      store.put("m-1", 5, next)
      expect(yield* store.flush(store.snapshot(5))).toBe(0)
      const written = JSON.parse((yield* Effect.promise(() => kv.get(memberKey("m-1"))))!.string()) as Record<string, unknown>
      expect(typeof written["seen"]).toBe("string")
      expect(written["orders"]).toMatchObject({ amount: [900, 1200.5, 5600, 100] })
      expect(typeof (written["history"] as Record<string, { recent: unknown }>)["purchase"]!.recent).toBe("string")
      yield* Effect.promise(() => nc.close())
    }).pipe(Effect.provide(layer)), 30_000)

  it.effect("a state written at a checkpoint waits in the cache as the JSON written, and is the same state when used again", () =>
    Effect.gen(function* () {
      const store = yield* MemberStore
      const ids = ["json-a", "json-b", "json-c"]
      yield* store.load(ids.map((id) => [id, 7] as const))
      for (const id of ids) {
        store.put(id, 7, applyEvents(store.take(id), [purchase(`O-${id}`, 500, NOW, `e-${id}`)], ctx, NOW, { owned: true }).state)
      }
      expect(store.heldAsJson()).toBe(0)
      const before = ids.map((id) => JSON.stringify(store.peek(id)))
      expect(yield* store.flush(store.snapshot(7))).toBe(0)
      // clean now: held as the JSON written, known without parsing it
      expect(store.heldAsJson()).toBe(3)
      expect(ids.every((id) => store.known(id))).toBe(true)
      expect(store.known("json-never")).toBe(false)
      expect(store.answer("json-a")).toBe(before[0])
      // used again: the same state, an object again, and changed as any other
      const again = store.take("json-b")
      expect(JSON.stringify(again)).toBe(before[1])
      expect(store.heldAsJson()).toBe(2)
      store.put("json-b", 7, applyEvents(again, [purchase("O-json-b2", 300, NOW, "e-json-b2")], ctx, NOW, { owned: true }).state)
      expect(yield* store.flush(store.snapshot(7))).toBe(0)
      expect((yield* store.stored("json-b"))?.orders.amount).toEqual([500, 300])
      expect(store.take("json-b").orders.amount).toEqual([500, 300])
    }).pipe(Effect.provide(layer)), 30_000)

  it.effect("a state taken and left unchanged (a pass with nothing to do) goes back to the JSON it was parsed from; a changed one does not", () =>
    Effect.gen(function* () {
      const store = yield* MemberStore
      const ids = ["leave-a", "leave-b"]
      yield* store.load(ids.map((id) => [id, 9] as const))
      for (const id of ids) store.put(id, 9, applyEvents(store.take(id), [purchase(`O-${id}`, 500, NOW, `e-${id}`)], ctx, NOW, { owned: true }).state)
      expect(yield* store.flush(store.snapshot(9))).toBe(0)
      const heldBefore = store.heldAsJson()
      const written = store.answer("leave-a")
      const a = store.take("leave-a")
      expect(store.heldAsJson()).toBe(heldBefore - 1)
      store.leave("leave-a")
      expect(store.heldAsJson()).toBe(heldBefore)
      expect(store.answer("leave-a")).toBe(written)
      expect(JSON.stringify(store.take("leave-a"))).toBe(JSON.stringify(a))
      store.leave("leave-a")
      // Changed and put: left alone by leave, written at the next checkpoint.
      const b = applyEvents(store.take("leave-b"), [purchase("O-leave-b2", 300, NOW, "e-leave-b2")], ctx, NOW, { owned: true }).state
      store.put("leave-b", 9, b)
      store.leave("leave-b")
      expect(store.dirtyCount(9)).toBe(1)
      expect(store.take("leave-b").orders.amount).toEqual([500, 300])
      expect(yield* store.flush(store.snapshot(9))).toBe(0)
      expect((yield* store.stored("leave-b"))?.orders.amount).toEqual([500, 300])
      // Read from KV (not in this engine's cache), left unchanged: held as the JSON read.
      yield* Effect.gen(function* () {
        const fresh = yield* MemberStore
        yield* fresh.load([["leave-a", 9]])
        fresh.take("leave-a")
        expect(fresh.heldAsJson()).toBe(0)
        fresh.leave("leave-a")
        expect(fresh.heldAsJson()).toBe(1)
        expect(fresh.answer("leave-a")).toBe(written)
      }).pipe(Effect.provide(layer))
    }).pipe(Effect.provide(layer)), 30_000)

  it.effect("a state changed twice or more between checkpoints stays an object once written; changed once since, it goes to JSON", () =>
    Effect.gen(function* () {
      const store = yield* MemberStore
      yield* store.load([["hot-1", 8], ["cold-1", 8]])
      const change = (id: string, n: number) =>
        store.put(id, 8, applyEvents(store.take(id), [purchase(`O-${id}-${n}`, 100 * n, NOW, `e-${id}-${n}`)], ctx, NOW, { owned: true }).state)
      change("hot-1", 1)
      change("hot-1", 2)
      change("cold-1", 1)
      expect(yield* store.flush(store.snapshot(8))).toBe(0)
      // The hot one is held as its object; both are clean and written as they are.
      expect(store.heldAsJson()).toBe(1)
      expect((yield* store.stored("hot-1"))?.orders.amount).toEqual([100, 200])
      expect(store.answer("hot-1")).toBe(JSON.stringify(store.peek("hot-1")))
      expect(store.dirtyCount(8)).toBe(0)
      // One change in the next interval: cold now, held as the JSON written.
      change("hot-1", 3)
      expect(yield* store.flush(store.snapshot(8))).toBe(0)
      expect(store.heldAsJson()).toBe(2)
      expect(store.take("hot-1").orders.amount).toEqual([100, 200, 300])
      // Hot again, then quiet: the next checkpoint (nothing of it to write) holds it as JSON.
      change("hot-1", 4)
      change("hot-1", 5)
      expect(yield* store.flush(store.snapshot(8))).toBe(0)
      expect(store.heldAsJson()).toBe(1)
      const quiet = store.snapshot(8)
      expect(quiet.states).toHaveLength(0)
      expect(store.heldAsJson()).toBe(2)
      expect(store.answer("hot-1")).toBe(JSON.stringify(store.take("hot-1")))
      expect((yield* store.stored("hot-1"))?.orders.amount).toEqual([100, 200, 300, 400, 500])
    }).pipe(Effect.provide(layer)), 30_000)
})

describe("the member store's states over MEMBERFLOW_KV_VALUE_BYTES", () => {
  const PART_BYTES = 1_024
  const partsLayer = MemberStore.Default.pipe(
    Layer.provide(Layer.merge(Nats.layer, Topology.make({ stream: topology.stream, subjectPrefix: topology.subjectPrefix, membersBucket: `${topology.kvPrefix}_members` }))),
    Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map([["NATS_URL", NATS_URL], ["MEMBERFLOW_CACHE_MEMBERS", "2"], ["MEMBERFLOW_KV_VALUE_BYTES", String(PART_BYTES)]]))))
  )
  const storeOf = Layer.build(partsLayer).pipe(Effect.map((context) => Context.get(context, MemberStore)))
  /** A state `events` applied events long (`seen`: 12 characters each). */
  const grown = (state: ReturnType<MemberStore["take"]>, events: number, version: number) => ({ ...state, version, seen: Array.from({ length: events }, (_, i) => `k${String(i).padStart(11, "0")}`).join("") })
  /** The member's state grown to `events` keys at `version`, then its partition checkpointed: the conflicts `flush` counted. */
  const growAndWrite = (store: MemberStore, id: string, partition: number, events: number, version: number) => {
    store.put(id, partition, grown(store.take(id), events, version))
    return store.flush(store.snapshot(partition))
  }
  /** The part keys in the bucket now. */
  const partsInKv = Effect.promise(async () => {
    const nc = await natsConnect()
    try {
      const kv = await new Kvm(nc).open(`${topology.kvPrefix}_members`)
      const keys: Array<string> = []
      for await (const key of await kv.keys("p.>")) keys.push(key)
      return keys.sort()
    } finally {
      await nc.close()
    }
  })
  const headIn = (memberId: string) =>
    Effect.promise(async () => {
      const nc = await natsConnect()
      try {
        const text = (await (await new Kvm(nc).open(`${topology.kvPrefix}_members`)).get(memberKey(memberId)))?.string() ?? ""
        return text.startsWith('{"$parts":') ? (JSON.parse(text) as { $parts: Array<string>; bytes: number }) : null
      } finally {
        await nc.close()
      }
    })

  it.effect(
    "writes one in parts under a head, reads it back whole (evicted, or by another store), writes it again in new parts and removes the old, and back whole when it fits",
    () =>
      Effect.gen(function* () {
        const store = yield* storeOf
        const id = "12|whale"
        yield* store.load([[id, 12]])
        expect(yield* growAndWrite(store, id, 12, 300, 1)).toBe(0)
        const first = (yield* headIn(id))!
        expect(first.bytes).toBe(JSON.stringify(store.peek(id)).length)
        expect(first.$parts).toHaveLength(Math.ceil(first.bytes / PART_BYTES))
        expect(yield* partsInKv).toEqual([...first.$parts].sort())
        // Read by another store (another engine taking the partition), and by this one once evicted.
        expect((yield* (yield* storeOf).stored(id))?.seen).toBe(store.peek(id).seen)
        yield* store.load([["12|a", 12], ["12|b", 12], ["12|c", 12]])
        yield* store.load([["12|d", 12]])
        // Evicted (a cache of two), so read from KV again: joined from its parts.
        expect(yield* store.load([[id, 12]])).toEqual([id])
        expect(store.take(id).seen).toHaveLength(300 * 12)
        expect(store.take(id).version).toBe(1)
        // Grown and written again: new parts, the old ones gone.
        expect(yield* growAndWrite(store, id, 12, 400, 2)).toBe(0)
        const second = (yield* headIn(id))!
        expect(second.$parts.some((part) => first.$parts.includes(part))).toBe(false)
        expect(yield* partsInKv).toEqual([...second.$parts].sort())
        expect((yield* store.stored(id))?.version).toBe(2)
        // Small again (fits one value): written whole, no part left.
        expect(yield* growAndWrite(store, id, 12, 10, 3)).toBe(0)
        expect(yield* headIn(id)).toBeNull()
        expect(yield* partsInKv).toEqual([])
        expect((yield* store.stored(id))?.version).toBe(3)
      }).pipe(Effect.scoped),
    30_000
  )

  it.effect("a write in parts over a state another owner wrote since is refused, and removes its own parts, leaving the other owner's", () =>
    Effect.gen(function* () {
      const old = yield* storeOf
      const next = yield* storeOf
      const id = "13|contested-whale"
      yield* old.load([[id, 13]])
      expect(yield* growAndWrite(old, id, 13, 300, 1)).toBe(0)
      yield* next.load([[id, 13]])
      expect(yield* growAndWrite(next, id, 13, 350, 2)).toBe(0)
      const nexts = (yield* headIn(id))!.$parts
      expect(yield* growAndWrite(old, id, 13, 320, 99)).toBe(1)
      expect((yield* headIn(id))!.$parts).toEqual(nexts)
      expect((yield* partsInKv).filter((key) => key.startsWith(`p.${memberKey(id).slice(2)}.`))).toEqual([...nexts].sort())
      expect((yield* next.stored(id))?.version).toBe(2)
    }).pipe(Effect.scoped)
  )

  it.effect("a head whose parts are gone (the bucket damaged from outside) is refused with the reason when read, and the parts left are not touched", () =>
    Effect.gen(function* () {
      const store = yield* storeOf
      const id = "14|damaged-whale"
      yield* store.load([[id, 14]])
      expect(yield* growAndWrite(store, id, 14, 300, 1)).toBe(0)
      const parts = (yield* headIn(id))!.$parts
      yield* Effect.promise(async () => {
        const nc = await natsConnect()
        try {
          await (await jetstreamManager(nc)).streams.purge(`KV_${topology.kvPrefix}_members`, { filter: `$KV.${topology.kvPrefix}_members.${parts[1]!}` })
        } finally {
          await nc.close()
        }
      })
      const read = yield* Effect.flip((yield* storeOf).stored(id))
      expect(read.message).toContain(`the state under ${memberKey(id)} names parts that are not there`)
      expect((yield* partsInKv).filter((key) => key.startsWith(`p.${memberKey(id).slice(2)}.`))).toEqual(parts.filter((_, i) => i !== 1).sort())
    }).pipe(Effect.scoped)
  )
})
