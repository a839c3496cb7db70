import type { KV } from "@nats-io/kv"

/**
 * Who owns which partition of the members, in the meta KV bucket.
 *
 * - `partitions`: `{count}`, written once by the first engine; every engine reads it, so they all
 *   split members alike (a count cannot change under a running deployment).
 * - `partition.<p>`: `{owner, epoch, position, beat}`. `owner` holds the partition while it keeps
 *   renewing (`beat` grows); `position` is the stream sequence through which every member of the
 *   partition is durable in the members bucket — where the next owner starts reading.
 * - `engine.<id>`: each running engine's heartbeat, so engines can share the partitions evenly.
 *
 * Every write is a compare-and-set on the revision last seen, so of two engines only one can take a
 * partition, and an engine that lost one (it stalled past the lease and another took over) finds out
 * at its next renewal or commit and stops. Expiry is judged by each engine's own clock, by how long
 * a key has not changed, so clocks need not agree.
 */

export interface PartitionRecord {
  readonly owner: string | null
  readonly epoch: number
  readonly position: number
  readonly beat: number
}

interface Observed {
  readonly revision: number
  readonly record: PartitionRecord | null
  /** Local time the revision was first seen. */
  readonly since: number
}

const encoder = new TextEncoder()
const decoder = new TextDecoder()
const encode = (value: unknown): Uint8Array => encoder.encode(JSON.stringify(value))

const isConflict = (error: unknown): boolean =>
  /wrong last sequence|key exists|10071|10164/i.test(error instanceof Error ? error.message : String(error))

export const PARTITIONS_KEY = "partitions"
const partitionKey = (p: number) => `partition.${p}`
const engineKey = (id: string) => `engine.${id}`

/** The partition count: the stored one, or `wanted` stored by the first engine to ask. */
export const partitionCount = async (kv: KV, wanted: number): Promise<number> => {
  for (let attempt = 0; attempt < 5; attempt++) {
    const entry = await kv.get(PARTITIONS_KEY)
    if (entry !== null && entry.operation === "PUT") {
      const count = Number((JSON.parse(decoder.decode(entry.value)) as { count?: unknown }).count)
      if (Number.isInteger(count) && count > 0) return count
    }
    try {
      await kv.create(PARTITIONS_KEY, encode({ count: wanted }))
      return wanted
    } catch (error) {
      if (!isConflict(error)) throw error
    }
  }
  throw new Error("could not agree on the partition count")
}

export interface LeaseDecision {
  /** Partitions this engine took: start reading them from `position`. */
  readonly gained: ReadonlyArray<{ readonly partition: number; readonly position: number }>
  /** Partitions this engine no longer holds (another engine took them): stop at once. */
  readonly lost: ReadonlyArray<number>
  /** Partitions to hand over (more engines now): checkpoint, then `release`. */
  readonly surplus: ReadonlyArray<number>
}

export class Leases {
  private readonly observed = new Map<string, Observed>()
  /** Revision of each partition this engine holds, as last written by it. */
  private readonly held = new Map<number, { revision: number; record: PartitionRecord }>()
  /** One KV operation at a time per partition: renewals and commits share its revision. */
  private readonly queues = new Map<number, Promise<unknown>>()
  private beat = 0
  /** Set by `stopTaking` (shutdown): no round takes a partition or beats from then on. */
  private closing = false
  /** The round under way, if any: `leave` waits for it. */
  private running: Promise<LeaseDecision> | null = null

  constructor(
    private readonly kv: KV,
    readonly engineId: string,
    readonly count: number,
    private readonly ttlMs: number,
    private readonly now: () => number = Date.now
  ) {}

  owned(): ReadonlyArray<number> {
    return [...this.held.keys()].sort((a, b) => a - b)
  }

  private serial<A>(partition: number, f: () => Promise<A>): Promise<A> {
    const previous = this.queues.get(partition) ?? Promise.resolve()
    const next = previous.then(f, f)
    this.queues.set(partition, next.catch(() => undefined))
    return next
  }

  private see(key: string, revision: number, record: PartitionRecord | null): Observed {
    const before = this.observed.get(key)
    const seen = before !== undefined && before.revision === revision ? before : { revision, record, since: this.now() }
    this.observed.set(key, seen)
    return seen
  }

  /** Live engines: those whose heartbeat changed within the lease time (this one included). */
  private async liveEngines(): Promise<number> {
    let live = 1
    const keys: Array<string> = []
    for await (const key of await this.kv.keys("engine.>")) keys.push(key)
    for (const key of keys) {
      if (key === engineKey(this.engineId)) continue
      const entry = await this.kv.get(key)
      if (entry === null || entry.operation !== "PUT") continue
      const seen = this.see(key, entry.revision, null)
      const quiet = this.now() - seen.since
      if (quiet < this.ttlMs) live++
      // The heartbeat of an engine killed long ago: nobody else will remove it.
      else if (quiet > 10 * this.ttlMs) await this.kv.delete(key, { previousSeq: entry.revision }).catch(() => undefined)
    }
    return live
  }

