import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Context, Effect, Layer } from "effect"
import { MemberStore } from "../../engine/MemberStore.ts"
import { Nats } from "../../engine/Nats.ts"
import { Topology } from "../../engine/Topology.ts"
import { dropTopology, NATS_URL, uniqueTopology } from "../support/nats.ts"

const topology = uniqueTopology("store")

const layer = MemberStore.Default.pipe(
  Layer.provide(Layer.merge(Nats.layer, Topology.make({ stream: topology.stream, subjectPrefix: topology.subjectPrefix, membersBucket: `${topology.kvPrefix}_members` }))),
  Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map([["NATS_URL", NATS_URL], ["MEMBERFLOW_CACHE_MEMBERS", "10"]]))))
)

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
    "lists every member of the asked partitions for a pass: those written to KV by this store or another, evicted or not, and those not written yet",
    () =>
      Effect.gen(function* () {
        const store = yield* MemberStore
        const other = yield* Layer.build(layer).pipe(Effect.map((context) => Context.get(context, MemberStore)))
        const partitionOf = (memberId: string) => Number(memberId.split("|")[0])
        // Written and evicted past the cache size (10), with ids KV keys cannot hold as they are.
        const written = Array.from({ length: 40 }, (_, i) => `${i % 3}|會員 ${i}.x/y`)
        for (const partition of [0, 1, 2]) {
          const mine = written.filter((id) => partitionOf(id) === partition)
          yield* store.load(mine.map((id) => [id, partition] as const))
          for (const id of mine) store.put(id, partition, { ...store.take(id), version: 1 })
          expect(yield* store.flush(store.snapshot(partition))).toBe(0)
        }
        yield* store.load([["1|loaded, never changed", 1]])
        expect(store.cacheSize()).toBeLessThan(40)
        // Written by another engine's store: only in KV.
        yield* other.load([["0|from the other engine", 0]])
        other.put("0|from the other engine", 0, { ...other.take("0|from the other engine"), version: 1 })
        expect(yield* other.flush(other.snapshot(0))).toBe(0)
        // Changed here, not written yet: only in the cache.
        yield* store.load([["2|not written yet", 2]])
        store.put("2|not written yet", 2, { ...store.take("2|not written yet"), version: 1 })

        const listed = yield* store.membersOf(new Set([0, 2]), partitionOf)
        expect([...listed.keys()].sort()).toEqual([0, 2])
        expect([...(listed.get(0) ?? [])].sort()).toEqual([...written.filter((id) => partitionOf(id) === 0), "0|from the other engine"].sort())
        expect([...(listed.get(2) ?? [])].sort()).toEqual([...written.filter((id) => partitionOf(id) === 2), "2|not written yet"].sort())
        // Partitions not asked for are not listed; a partition with no member is listed empty.
        expect((yield* store.membersOf(new Set([7]), partitionOf)).get(7)).toEqual([])
      }).pipe(Effect.scoped, Effect.provide(layer)),
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
    }).pipe(Effect.scoped, Effect.ensuring(Effect.promise(() => dropTopology(topology))))
  )
})

