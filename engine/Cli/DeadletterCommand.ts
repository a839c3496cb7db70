import { Command, Options } from "@effect/cli"
import { DeliverPolicy } from "@nats-io/jetstream"
import { Console, Data, Effect, Option } from "effect"
import { Nats } from "../Nats.ts"
import { ensureTopology, Topology } from "../Topology.ts"

export class DeadletterFailed extends Data.TaggedError("DeadletterFailed")<{ readonly message: string }> {}

/** One message of the dead-letter stream: a refused event as it came, and why (engine/ingest/RecordBatch.ts). */
export interface DeadLetter {
  readonly seq: number
  readonly at: Date
  /** The subject it was published on (`Memberflow-Subject`). */
  readonly subject: string
  readonly reason: string
  /** The member it names, when its payload is JSON that names one. */
  readonly memberId: string | null
  readonly data: Uint8Array
}

const memberOf = (data: Uint8Array): string | null => {
  try {
    const parsed = JSON.parse(new TextDecoder().decode(data)) as { memberId?: unknown }
    return typeof parsed.memberId === "string" ? parsed.memberId : null
  } catch {
    return null
  }
}

/** A `--reason` and `--member` choice of letters. */
export interface LetterFilter {
  readonly reason: Option.Option<string>
  readonly member: Option.Option<string>
}

const matches = (letter: DeadLetter, filter: LetterFilter): boolean =>
  Option.match(filter.reason, { onNone: () => true, onSome: (text) => letter.reason.toLowerCase().includes(text.toLowerCase()) }) &&
  Option.match(filter.member, { onNone: () => true, onSome: (id) => letter.memberId === id })

/**
 * The dead letters that match, oldest first: the stream read from its first message to the last one
 * there when the read began, with an ordered consumer (what is dead-lettered meanwhile waits for the
 * next run).
 */
export const readDeadLetters = (filter: LetterFilter) =>
  Effect.gen(function* () {
    const { js, jsm, use } = yield* Nats
    const topology = yield* Topology
    const stream = topology.deadletterStream
    const info = yield* use("dead-letter stream info", () => jsm.streams.info(stream))
    const end = info.state.last_seq
    const letters: Array<DeadLetter> = []
    if (info.state.messages === 0) return letters
    const consumer = yield* use("read the dead letters", () => js.consumers.get(stream, { deliver_policy: DeliverPolicy.All }))
    let done = false
    while (!done) {
      const batch = yield* use("read the dead letters", async () => {
        const got: Array<DeadLetter> = []
        const messages = await consumer.fetch({ max_messages: 1_000, expires: 5_000 })
        for await (const msg of messages) {
          got.push({
            seq: msg.seq,
            at: new Date(Number(msg.info.timestampNanos / 1e6)),
            subject: msg.headers?.get("Memberflow-Subject") ?? "",
            reason: msg.headers?.get("Memberflow-Reason") ?? "",
            memberId: memberOf(msg.data),
            data: msg.data
          })
          if (msg.seq >= end || msg.info.pending === 0) break
        }
        return got
      })
      for (const letter of batch) if (letter.seq <= end && matches(letter, filter)) letters.push(letter)
      done = batch.length === 0 || batch[batch.length - 1]!.seq >= end
    }
    return letters
  })

/**
 * Publishes each letter again on the subject it first came on, then deletes it from the dead-letter
 * stream: the engine takes it like any event (applied once its cause is repaired, dead-lettered again
 * with the reason if not). Its `Nats-Msg-Id` names the letter, so a replay repeated within
 * JetStream's duplicate window is not published twice; not the event's id, which JetStream would
 * drop as a duplicate of the first publish within that window.
 */
export const replayDeadLetters = (letters: ReadonlyArray<DeadLetter>) =>
  Effect.gen(function* () {
    const { js, jsm, use } = yield* Nats
    const topology = yield* Topology
    let replayed = 0
    for (const letter of letters) {
      if (!letter.subject.startsWith(`${topology.subjectPrefix}.`)) {
        return yield* new DeadletterFailed({ message: `dead letter #${letter.seq} came on ${JSON.stringify(letter.subject)}, not an event subject under ${topology.subjectPrefix}.; nothing after it was replayed` })
      }
      yield* use("publish a dead letter again", () => js.publish(letter.subject, letter.data, { msgID: `${topology.deadletterStream}:${letter.seq}` }))
      yield* use("delete a replayed dead letter", () => jsm.streams.deleteMessage(topology.deadletterStream, letter.seq, false))
      replayed++
    }
    return replayed
  })

const clip = (text: string, width: number) => (text.length <= width ? text : `${text.slice(0, width - 1)}…`)

export const deadletterCommand = Command.make(
  "deadletter",
  {
    reason: Options.text("reason").pipe(Options.withDescription("only the letters whose reason contains this text (any case)"), Options.optional),
    member: Options.text("member").pipe(Options.withDescription("only the letters of this member"), Options.optional),
    replay: Options.boolean("replay").pipe(Options.withDescription("publish them again on their subjects, and delete them from the dead-letter stream")),
    limit: Options.integer("limit").pipe(Options.withDescription("list at most this many"), Options.withDefault(50))
  },
  ({ limit, member, reason, replay }) =>
    Effect.gen(function* () {
      yield* ensureTopology()
      const letters = yield* readDeadLetters({ reason, member })
      for (const letter of letters.slice(0, limit)) {
        yield* Console.log(`#${letter.seq}  ${letter.at.toISOString()}  ${letter.subject}  ${letter.memberId ?? "-"}  ${clip(letter.reason, 160)}`)
      }
      if (letters.length > limit) yield* Console.log(`… and ${letters.length - limit} more`)
      if (!replay) {
        yield* Console.log(`${letters.length} dead letter${letters.length === 1 ? "" : "s"}${Option.isSome(reason) || Option.isSome(member) ? " match" : ""}`)
        return
      }
      const replayed = yield* replayDeadLetters(letters)
      yield* Console.log(`replayed ${replayed} dead letter${replayed === 1 ? "" : "s"} onto the event stream, and deleted them from the dead-letter stream`)
    })
).pipe(Command.withDescription("list the dead-lettered events (refused, with the reason), and --replay them once their cause is repaired"))
