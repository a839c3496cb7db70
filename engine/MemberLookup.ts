import type { KV } from "@nats-io/kv"
import { headers, type Msg } from "@nats-io/transport-node"
import { Data, Effect, Either } from "effect"
import { memberKey, MemberStoreError } from "./MemberStore.ts"
import { type MemberState, parseStoredState } from "./member/MemberState.ts"
import { partitionOf } from "./ingest/Partition.ts"
import { PARTITIONS_KEY } from "./ingest/Leases.ts"
import { Nats } from "./Nats.ts"
import { bytesOver, cut, join, readStored } from "./store/StateParts.ts"
import { Topology, type TopologyShape } from "./Topology.ts"

/** Where the owner of a partition answers for its members' current state. */
export const memberSubject = (topology: TopologyShape, partition: number): string => `_memberflow.${topology.membersBucket}.member.${partition}`

/** Set on an owner's answer while it replays the partition: how many events its states are behind. */
export const REPLAYING_HEADER = "Memberflow-Replaying"

/**
 * On an owner's answer too large for one message (a state over `MEMBERFLOW_KV_VALUE_BYTES`: see
 * engine/store/StateParts.ts): how many parts it is in. The first answer carries no data, only this;
 * the asker asks again with `WANT_PARTS_HEADER`, and the parts come as that many answers, in order.
 */
export const PARTS_HEADER = "Memberflow-Parts"
export const WANT_PARTS_HEADER = "Memberflow-Want-Parts"

/** The owner's answer to a lookup: the state's JSON (null: not held here), whole or in parts (`PARTS_HEADER`). */
export const respondWithState = (msg: Msg, json: string | null, partBytes: number): void => {
  if (json === null) {
    msg.respond("")
    return
  }
  const bytes = bytesOver(json, partBytes)
  if (bytes === null) {
    msg.respond(json)
    return
  }
  const pieces = cut(bytes, partBytes)
  const parts = headers()
  parts.set(PARTS_HEADER, `${pieces.length} ${bytes.length}`)
  if (msg.headers?.get(WANT_PARTS_HEADER) !== "1") {
    msg.respond("", { headers: parts })
    return
  }
  for (const piece of pieces) msg.respond(piece, { headers: parts })
}

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

    const parseText = (memberId: string, json: string) =>
      Either.match(parseStoredState(json, memberId), {
        onLeft: (problem) => Effect.fail(new MemberStoreError({ memberId, reason: `its stored state cannot be read: ${problem}` })),
        onRight: Effect.succeed
      })
    const parse = (memberId: string, bytes: Uint8Array) => parseText(memberId, decoder.decode(bytes))

    /**
     * The owner's answer in parts (`respondWithState`), gathered from as many answers: null when they
     * did not all come in time, or an answer came whole after all (then that is the state).
     */
    const askForParts = async (subject: string, memberId: string): Promise<string | null> => {
      const want = headers()
      want.set(WANT_PARTS_HEADER, "1")
      const answers = await connection.requestMany(subject, memberId, { maxWait: 5_000, strategy: "timer", noMux: true, headers: want })
      const pieces: Array<Uint8Array> = []
      for await (const answer of answers) {
        const [count, bytes] = (answer.headers?.get(PARTS_HEADER) ?? "").split(" ").map(Number)
        if (count === undefined || !(count > 0) || bytes === undefined) return answer.data.length > 0 && !answer.headers?.has(REPLAYING_HEADER) ? decoder.decode(answer.data) : null
        pieces.push(answer.data)
        if (pieces.length === count) return join(pieces, bytes)
      }
      return null
    }

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
              if ((answer.value.headers?.get(PARTS_HEADER) ?? "") === "") break
              // Too large for one message: asked again for its parts.
              const json = yield* use("ask the member's owner for its parts", () => askForParts(memberSubject(topology, partition), memberId)).pipe(Effect.option)
              if (json._tag === "Some" && json.value !== null) return yield* parseText(memberId, json.value)
              if (Date.now() >= deadline) break
              yield* Effect.sleep(REPLAY_POLL_MS)
              continue
            }
            // The owner is replaying: neither its states nor KV's are to be trusted yet.
            if (Date.now() >= deadline) return yield* new MemberReplayingError({ memberId, partition, behind: Number(behind) })
            yield* Effect.sleep(REPLAY_POLL_MS)
          }
        }
        const value = yield* use("kv get member", () => readStored(members, memberKey(memberId))).pipe(
          Effect.mapError((error) => new MemberStoreError({ memberId, reason: error.message, cause: error }))
        )
        if (value === null) return null
        return yield* parseText(memberId, value.json)
      }).pipe(Effect.withSpan("MemberLookup.get"))

    return { get } as const
  })
}) {}
