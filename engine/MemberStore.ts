import type { KV } from "@nats-io/kv"
import { Config, Data, Effect } from "effect"
import { type ApplyResult, clearOutbox, emptyState, type MemberState } from "./member/MemberState.ts"
import { Nats, type NatsError } from "./Nats.ts"
import { Topology } from "./Topology.ts"

export class MemberStateCorrupt extends Data.TaggedError("MemberStateCorrupt")<{
  readonly memberId: string
  readonly cause: unknown
}> {}

export class CasExhausted extends Data.TaggedError("CasExhausted")<{ readonly memberId: string; readonly attempts: number }> {}

interface Entry {
  readonly state: MemberState
  /** KV revision the state was read or written at; 0 = the key does not exist yet. */
  readonly revision: number
  /** Derived events already published from this state's outbox, cleared on the next write. */
  readonly published: ReadonlySet<string>
}

export interface Updated {
  readonly memberId: string
  readonly result: ApplyResult
  /** True when the state was written (a changed result). */
  readonly written: boolean
}

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/** KV keys allow `[-/_=.a-zA-Z0-9]`; member ids are any 1–128 chars, so the key is base64url. */
export const memberKey = (memberId: string): string => `m.${Buffer.from(memberId, "utf8").toString("base64url")}`
export const memberIdOfKey = (key: string): string => Buffer.from(key.slice(2), "base64url").toString("utf8")

/** A compare-and-set lost to another writer: someone else changed the member first. */
const isConflict = (error: NatsError): boolean =>
  error.cause instanceof Error && /wrong last sequence|key exists|10071/i.test(error.cause.message)

/**
 * Member state, durable in NATS KV and cached in process.
 *
 * Every write is a compare-and-set on the KV revision the state was read at, so two engines
 * applying events of one member at once never lose an update: the loser re-reads and re-applies,
 * and the per-member event-id memory turns anything already applied into a no-op.
 */
export class MemberStore extends Effect.Service<MemberStore>()("memberflow/MemberStore", {
  scoped: Effect.gen(function* () {
    const { kvm, use } = yield* Nats
    const topology = yield* Topology
    const cacheSize = yield* Config.integer("MEMBERFLOW_CACHE_MEMBERS").pipe(Config.withDefault(250_000))
    const kv: KV = yield* use("open members bucket", () => kvm.create(topology.membersBucket, { history: 1 }))
    const cache = new Map<string, Entry>()

    const remember = (memberId: string, entry: Entry) => {
      cache.delete(memberId)
      cache.set(memberId, entry)
      if (cache.size > cacheSize) {
        const oldest = cache.keys().next()
        if (oldest.done !== true) cache.delete(oldest.value)
      }
    }

    const read = (memberId: string): Effect.Effect<Entry, NatsError | MemberStateCorrupt> =>
      use("kv get", () => kv.get(memberKey(memberId))).pipe(
        Effect.flatMap((found) => {
          if (found === null || found.operation !== "PUT") {
            return Effect.succeed<Entry>({ state: emptyState(memberId), revision: found?.revision ?? 0, published: new Set() })
          }
          return Effect.try({
            try: (): Entry => ({ state: JSON.parse(decoder.decode(found.value)) as MemberState, revision: found.revision, published: new Set() }),
            catch: (cause) => new MemberStateCorrupt({ memberId, cause })
          })
        })
      )

    const cached = (memberId: string) => {
      const hit = cache.get(memberId)
      return hit !== undefined ? Effect.succeed(hit) : read(memberId)
    }

    const write = (memberId: string, entry: Entry, state: MemberState) => {
      const bytes = encoder.encode(JSON.stringify(state))
      const key = memberKey(memberId)
      return entry.revision === 0
        ? use("kv create", () => kv.create(key, bytes))
        : use("kv update", () => kv.update(key, bytes, entry.revision))
    }

    /**
     * Applies `f` to the member's current state and writes the result with compare-and-set,
     * re-reading and re-applying on conflict.
     */
    const update = (memberId: string, f: (state: MemberState) => ApplyResult) =>
      Effect.gen(function* () {
        let entry = yield* cached(memberId)
        for (let attempt = 1; attempt <= 50; attempt++) {
          const base = entry.published.size > 0 ? clearOutbox(entry.state, [...entry.published]) : entry.state
          const result = f(base)
          if (!result.changed) {
            remember(memberId, entry)
            return { memberId, result, written: false } satisfies Updated
          }
          const outcome = yield* write(memberId, entry, result.state).pipe(Effect.either)
          if (outcome._tag === "Right") {
            remember(memberId, { state: result.state, revision: outcome.right, published: new Set() })
            return { memberId, result, written: true } satisfies Updated
          }
          if (!isConflict(outcome.left)) return yield* outcome.left
          cache.delete(memberId)
          entry = yield* read(memberId)
        }
        return yield* new CasExhausted({ memberId, attempts: 50 })
      })

    /** Marks derived events as published so the next write drops them from the outbox. */
    const markPublished = (memberId: string, ids: ReadonlyArray<string>) => {
      const hit = cache.get(memberId)
      if (hit !== undefined && ids.length > 0) {
        cache.set(memberId, { ...hit, published: new Set([...hit.published, ...ids]) })
      }
    }

    const get = (memberId: string) => cached(memberId).pipe(Effect.map((entry) => entry.state))

    /** Reads straight from KV, bypassing the cache (what another engine may have written). */
    const getFresh = (memberId: string) => read(memberId).pipe(Effect.map((entry) => (entry.revision === 0 ? null : entry.state)))

    const memberIds = use("kv keys", async () => {
      const ids: Array<string> = []
      for await (const key of await kv.keys("m.>")) ids.push(memberIdOfKey(key))
      return ids
    })

    return { update, markPublished, get, getFresh, memberIds, cacheSize: () => cache.size } as const
  })
}) {}