  /**
   * One round: heartbeat, renew what is held, then take free or expired partitions up to a fair
   * share, or name the surplus to hand over. Called every `ttlMs / 5`.
   */
  round(): Promise<LeaseDecision> {
    const running = this.roundOnce().finally(() => {
      if (this.running === running) this.running = null
    })
    this.running = running
    return running
  }

  private async roundOnce(): Promise<LeaseDecision> {
    if (this.closing) return { gained: [], lost: [], surplus: [] }
    this.beat++
    await this.kv.put(engineKey(this.engineId), encode({ beat: this.beat }))
    const lost: Array<number> = []
    for (const partition of [...this.held.keys()]) {
      if (!(await this.renew(partition))) lost.push(partition)
    }
    const live = await this.liveEngines()
    const share = Math.ceil(this.count / live)
    const gained: Array<{ partition: number; position: number }> = []
    const surplus: Array<number> = []
    if (this.held.size > share) {
      surplus.push(...this.owned().slice(share))
    } else {
      // Start the search at a place of this engine's own, so engines starting together spread out.
      const offset = [...this.engineId].reduce((sum, c) => sum + c.charCodeAt(0), 0) % this.count
      for (let i = 0; i < this.count && this.held.size < share && !this.closing; i++) {
        const partition = (offset + i) % this.count
        if (this.held.has(partition)) continue
        const position = await this.claim(partition)
        if (position !== null) gained.push({ partition, position })
      }
    }
    return { gained, lost, surplus }
  }

  /** Takes a partition that is free, or whose owner stopped renewing it a lease time ago. */
  private async claim(partition: number): Promise<number | null> {
    const key = partitionKey(partition)
    const entry = await this.kv.get(key)
    const record = entry === null || entry.operation !== "PUT" ? null : (JSON.parse(decoder.decode(entry.value)) as PartitionRecord)
    if (entry !== null) {
      const seen = this.see(key, entry.revision, record)
      const expired = record === null || record.owner === null || record.owner === this.engineId || this.now() - seen.since >= this.ttlMs
      if (!expired) return null
    }
    const next: PartitionRecord = { owner: this.engineId, epoch: (record?.epoch ?? 0) + 1, position: record?.position ?? 0, beat: 0 }
    try {
      const revision = entry === null ? await this.kv.create(key, encode(next)) : await this.kv.update(key, encode(next), entry.revision)
      this.held.set(partition, { revision, record: next })
      return next.position
    } catch (error) {
      if (isConflict(error)) return null
      throw error
    }
  }

  private write(partition: number, change: (record: PartitionRecord) => PartitionRecord | null): Promise<boolean> {
    return this.serial(partition, async () => {
      const held = this.held.get(partition)
      if (held === undefined) return false
      const next = change(held.record)
      try {
        if (next === null) {
          this.held.delete(partition)
          return true
        }
        const revision = await this.kv.update(partitionKey(partition), encode(next), held.revision)
        this.held.set(partition, { revision, record: next })
        return true
      } catch (error) {
        if (!isConflict(error)) throw error
        this.held.delete(partition)
        return false
      }
    })
  }

  /** Keeps the lease; false when another engine took the partition meanwhile. */
  renew(partition: number): Promise<boolean> {
    return this.write(partition, (record) => ({ ...record, beat: record.beat + 1 }))
  }

  /** Records that every member of the partition is durable through `position`; false when no longer held. */
  commit(partition: number, position: number): Promise<boolean> {
    return this.write(partition, (record) => ({ ...record, position: Math.max(record.position, position), beat: record.beat + 1 }))
  }

  /** Hands the partition over at `position` (already committed), for another engine to take at once. */
  release(partition: number, position: number): Promise<boolean> {
    return this.serial(partition, async () => {
      const held = this.held.get(partition)
      if (held === undefined) return false
      this.held.delete(partition)
      try {
        const next: PartitionRecord = { ...held.record, owner: null, position: Math.max(held.record.position, position) }
        await this.kv.update(partitionKey(partition), encode(next), held.revision)
        return true
      } catch (error) {
        if (isConflict(error)) return false
        throw error
      }
    })
  }

  /** The committed position a held partition has in KV. */
  position(partition: number): number | null {
    return this.held.get(partition)?.record.position ?? null
  }

  /** Drops a held partition without writing (its lease will expire): after losing a write race. */
  forget(partition: number): void {
    this.held.delete(partition)
  }

  /**
   * Shutdown begins: no round takes a partition or beats from now on. A round already under way
   * when the engine began handing its partitions over took them back as they came free (their
   * owner gone: free to take) and held them until their lease ran out, so that no engine had them
   * for seconds (`Partitions.test.ts`, once in a full run; `Leases.test.ts`).
   */
  stopTaking(): void {
    this.closing = true
  }

  /**
   * Stops this engine's heartbeat, so the others count it out at once. First the round under way
   * is waited for, and what it took that the engine never began (not in `begun`) is handed back as
   * it was.
   */
  async leave(begun: (partition: number) => boolean = () => true): Promise<void> {
    this.closing = true
    await this.running?.catch(() => undefined)
    for (const partition of this.owned()) {
      if (!begun(partition)) await this.release(partition, this.position(partition) ?? 0)
    }
    await this.kv.delete(engineKey(this.engineId))
  }
}
