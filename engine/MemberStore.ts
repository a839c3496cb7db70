import { DeliverPolicy } from "@nats-io/jetstream"
import type { KV } from "@nats-io/kv"
import { Config, Data, Effect, Either, MetricLabel } from "effect"
import { type Pace, unpaced } from "./ingest/CheckpointPace.ts"
import { emptyState, type MemberState, parseState, parseStoredState } from "./member/MemberState.ts"
import { casConflicts, memberReads, membersUnreadable, retries } from "./Metrics.ts"
import { Nats } from "./Nats.ts"
import { bytesOver, cut, headText, partKeys, readStored, removeParts, UnreadableState } from "./store/StateParts.ts"
import { Topology } from "./Topology.ts"
import * as Settings from "./Settings.ts"

export class MemberStoreError extends Data.TaggedError("MemberStoreError")<{
  readonly memberId: string
  readonly reason: string
  readonly cause?: unknown
}> {
  override get message(): string {
    return `member ${this.memberId}: ${this.reason}`
  }
}

/** KV keys allow `[-/_=.a-zA-Z0-9]`; member ids are any 1–128 chars, so the key is base64url. */
export const memberKey = (memberId: string): string => `m.${Buffer.from(memberId, "utf8").toString("base64url")}`
export const memberIdOfKey = (key: string): string => Buffer.from(key.slice(2), "base64url").toString("utf8")

const kvLabel = MetricLabel.make("from", "kv")
const listingLabel = MetricLabel.make("from", "listing")
const messageOf = (error: unknown): string => (error instanceof Error ? error.message : String(error))
const isConflict = (error: unknown): boolean => /wrong last sequence|key exists|10071/i.test(messageOf(error))
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))
/** Capped, jittered backoff for a store that is briefly away (NATS restarting): 200 ms … 10 s. */
const backoff = (attempt: number) => Math.min(10_000, 200 * 1.5 ** attempt) * (0.5 + Math.random())

/** The member's state from its value in the bucket, or `UnreadableState` with what is wrong with it. */
export const storedState = (json: string, memberId: string): MemberState =>
  Either.getOrThrowWith(parseStoredState(json, memberId), (problem) => new UnreadableState(problem))

interface Entry {
  /**
   * The state, its outbox and rows empty, as the object itself while it is in use; null while it is
   * held as `json`. An object per event was the largest cost of the hot path as a JSON round trip.
   */
  state: MemberState | null
  /**
   * The state as the JSON last written or read from KV, while it has not changed since (null once
   * it has): clean states wait in the cache as one string each, not as a graph of objects that every
   * full collection of the heap must mark (with 150,000 of them as objects, marking took 0.5–0.7 s
   * of the engine's thread every half minute, and timers fired up to 1.6 s late; BENCHMARKS.md).
   * Parsed again when next used, and kept beside that object until it changes (`leave`).
   */
  json: string | null
  /** KV revision of the copy in the members bucket; 0 = none there yet. */
  revision: number
  readonly partition: number
  /** Generation of the latest change not yet in KV; 0 = what KV holds. */
  dirty: number
  /** The `load` that last asked for it: the batch being applied holds it, so it is not evicted. */
  used: number
  /** A checkpoint's copy of the state not made yet (see `Snapshot`). */
  copy: Copy | null
  /** Changes since the last checkpoint's barrier: how hot the state is (see `HOT_CHANGES`). */
  changes: number
}

/**
 * A state changed this often between two checkpoints stays an object once written: held as JSON it
 * would be parsed again at its next event, and the string and the new objects both outlive the
 * young generation. In bench:ingest (every member changed three or four times an interval) that
 * churn was 1.8 of the 4.4 GB the young-generation collector promoted, and the JSON cache cost a
 * fifth of the throughput (BENCHMARKS.md). Members changed once (enrolled, then waiting) go to JSON,
 * and a hot one that has not changed by its partition's next checkpoint too (`snapshot`).
 */
const HOT_CHANGES = 2

