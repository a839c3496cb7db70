import type { KV } from "@nats-io/kv"
import { Effect } from "effect"
import { memberKey, MemberStoreError } from "./MemberStore.ts"
import { type MemberState, parseState } from "./member/MemberState.ts"
import { partitionOf } from "./ingest/Partition.ts"
import { PARTITIONS_KEY } from "./ingest/Leases.ts"
import { Nats } from "./Nats.ts"
import { Topology, type TopologyShape } from "./Topology.ts"

/** Where the owner of a partition answers for its members' current state. */
export const memberSubject = (topology: TopologyShape, partition: number): string => `_memberflow.${topology.membersBucket}.member.${partition}`

const decoder = new TextDecoder()

/**
 * A member's state as it is now, from any process: the engine owning the member's partition answers
 * with what it holds (newer than KV between checkpoints); when none does (no engine running, or the
 * member is only in KV) the members bucket answers. Null for an unknown member.
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

    const get = (memberId: string): Effect.Effect<MemberState | null, MemberStoreError> =>
      Effect.gen(function* () {
        const n = yield* partitions
        if (n !== null) {
          const answer = yield* use("ask the member's owner", () =>
            connection.request(memberSubject(topology, partitionOf(memberId, n)), memberId, { timeout: 2_000 })
          ).pipe(Effect.option)
          if (answer._tag === "Some" && answer.value.data.length > 0) return yield* parse(memberId, answer.value.data)
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
