import type { KV } from "@nats-io/kv"
import { Data, Effect } from "effect"
import { memberKey, MemberStoreError } from "./MemberStore.ts"
import { type MemberState, parseState } from "./member/MemberState.ts"
import { partitionOf } from "./ingest/Partition.ts"
import { PARTITIONS_KEY } from "./ingest/Leases.ts"
import { Nats } from "./Nats.ts"
import { Topology, type TopologyShape } from "./Topology.ts"

/** Where the owner of a partition answers for its members' current state. */
export const memberSubject = (topology: TopologyShape, partition: number): string => `_memberflow.${topology.membersBucket}.member.${partition}`

/** Set on an owner's answer while it replays the partition: how many events its states are behind. */
export const REPLAYING_HEADER = "Memberflow-Replaying"

/** How long a lookup waits, by default, for a partition's owner to finish replaying before it gives up. */
const REPLAY_WAIT_MS = 10_000
const REPLAY_POLL_MS = 200

/**
 * The member's partition is being replayed by its owner (taken after a crash, or handed over at its
 * last checkpoint): the state it holds, and KV's, may be older than the stream. Try again shortly.
 */
export class MemberReplayingError extends Data.TaggedError("MemberReplayingError")<{
  readonly memberId: string
  readonly partition: number
  /** Events the partition was still behind at the last answer. */
  readonly behind: number
}> {
  override get message(): string {
    return `member ${this.memberId}: partition ${this.partition} is being replayed by its owner (${this.behind} events behind); try again shortly`
  }
}

/**
 * No engine answers for the member's partition now (a hand-over, a killed owner's lease running out):
 * KV holds only its last checkpoint, which can be older than the stream. Try again shortly.
 */
export class MemberUnownedError extends Data.TaggedError("MemberUnownedError")<{
  readonly memberId: string
  readonly partition: number
}> {
  override get message(): string {
    return `member ${this.memberId}: no engine answers for partition ${this.partition} now; try again shortly`
  }
}

const decoder = new TextDecoder()

/**
 * A member's state as it is now, from any process: the engine owning the member's partition answers
 * with what it holds (newer than KV between checkpoints); when none does (no engine running, or the
 * member is only in KV) the members bucket answers, at once or, with `awaitOwner`, once the wait for
 * an owner is over. Null for an unknown member.
 */
export class MemberLookup extends Effect.Service<MemberLookup>()("memberflow/MemberLookup", {
  effect: Effect.gen(function* () {
    const { connection, kvm, use } = yield* Nats
    const topology = yield* Topology
    const meta: KV = yield* use("open meta bucket", () => kvm.create(topology.metaBucket, { history: 5 }))
    const members: KV = yield* use("open members bucket", () => kvm.create(topology.membersBucket, { history: 1 }))
    let count: number | null = null

    const partitions = Effect.gen(function* () {
      if (count !== null) return count
      const entry = yield* use("kv get partitions", () => meta.get(PARTITIONS_KEY)).pipe(Effect.orElseSucceed(() => null))
      const stored = entry === null || entry.operation !== "PUT" ? NaN : Number((JSON.parse(decoder.decode(entry.value)) as { count?: unknown }).count)
      // The count never changes once stored; until an engine stores it, nobody owns anything.
      if (Number.isInteger(stored) && stored > 0) count = stored
      return count
    })

    const parse = (memberId: string, bytes: Uint8Array) =>
      Effect.try({
        try: () => parseState(decoder.decode(bytes)),
        catch: (cause) => new MemberStoreError({ memberId, reason: "state is not valid JSON", cause })
      })

    /**
     * `waitMs`: how long to wait for an owner that is replaying (0: fail at once, for a caller that
     * retries later anyway). `awaitOwner`: while no engine owns the partition (a hand-over, a killed
     * owner's lease running out), wait within `waitMs` too, for the next owner, before reading KV —
     * for a caller inside a running engine, where some engine takes the partition shortly. KV holds
     * the last checkpoint, which can be older than the stream (an owner killed between checkpoints):
     * a member read from it then looked unknown.
     * `unowned: "fail"`: when no owner has answered by then, fail with `MemberUnownedError` instead of
     * reading KV — for a caller that must not act on an older state and retries later anyway (the
     * delivery worker's consent check: KV can predate an opt-out).
     */
    const get = (
      memberId: string,
      options?: { readonly waitMs?: number; readonly awaitOwner?: boolean; readonly unowned?: "kv" | "fail" }
    ): Effect.Effect<MemberState | null, MemberStoreError | MemberReplayingError | MemberUnownedError> =>
      Effect.gen(function* () {
        const n = yield* partitions
        if (n !== null) {
          const partition = partitionOf(memberId, n)
          const deadline = Date.now() + (options?.waitMs ?? REPLAY_WAIT_MS)
          for (;;) {
            const answer = yield* use("ask the member's owner", () =>
              connection.request(memberSubject(topology, partition), memberId, { timeout: 2_000 })
            ).pipe(Effect.option)
            if (answer._tag === "None") {
              // No owner (or none answering): the next one, if the caller may wait for it; else KV,
              // or the caller told to come back.
              if (options?.awaitOwner !== true || Date.now() >= deadline) {
                if (options?.unowned === "fail") return yield* new MemberUnownedError({ memberId, partition })
                break
              }
              yield* Effect.sleep(REPLAY_POLL_MS)
              continue
            }
            const behind = answer.value.headers?.get(REPLAYING_HEADER)
            if (behind === undefined || behind === "") {
              if (answer.value.data.length > 0) return yield* parse(memberId, answer.value.data)
              break
            }
            // The owner is replaying: neither its states nor KV's are to be trusted yet.
            if (Date.now() >= deadline) return yield* new MemberReplayingError({ memberId, partition, behind: Number(behind) })
            yield* Effect.sleep(REPLAY_POLL_MS)
          }
        }
        const entry = yield* use("kv get member", () => members.get(memberKey(memberId))).pipe(
          Effect.mapError((error) => new MemberStoreError({ memberId, reason: error.message, cause: error }))
        )
        if (entry === null || entry.operation !== "PUT") return null
        return yield* parse(memberId, entry.value)
      }).pipe(Effect.withSpan("MemberLookup.get"))

    return { get } as const
  })
}) {}