/**
 * One state of a snapshot, as it was at the barrier. Its JSON is made when it is written, or
 * earlier if a batch is about to change the state first (`take`), whichever comes first.
 */
interface Copy {
  readonly memberId: string
  readonly revision: number
  readonly dirty: number
  /** The state itself, unchanged since the barrier; null once `json` is made. */
  state: MemberState | null
  json: string | null
  /** The entry's `changes` in the interval the barrier closed. */
  readonly changes: number
}

/**
 * Dirty states of one partition, taken at a checkpoint barrier, to be written to KV.
 *
 * Copy on write: the barrier only notes the states. Serializing them all there held every state of
 * a partition as JSON until its KV writes were done, and with checkpoints of several partitions in
 * flight that was a quarter of the engine's live heap (210 MB of 700 MB in the 1,000,000-event
 * benchmark, BENCHMARKS.md). Now a state is serialized just before it is written, unless a batch
 * changes it in between; then it is serialized just before that batch takes it.
 */
export interface Snapshot {
  readonly partition: number
  readonly states: ReadonlyArray<Copy>
}

/** The copy's JSON, made now if not yet: the state has not changed since the barrier. */
const jsonOf = (copy: Copy): string => {
  if (copy.json === null) {
    copy.json = JSON.stringify(copy.state)
    copy.state = null
  }
  return copy.json
}

/**
 * The entry's state as an object, parsed from its JSON if it is held as that. The JSON stays beside
 * it until the state changes (`put`), so that one taken and left unchanged (`leave`) goes back to it.
 */
const stateOf = (entry: Entry): MemberState => {
  if (entry.state === null) entry.state = parseState(entry.json!)
  return entry.state
}

/** Makes the entry's pending copy before its state changes. */
const settle = (entry: Entry): void => {
  if (entry.copy === null) return
  jsonOf(entry.copy)
  entry.copy = null
}

/**
 * The member states of the partitions this engine owns (engine/Ingest.ts), held in process.
 *
 * Only the owner of a partition changes its members, so a change is a plain in-memory write; what
 * makes it durable is the stream the changes came from plus the checkpoints: every few seconds the
 * states changed since the last one are written to the members bucket (NATS KV), then the partition's
 * position. A crash replays the stream from that position and, because a state remembers the ids of
 * the events it applied, ends where it would have.
 *
 * Each KV write is a compare-and-set on the revision the owner last read or wrote: an engine that
 * lost its partition without noticing cannot overwrite what the new owner wrote.
 *
 * Cache: every dirty state stays until written; clean ones are held as the JSON written (`Entry`),
 * dropped least recently used first beyond `MEMBERFLOW_CACHE_MEMBERS` and read again from KV when
 * needed.
 */
