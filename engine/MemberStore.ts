import type { KV } from "@nats-io/kv"
import { Config, Data, Effect } from "effect"
import { type ApplyOptions, type ApplyResult, clearOutbox, emptyState, type MemberState } from "./member/MemberState.ts"
import { casConflicts, retries } from "./Metrics.ts"
import { Nats } from "./Nats.ts"
import { Topology } from "./Topology.ts"

export class MemberStoreError extends Data.TaggedError("MemberStoreError")<{
  readonly memberId: string
  readonly reason: string
  readonly cause?: unknown
}> {
  override get message(): string {
    return `member ${this.memberId}: ${this.reason}`
  }
}

interface Entry {
  /**
   * The state as the JSON last read or written: ~10× smaller than the parsed object graph, so the
   * cache holds 100,000 members in ~150 MB instead of >1 GB, and every update works on a fresh copy.
   */
  readonly json: string
  /** KV revision the state was read or written at; 0 = the key does not exist yet. */
  readonly revision: number
  /** Derived events already published from this state's outbox, dropped on the next write. */
  readonly published: ReadonlySet<string>
}

export interface Updated {
  readonly memberId: string
  readonly result: ApplyResult
  /** True when the state was written (a changed result). */
  readonly written: boolean
}

/** What to do to one member: `f` may mutate the state it is given (see `update`). */
export type Change = readonly [memberId: string, f: (state: MemberState, options: ApplyOptions) => ApplyResult]

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/** KV keys allow `[-/_=.a-zA-Z0-9]`; member ids are any 1–128 chars, so the key is base64url. */
export const memberKey = (memberId: string): string => `m.${Buffer.from(memberId, "utf8").toString("base64url")}`
export const memberIdOfKey = (key: string): string => Buffer.from(key.slice(2), "base64url").toString("utf8")

const messageOf = (error: unknown): string => (error instanceof Error ? error.message : String(error))

/** A compare-and-set lost to another writer: someone else changed the member first. */
const isConflict = (error: unknown): boolean => /wrong last sequence|key exists|10071/i.test(messageOf(error))

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** Capped, jittered backoff for a store that is briefly away (NATS restarting): 200 ms … 10 s. */
const backoff = (attempt: number) => Math.min(10_000, 200 * 1.5 ** attempt) * (0.5 + Math.random())

/**
 * Member state, durable in NATS KV and cached in process.
 *
 * Every write is a compare-and-set on the KV revision the state was read at, so two engines
 * applying events of one member at once never lose an update: the loser re-reads and re-applies,
 * and the per-member event-id memory turns anything already applied into a no-op.
 *
 * The hot path is one Effect per batch with plain promises inside, up to `concurrency` members in
 * flight: a fiber per member cost more CPU than the KV write it waited for (BENCHMARKS.md).
 */
