import type { KV } from "@nats-io/kv"
import { createHash } from "node:crypto"
import { Effect } from "effect"
import { Nats } from "../Nats.ts"
import { Topology } from "../Topology.ts"
import type { Channel } from "../../schemas/Program.ts"
import { chTime, type MessageRow } from "../../schemas/Rows.ts"
import type { MessageRequest } from "../journeys/Apply.ts"
import type { NatsError } from "../Nats.ts"
import type { StreamPublisher } from "../nats/StreamPublisher.ts"

/**
 * The send ledger: one NATS KV entry per message, written with compare-and-set before and after the
 * provider is called (channels.md rule 5). It is what makes a message go out once whatever is
 * replayed, restarted or run twice:
 * - `attempt`: a process is handing it over right now (or died doing so: then the outcome is unknown);
 * - `retry`: the provider refused it for now; try again at `next`;
 * - `sent` / `delivered` / `failed` / `suppressed`: final, never handed over again.
 */

export type LedgerStatus = "attempt" | "retry" | "sent" | "delivered" | "failed" | "suppressed"

export interface LedgerEntry {
  readonly status: LedgerStatus
  /** which of the request's channels (0 = the step's, then its fallbacks) */
  readonly idx: number
  readonly channel: Channel
  /** transient failures so far on this channel */
  readonly n: number
  readonly at: number
  /** the process handing it over (attempt) */
  readonly owner?: string
  /** retry: not before */
  readonly next?: number
  readonly providerMessageId?: string
  readonly reason?: string
  /** what the messages row needs beyond the status: the webhooks update rows from this alone */
  readonly row: Omit<MessageRow, "status" | "reason" | "provider_message_id" | "updated_at" | "channel">
}

export const FINAL: ReadonlySet<LedgerStatus> = new Set(["sent", "delivered", "failed", "suppressed"])

/** KV keys allow `[-/_=.a-zA-Z0-9]`; message ids may hold anything. */
export const ledgerKey = (messageId: string): string => `m.${createHash("sha256").update(messageId).digest("hex").slice(0, 40)}`

export const rowBase = (request: MessageRequest, memberId: string): LedgerEntry["row"] => ({
  message_id: request.messageId,
  enrollment_id: request.enrollmentId,
  journey_id: request.journeyId,
  variant: request.variant,
  step_id: request.stepId,
  member_id: memberId,
  template: request.template,
  created_at: chTime(request.createdAt)
})

/** Milliseconds of a `chTime` text (UTC); NaN when it is not one. */
const chTimeMs = (text: string): number => Date.parse(`${text.replace(" ", "T")}Z`)

/**
 * The messages row an entry stands for (final and webhook states; `updated_at` is when it became
 * so). `messages` keeps the row with the greatest `updated_at` (ReplacingMergeTree(updated_at)), so
 * an outcome must come after the `queued` row the journey wrote at `created_at`. Those two times are
 * read from different clocks: `created_at` is the journey's `now` (a stream arrival, or a timer's due
 * time, which the engine fires a few milliseconds early), the outcome's time this process's clock.
 * A sandbox send can finish within those milliseconds: its `sent` row then lost to `queued` and the
 * message looked stuck. An outcome is therefore never dated before `created_at` + 1 ms.
 */
export const rowOf = (entry: LedgerEntry): MessageRow => ({
  ...entry.row,
  channel: entry.channel,
  status: entry.status === "attempt" || entry.status === "retry" ? "queued" : entry.status,
  reason: entry.reason ?? "",
  provider_message_id: entry.providerMessageId ?? "",
  updated_at: chTime(rowTime(entry))
})

/** The `updated_at` of an entry's row, in milliseconds: its time, and after `created_at`. */
export const rowTime = (entry: LedgerEntry): number => {
  const created = chTimeMs(entry.row.created_at)
  return Number.isFinite(created) ? Math.max(entry.at, created + 1) : entry.at
}

export interface Stored {
  readonly entry: LedgerEntry | null
  /** 0 when there is none */
  readonly revision: number
}

export interface Ledger {
  readonly read: (messageId: string) => Effect.Effect<Stored, NatsError>
  /** Compare-and-set: the new revision, or null when another process wrote first. */
  readonly write: (messageId: string, entry: LedgerEntry, revision: number) => Effect.Effect<number | null, NatsError>
}

const decoder = new TextDecoder()

export const makeLedger = (
  kv: KV,
  bucket: string,
  publisher: StreamPublisher,
  use: <A>(operation: string, f: () => Promise<A>) => Effect.Effect<A, NatsError>
): Ledger => ({
  read: (messageId) =>
    use("ledger get", async () => {
      const found = await kv.get(ledgerKey(messageId))
      if (found === null || found.operation !== "PUT") return { entry: null, revision: found?.revision ?? 0 }
      return { entry: JSON.parse(decoder.decode(found.value)) as LedgerEntry, revision: found.revision }
    }),
  write: (messageId, entry, revision) =>
    use("ledger put", async () => {
      try {
        // Through the engine's publisher (ledger entries are never deleted): two of these per message.
        return await publisher.kvWrite(bucket, ledgerKey(messageId), JSON.stringify(entry), revision)
      } catch (cause) {
        // "wrong last sequence" / "key exists": someone else wrote it first
        if (cause instanceof Error && /wrong last sequence|key exists|10071/i.test(cause.message)) return null
        throw cause
      }
    })
})

/** The ledger bucket, opened once per engine and shared by delivery and the provider webhooks. */
export class MessageLedger extends Effect.Service<MessageLedger>()("memberflow/MessageLedger", {
  effect: Effect.gen(function* () {
    const { kvm, publisher, use } = yield* Nats
    const topology = yield* Topology
    const kv = yield* use("open ledger bucket", () => kvm.create(topology.ledgerBucket, { history: 1 }))
    return makeLedger(kv, topology.ledgerBucket, publisher, use)
  })
}) {}