export class MemberStore extends Effect.Service<MemberStore>()("memberflow/MemberStore", {
  scoped: Effect.gen(function* () {
    const { connection, js, jsm, kvm, publisher, use } = yield* Nats
    const topology = yield* Topology
    const cacheSize = yield* Settings.cacheMembers
    /** How long a member whose stored state cannot be read is held aside before its key is read again. */
    const recheckMs = yield* Settings.unreadableRecheckMs
    /**
     * The largest state written as one KV value; a larger one goes in parts (engine/store/StateParts.ts).
     * By default the server's largest message less room for the headers.
     */
    const maxPayload = connection.info?.max_payload ?? 1_048_576
    const partBytes = yield* Config.integer("MEMBERFLOW_KV_VALUE_BYTES").pipe(
      Config.withDefault(Math.max(1_024, maxPayload - 4_096)),
      Config.validate({
        message: `MEMBERFLOW_KV_VALUE_BYTES must be from 1,024 to the NATS server's max_payload less 1,024 (${maxPayload - 1_024} here)`,
        validation: (n) => n >= 1_024 && n <= maxPayload - 1_024
      })
    )
    /** The part keys each member stored in parts has in KV now (by its key), to be removed once written over. */
    const partsOf = new Map<string, ReadonlyArray<string>>()
    const kv: KV = yield* use("open members bucket", () => kvm.create(topology.membersBucket, { history: 1 }))
    const cache = new Map<string, Entry>()
    const dirtyByPartition = new Map<number, Set<string>>()
    /** Members kept as objects at their partition's last write (hot): looked at again at the next barrier. */
    const keptHot = new Map<number, Set<string>>()
    let generation = 0

    /** Retries what fails for reasons outside the member (NATS away) until it succeeds. */
    const persistently = async <A>(operation: () => Promise<A>): Promise<A> => {
      for (let attempt = 0; ; attempt++) {
        try {
          return await operation()
        } catch (error) {
          if (isConflict(error) || error instanceof UnreadableState) throw error
          retries.unsafeUpdate(1, [])
          if (attempt % 10 === 9) Effect.runFork(Effect.logWarning("member store unavailable, retrying").pipe(Effect.annotateLogs({ error: messageOf(error) })))
          await sleep(backoff(attempt))
        }
      }
    }

    const touch = (memberId: string, entry: Entry) => {
      cache.delete(memberId)
      cache.set(memberId, entry)
    }

    /**
     * Drops the least recently used clean states beyond the cache size; dirty ones wait for their
     * write. Looks at a few entries per call, so a cache full of dirty states costs nothing extra.
     * The walk goes on from where the last call stopped (a Map iterator stays valid while the Map
     * changes): starting from the front each time, it would step again over every entry deleted
     * there since the Map last compacted itself, which grows with every eviction.
     */
    let cursor: Iterator<[string, Entry]> | null = null
    /** Counts the calls of `load`: the members of the batch being applied are those of the last one. */
    let loads = 0
    const evict = () => {
      if (cache.size <= cacheSize) return
      for (let looked = 0; looked < 64 && cache.size > cacheSize; looked++) {
        cursor ??= cache.entries()
        const next = cursor.next()
        if (next.done === true) {
          cursor = null
          continue
        }
        const [memberId, entry] = next.value
        if (entry.dirty === 0 && entry.used !== loads && cache.get(memberId) === entry) cache.delete(memberId)
      }
    }

    /**
     * Members whose value in the bucket cannot be made a state (`UnreadableState`), with why and
     * since when. They are not cached, so nothing is ever written over the value; their events are
     * refused with the reason (dead-lettered, kept for a replay) while the rest flow on. Retried
     * reading, the load of every batch with their events failed again and held up the whole engine.
     * Read again `MEMBERFLOW_UNREADABLE_RECHECK_MS` after: a key repaired (or deleted) is taken up by itself.
     */
    const unreadableMembers = new Map<string, { readonly reason: string; readonly since: number }>()

    /** Why the member's events cannot be applied now (its stored state cannot be read), or null. */
    const unreadable = (memberId: string): string | null => (unreadableMembers.size === 0 ? null : (unreadableMembers.get(memberId)?.reason ?? null))

    /** A member KV holds nothing for (yet): the empty state, clean, at `revision` (0 = no key). */
    const emptyEntry = (memberId: string, partition: number, revision: number): Entry => ({
      state: emptyState(memberId),
      json: null,
      revision,
      partition,
      dirty: 0,
      used: loads,
      copy: null,
      changes: 0
    })

    const read = async (memberId: string, partition: number): Promise<Entry | UnreadableState> => {
      // A partition listed (`indexes`) names every member KV holds for it: one not there is new, and
      // asking KV would only say so. A fresh engine importing a history asked KV for every member's
      // first event, one request each — 100,000 in the first seconds of the 1,000,000-event benchmark.
      if (indexes.get(partition)?.has(memberId) === false) {
        memberReads.unsafeUpdate(1, [listingLabel])
        return emptyEntry(memberId, partition, 0)
      }
      memberReads.unsafeUpdate(1, [kvLabel])
      const key = memberKey(memberId)
      const found = await persistently(() => kv.get(key))
      if (found === null || found.operation !== "PUT") {
        return emptyEntry(memberId, partition, found?.revision ?? 0)
      }
      try {
        // The JSON read stays beside the state until it changes: a pass that changes nothing leaves
        // the member as that string (`leave`), not as objects until it is evicted.
        // Joined from its parts if stored in parts (engine/store/StateParts.ts).
        const value = await persistently(() => readStored(kv, key, found))
        if (value === null) return emptyEntry(memberId, partition, 0)
        const state = storedState(value.json, memberId)
        if (value.parts !== null) partsOf.set(key, value.parts)
        return { state, json: value.json, revision: value.revision, partition, dirty: 0, used: loads, copy: null, changes: 0 }
      } catch (error) {
        if (error instanceof UnreadableState) return error
        throw error
      }
    }

    /** Holds the member aside (`unreadableMembers`), said once in the log and counted. */
    const holdAside = (memberId: string, error: UnreadableState) => {
      const reason = `member ${memberId}: its stored state cannot be read (${error.message}); its events are dead-lettered until the key ${memberKey(memberId)} in the members bucket is repaired or deleted`
      const before = unreadableMembers.get(memberId)
      unreadableMembers.set(memberId, { reason, since: Date.now() })
      membersUnreadable.unsafeUpdate(unreadableMembers.size, [])
      if (before?.reason !== reason) Effect.runFork(Effect.logError("a member's stored state cannot be read").pipe(Effect.annotateLogs({ memberId, reason })))
    }

    /** Reads the states not in the cache from KV, up to 256 at once; gives the members it read. */
    const load = (members: ReadonlyArray<readonly [memberId: string, partition: number]>) =>
      Effect.tryPromise({
        try: async () => {
          // The batch about to be applied holds these: none is evicted before its change is put
          // back (an evicted one would be put back without its KV revision, and its write refused).
          loads++
          evict()
          for (const [memberId] of members) {
            const entry = cache.get(memberId)
            if (entry !== undefined) entry.used = loads
          }
          // Held aside: read again once MEMBERFLOW_UNREADABLE_RECHECK_MS have passed, and held again or let go by what it reads.
          const now = Date.now()
          const heldAside = (memberId: string) => {
            const held = unreadableMembers.size === 0 ? undefined : unreadableMembers.get(memberId)
            return held !== undefined && now - held.since < recheckMs
          }
          const missing = members.filter(([memberId]) => !cache.has(memberId) && !heldAside(memberId))
          const readIn: Array<string> = []
          let next = 0
          const worker = async () => {
            while (next < missing.length) {
              const [memberId, partition] = missing[next++]!
              const entry = await read(memberId, partition)
              if (entry instanceof UnreadableState) {
                holdAside(memberId, entry)
                continue
              }
              if (unreadableMembers.delete(memberId)) membersUnreadable.unsafeUpdate(unreadableMembers.size, [])
              if (!cache.has(memberId)) {
                cache.set(memberId, entry)
                readIn.push(memberId)
              }
            }
          }
          await Promise.all(Array.from({ length: Math.min(256, missing.length) }, worker))
          return readIn as ReadonlyArray<string>
        },
        catch: (cause) => new MemberStoreError({ memberId: "?", reason: messageOf(cause), cause })
      })

    /**
     * A member's state, the caller's to change in place (it must have been loaded): only the
     * partition's owner, one batch at a time, changes it, and `put` says it did. A checkpoint's copy
     * of it still to be made is made now.
     */
    const take = (memberId: string): MemberState => {
      const entry = cache.get(memberId)
      if (entry === undefined) return emptyState(memberId)
      settle(entry)
      return stateOf(entry)
    }

    /** Not changed since it was read or written, and no checkpoint's copy of it is still to be made. */
    const asStored = (entry: Entry): boolean => entry.dirty === 0 && entry.copy === null

    /**
     * The state taken was not changed (a pass found nothing to do for the member): held as the JSON
     * it was parsed from again. A pass over every member parsed each one it looked at and kept the
     * object until the member's next change; with 1,000,000 members in journeys, the hourly sweep
     * raised the peak RSS by 850 MB (BENCHMARKS.md). A change made in place and not reported is
     * dropped with the object: it was never durable (a restart reads the JSON too).
     */
    const leave = (memberId: string): void => {
      const entry = cache.get(memberId)
      if (entry !== undefined && entry.json !== null && asStored(entry)) entry.state = null
    }

    /**
     * Drops the members from the cache again where they are as stored (not changed since read, no
     * checkpoint copy pending): a pass over every member reads the ones not cached, and kept, they
     * pushed the members events come for out of the cache (least recently read first), and with a
     * sweep over 1,000,000 members the peak RSS was 800 MB higher (BENCHMARKS.md, Journeys; most
     * likely a pass at full speed reads them faster than `evict` drops them).
     */
    const forget = (memberIds: Iterable<string>): void => {
      for (const memberId of memberIds) {
        const entry = cache.get(memberId)
        if (entry !== undefined && asStored(entry)) cache.delete(memberId)
      }
    }

    /** A member's state to read, not to change. */
    const peek = (memberId: string): MemberState => {
      const entry = cache.get(memberId)
      return entry === undefined ? emptyState(memberId) : stateOf(entry)
    }

    /** Whether the member has a state beyond the empty one (without parsing one held as JSON: it has). */
    const known = (memberId: string): boolean => {
      const entry = cache.get(memberId)
      return entry !== undefined && (entry.state === null || entry.state.version > 0)
    }

    /** Records a changed state; it is written to KV at its partition's next checkpoint. */
    const put = (memberId: string, partition: number, state: MemberState) => {
      const entry = cache.get(memberId)
      generation++
      if (entry === undefined) {
        touch(memberId, { state, json: null, revision: 0, partition, dirty: generation, used: loads, copy: null, changes: 1 })
      } else {
        settle(entry)
        entry.state = state
        entry.json = null
        entry.dirty = generation
        entry.changes++
        touch(memberId, entry)
      }
      let dirty = dirtyByPartition.get(partition)
      if (dirty === undefined) dirtyByPartition.set(partition, (dirty = new Set()))
      dirty.add(memberId)
      evict()
    }

    const dirtyCount = (partition: number): number => dirtyByPartition.get(partition)?.size ?? 0

    /** The partition's dirty states as they are now: call it between batches. */
    const snapshot = (partition: number): Snapshot => {
      // Kept as objects at the last write and not changed since: cooled down, held as JSON now
      // (between batches: no batch holds their objects).
      const hot = keptHot.get(partition)
      if (hot !== undefined) {
        for (const memberId of hot) {
          const entry = cache.get(memberId)
          if (entry !== undefined && asStored(entry) && entry.state !== null) {
            entry.json ??= JSON.stringify(entry.state)
            entry.state = null
          }
        }
        keptHot.delete(partition)
      }
      const states: Array<Copy> = []
      for (const memberId of dirtyByPartition.get(partition) ?? []) {
        const entry = cache.get(memberId)
        if (entry === undefined || entry.dirty === 0) continue
        settle(entry)
        entry.copy = { memberId, revision: entry.revision, dirty: entry.dirty, state: stateOf(entry), json: null, changes: entry.changes }
        entry.changes = 0
        states.push(entry.copy)
      }
      return { partition, states }
    }

    /**
     * One state's compare-and-set write, through the engine's publisher (members are never deleted:
     * a checkpoint is thousands of these), retried while NATS is away. An attempt whose answer did
     * not come in time may have been written all the same: its retry then finds "wrong last
     * sequence", and it is this write, not another writer's, when the value there is ours. (Counted
     * as a conflict, it made a lone engine give up a partition, under load.)
     */
    const writeValue = async (key: string, value: string, revision: number): Promise<number> => {
      let attempts = 0
      try {
        return await persistently(() => {
          attempts++
          return publisher.kvWrite(topology.membersBucket, key, value, revision)
        })
      } catch (error) {
        if (!isConflict(error) || attempts === 1) throw error
        const found = await persistently(() => kv.get(key))
        if (found !== null && found.operation === "PUT" && found.string() === value) return found.revision
        throw error
      }
    }

    /**
     * A state's write: whole, or over `partBytes` its parts first and then the head naming them
     * (engine/store/StateParts.ts). The parts the member had before are removed once the new value
     * is written; a write refused (another writer first) removes its own instead.
     */
    const writeState = async (key: string, json: string, revision: number): Promise<number> => {
      const before = partsOf.get(key)
      const bytes = bytesOver(json, partBytes)
      if (bytes === null) {
        const written = await writeValue(key, json, revision)
        if (before !== undefined) await dropParts(key, before)
        return written
      }
      const pieces = cut(bytes, partBytes)
      const keys = partKeys(key, pieces.length)
      await Promise.all(pieces.map((piece, i) => persistently(() => publisher.publish(`$KV.${topology.membersBucket}.${keys[i]!}`, piece))))
      let written: number
      try {
        written = await writeValue(key, headText(keys, bytes.length), revision)
      } catch (error) {
        await removeParts(jsm, topology.membersBucket, keys).catch(() => undefined)
        throw error
      }
      partsOf.set(key, keys)
      if (before !== undefined) await dropParts(key, before)
      return written
    }

    /** Removes parts written over; what fails to go stays behind as garbage, named by no head. */
    const dropParts = async (key: string, parts: ReadonlyArray<string>): Promise<void> => {
      if (partsOf.get(key) === parts) partsOf.delete(key)
      await removeParts(jsm, topology.membersBucket, parts).catch((error) =>
        Effect.runFork(Effect.logWarning("removing a state's former parts failed").pipe(Effect.annotateLogs({ key, error: messageOf(error) })))
      )
    }

    /**
     * Writes a snapshot to KV, up to 256 at once, each a compare-and-set, as fast as `pace` lets them
     * start (engine/ingest/CheckpointPace.ts). Returns the number of states another writer had
     * changed first (nonzero: the partition is no longer ours alone).
     */
    const flush = (snap: Snapshot, pace: Pace = unpaced) =>
      Effect.tryPromise({
        try: async () => {
          let conflicts = 0
          let next = 0
          const worker = async () => {
            while (next < snap.states.length) {
              const turn = pace.turn(next)
              if (turn !== undefined) {
                await turn
                continue
              }
              const copy = snap.states[next++]!
              const { memberId, revision, dirty } = copy
              const key = memberKey(memberId)
              const json = jsonOf(copy)
              // Written from here on: the next change of the state needs no copy of it.
              const held = cache.get(memberId)
              if (held?.copy === copy) held.copy = null
              copy.json = null
              try {
                const written = await writeState(key, json, revision)
                for (const listing of listings) listing.add(memberId)
                indexes.get(snap.partition)?.add(memberId)
                const entry = cache.get(memberId)
                if (entry !== undefined) {
                  entry.revision = written
                  if (entry.dirty === dirty) {
                    entry.dirty = 0
                    dirtyByPartition.get(snap.partition)?.delete(memberId)
                    // Unchanged since the barrier: what was written is the state, kept as that
                    // unless the member is hot. A batch holding the object now puts it back if it
                    // changes it (`put`).
                    if (entry.copy === null) {
                      if (copy.changes < HOT_CHANGES) {
                        entry.json = json
                        entry.state = null
                      } else {
                        let hot = keptHot.get(snap.partition)
                        if (hot === undefined) keptHot.set(snap.partition, (hot = new Set()))
                        hot.add(memberId)
                      }
                    }
                  }
                }
              } catch (error) {
                if (!isConflict(error)) throw error
                conflicts++
                casConflicts.unsafeUpdate(1, [])
              }
            }
          }
          await Promise.all(Array.from({ length: Math.min(256, snap.states.length) }, worker))
          evict()
          return conflicts
        },
        catch: (cause) => new MemberStoreError({ memberId: "?", reason: messageOf(cause), cause })
      }).pipe(Effect.withSpan("MemberStore.flush"))

    /** Forgets a partition's states (handed over, or lost to another engine). */
    const dropPartition = (partition: number) => {
      for (const [memberId, entry] of cache) if (entry.partition === partition) cache.delete(memberId)
      dirtyByPartition.delete(partition)
      keptHot.delete(partition)
      indexes.delete(partition)
      indexing.delete(partition)
      drops.set(partition, (drops.get(partition) ?? 0) + 1)
    }

    /**
     * The state as this engine holds it (JSON), for a lookup from another process; null when it is
     * not cached here (then KV has the latest) or was never anything but empty.
     */
    const answer = (memberId: string): string | null => {
      const entry = cache.get(memberId)
      if (entry === undefined || (entry.revision === 0 && entry.dirty === 0)) return null
      return entry.json ?? JSON.stringify(entry.state)
    }

    /** Reads a member straight from KV: what a checkpoint last wrote. */
    const stored = (memberId: string) =>
      Effect.tryPromise({
        try: async () => {
          const value = await readStored(kv, memberKey(memberId))
          return value === null ? null : storedState(value.json, memberId)
        },
        catch: (cause) => new MemberStoreError({ memberId, reason: messageOf(cause), cause })
      })

    /** Members written while a listing runs, one set per listing (see `listKeys`). */
    const listings = new Set<Set<string>>()
    /**
     * Per partition, once listed: every member of it in KV, kept whole from then on by this store's
     * own writes (only a partition's owner writes its members), so that the passes after the first
     * need no listing. Listing 100,000 keys took about 10 of the 17 s of the hourly sweep in the
     * 1,000,000-event benchmark, and with 1,000,000 members it was a read of the whole bucket every
     * hour (BENCHMARKS.md). Forgotten with the partition: one taken again is listed again.
     */
    const indexes = new Map<number, Set<string>>()
    /** Listings under way, by partition: a pass that needs one waits for it instead of listing again. */
    const indexing = new Map<number, Promise<void>>()
    /** Counts each partition's drops: a listing that began before a drop does not index it. */
    const drops = new Map<number, number>()

    /**
     * The members of the given partitions in KV, read from the bucket, indexed (`indexes`).
     *
     * The keys are read from the bucket's stream with an ordered consumer from its first message,
     * headers only: the bucket keeps one message per key, so that is every key. `kv.keys()` asks the
     * server for the last message of each subject instead; with 1,000,000 members the server took
     * 4.4 s to start answering (12.5 s in all, against 6.8 s this way, on an idle machine), and
     * under load its request timed out — which stopped ingestion (BENCHMARKS.md).
     *
     * The consumer reads the whole stream, without a subject filter: the bucket holds member keys
     * only, and a filtered consumer's creation made the NATS server (2.9) count the matching
     * messages first — 630 ms for 1,000,000 keys, during which it answered no publish of any stream,
     * so every timer and event of the engine waited at each pass's start (BENCHMARKS.md). A subject
     * that is not a member key is skipped.
     *
     * It reads up to the stream's last message at the start, in fetches: a key written meanwhile
     * moves to the end of the stream, so a read to the end chased this engine's own checkpoints and,
     * in the 1,000,000-event benchmark, read 180,000 messages for 100,000 keys and then hung (a
     * `consume` that stopped being given messages). What is written meanwhile is this engine's
     * (only the owner writes a partition's members), and it is listed from the writes themselves.
     */
    const listKeys = async (
      partitions: ReadonlyArray<number>,
      partitionOf: (memberId: string) => number,
      paced: <A>(work: () => Promise<A>) => Promise<A>
    ): Promise<void> => {
      const droppedBefore = partitions.map((p) => drops.get(p) ?? 0)
      const written = new Set<string>()
      listings.add(written)
      try {
        const ids = new Map<number, Set<string>>(partitions.map((p) => [p, new Set<string>()]))
        const add = (memberId: string) => ids.get(partitionOf(memberId))?.add(memberId)
        const stream = `KV_${topology.membersBucket}`
        const prefix = `$KV.${topology.membersBucket}.`
        const keys = `${prefix}m.`
        const end = (await jsm.streams.info(stream)).state.last_seq
        const consumer = await js.consumers.get(stream, { deliver_policy: DeliverPolicy.All, headers_only: true })
        // One fetch of 2,000 keys at a time, each when the pacer lets it (engine/ingest/PassPacer.ts):
        // the keys of a fetch arrive and are parsed in one go, on the thread the batches need.
        const fetchKeys = async () => {
          const messages = await consumer.fetch({ max_messages: 2_000, expires: 5_000 })
          let got = 0
          for await (const msg of messages) {
            got++
            const operation = msg.headers?.get("KV-Operation")
            if (operation !== "DEL" && operation !== "PURGE" && msg.subject.startsWith(keys)) add(memberIdOfKey(msg.subject.slice(prefix.length)))
            if (msg.seq >= end || msg.info.pending === 0) return true
          }
          // None within the fetch's time: done only if none is pending (every message up to `end`
          // written over since, and listed below), not if the server was slow to answer.
          return got === 0 && (await consumer.info(false)).num_pending === 0
        }
        for (let done = end === 0; !done; ) done = await paced(fetchKeys)
        // In the same step as the writes made meanwhile are added: from here on `flush` adds them.
        for (const memberId of written) add(memberId)
        partitions.forEach((p, i) => {
          if ((drops.get(p) ?? 0) === droppedBefore[i]) indexes.set(p, ids.get(p)!)
        })
      } finally {
        listings.delete(written)
      }
    }

    /**
     * Every member of the given partitions, by partition: those in KV and those not written there
     * yet (cached). A partition not indexed yet is listed first (`listKeys`), or waited for if a
     * listing of it is under way; one dropped meanwhile is given no members.
     */
    const membersOf = (
      partitions: ReadonlySet<number>,
      partitionOf: (memberId: string) => number,
      paced: <A>(work: () => Promise<A>) => Promise<A> = (work) => work()
    ) =>
      use("list members", async () => {
        const unlisted = [...partitions].filter((p) => !indexes.has(p) && !indexing.has(p))
        if (unlisted.length > 0) {
          const listing: Promise<void> = listKeys(unlisted, partitionOf, paced).finally(() => {
            for (const p of unlisted) if (indexing.get(p) === listing) indexing.delete(p)
          })
          // Awaited below, or by the next pass; a failure is that caller's to retry.
          listing.catch(() => undefined)
          for (const p of unlisted) indexing.set(p, listing)
        }
        for (const p of partitions) await indexing.get(p)
        // The cached members not written yet, then the index copied as it is: a copy of the index
        // into a new set first took 300 ms of the thread at once for 1,000,000 members, this 85 ms.
        const unwritten = new Map([...partitions].map((p) => [p, [] as Array<string>] as const))
        for (const [memberId, entry] of cache) {
          const list = unwritten.get(entry.partition)
          if (list !== undefined && indexes.get(entry.partition)?.has(memberId) !== true) list.push(memberId)
        }
        return new Map([...unwritten].map(([p, list]) => [p, [...(indexes.get(p) ?? []), ...list]] as const))
      })

    /** How many cached states are held as their JSON (clean since their checkpoint). */
    const heldAsJson = (): number => {
      let n = 0
      for (const entry of cache.values()) if (entry.state === null) n++
      return n
    }

    return { load, unreadable, forget, take, leave, peek, known, heldAsJson, put, dirtyCount, snapshot, flush, dropPartition, answer, stored, membersOf, partBytes, cacheSize: () => cache.size } as const
  })
}) {}