export class MemberStore extends Effect.Service<MemberStore>()("memberflow/MemberStore", {
  scoped: Effect.gen(function* () {
    const { kvm, use } = yield* Nats
    const topology = yield* Topology
    const cacheSize = yield* Config.integer("MEMBERFLOW_CACHE_MEMBERS").pipe(Config.withDefault(250_000))
    const kv: KV = yield* use("open members bucket", () => kvm.create(topology.membersBucket, { history: 1 }))
    const cache = new Map<string, Entry>()

    /** Least recently used goes first: a Map iterates in insertion order, so re-insert on use. */
    const remember = (memberId: string, entry: Entry) => {
      cache.delete(memberId)
      cache.set(memberId, entry)
      if (cache.size > cacheSize) {
        const oldest = cache.keys().next()
        if (oldest.done !== true) cache.delete(oldest.value)
      }
    }

    const read = async (memberId: string): Promise<Entry> => {
      const found = await kv.get(memberKey(memberId))
      if (found === null || found.operation !== "PUT") {
        return { json: JSON.stringify(emptyState(memberId)), revision: found?.revision ?? 0, published: new Set() }
      }
      return { json: decoder.decode(found.value), revision: found.revision, published: new Set() }
    }

    /** Retries what fails for reasons outside the member (NATS away) until it succeeds. */
    const persistently = async <A>(memberId: string, operation: () => Promise<A>): Promise<A> => {
      for (let attempt = 0; ; attempt++) {
        try {
          return await operation()
        } catch (error) {
          if (error instanceof MemberStoreError || isConflict(error)) throw error
          retries.unsafeUpdate(1, [])
          if (attempt % 10 === 9) {
            Effect.runFork(Effect.logWarning("member store unavailable, retrying").pipe(Effect.annotateLogs({ memberId, error: messageOf(error) })))
          }
          await sleep(backoff(attempt))
        }
      }
    }

    const parse = (memberId: string, entry: Entry): MemberState => {
      try {
        return JSON.parse(entry.json) as MemberState
      } catch (cause) {
        throw new MemberStoreError({ memberId, reason: "stored state is not valid JSON", cause })
      }
    }

    const updateOne = async (memberId: string, f: Change[1]): Promise<Updated> => {
      let entry = cache.get(memberId) ?? (await persistently(memberId, () => read(memberId)))
      for (let attempt = 1; attempt <= 50; attempt++) {
        // A fresh parse is ours alone: `f` may mutate it in place.
        const state = parse(memberId, entry)
        const base = entry.published.size > 0 ? clearOutbox(state, [...entry.published]) : state
        const result = f(base, { owned: true })
        if (!result.changed) {
          remember(memberId, entry)
          return { memberId, result, written: false }
        }
        const json = JSON.stringify(result.state)
        const bytes = encoder.encode(json)
        const key = memberKey(memberId)
        const revision = entry.revision
        try {
          const written = await persistently(memberId, () => (revision === 0 ? kv.create(key, bytes) : kv.update(key, bytes, revision)))
          remember(memberId, { json, revision: written, published: new Set() })
          return { memberId, result, written: true }
        } catch (error) {
          if (!isConflict(error)) throw error
          casConflicts.unsafeUpdate(1, [])
          cache.delete(memberId)
          entry = await persistently(memberId, () => read(memberId))
        }
      }
      throw new MemberStoreError({ memberId, reason: "50 compare-and-set attempts lost to other writers" })
    }

    /**
     * Applies each change with compare-and-set, up to `concurrency` members at once. Transient
     * failures are retried inside; the Effect fails only on a state that cannot be read.
     */
    const updateMany = (changes: Iterable<Change>, concurrency = 512) =>
      Effect.tryPromise({
        try: async () => {
          const work = [...changes]
          const results = new Array<Updated>(work.length)
          let next = 0
          const worker = async () => {
            while (next < work.length) {
              const i = next++
              const [memberId, f] = work[i]!
              results[i] = await updateOne(memberId, f)
            }
          }
          await Promise.all(Array.from({ length: Math.min(concurrency, work.length) }, worker))
          return results
        },
        catch: (cause) =>
          cause instanceof MemberStoreError ? cause : new MemberStoreError({ memberId: "?", reason: messageOf(cause), cause })
      }).pipe(Effect.withSpan("MemberStore.updateMany"))

    /**
     * Marks derived events (or outbox rows) as published so the next write drops them from the
     * outbox. Returns the ids not marked before: a row written again before its drop is not new.
     */
    const markPublished = (memberId: string, ids: ReadonlyArray<string>): ReadonlyArray<string> => {
      const hit = cache.get(memberId)
      if (hit === undefined || ids.length === 0) return ids
      const fresh = ids.filter((id) => !hit.published.has(id))
      if (fresh.length > 0) cache.set(memberId, { ...hit, published: new Set([...hit.published, ...fresh]) })
      return fresh
    }

    /** Reads straight from KV, bypassing the cache (what another engine may have written). */
    const getFresh = (memberId: string) =>
      Effect.tryPromise({
        try: () => read(memberId),
        catch: (cause) => (cause instanceof MemberStoreError ? cause : new MemberStoreError({ memberId, reason: messageOf(cause), cause }))
      }).pipe(
        Effect.flatMap((entry) =>
          entry.revision === 0
            ? Effect.succeed(null)
            : Effect.try({
                try: () => parse(memberId, entry),
                catch: (cause) => (cause instanceof MemberStoreError ? cause : new MemberStoreError({ memberId, reason: messageOf(cause), cause }))
              })
        )
      )

    const memberIds = use("kv keys", async () => {
      const ids: Array<string> = []
      for await (const key of await kv.keys("m.>")) ids.push(memberIdOfKey(key))
      return ids
    })

    return { updateMany, markPublished, getFresh, memberIds, cacheSize: () => cache.size } as const
  })
}) {}
