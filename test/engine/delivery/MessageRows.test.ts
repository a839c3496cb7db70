import { describe, expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { Clickhouse } from "../../../engine/Clickhouse.ts"
import { type LedgerEntry, rowOf, rowTime } from "../../../engine/Delivery/Ledger.ts"
import { chTime, type MessageRow } from "../../../schemas/Rows.ts"
import { tempClickhouseLayer } from "../../support/clickhouse.ts"

// The journey's `now` when it queued the message: a timer's due time, which the engine that fired
// it reached a few milliseconds later than its own clock said.
const QUEUED_AT = Date.parse("2026-12-04T07:00:44.363Z")

const base = (messageId: string) => ({
  message_id: messageId,
  enrollment_id: `enr-${messageId}`,
  journey_id: "points-expiry-reminder",
  variant: "default",
  step_id: "last-call",
  member_id: "m000012",
  template: "points-last-call",
  created_at: chTime(QUEUED_AT)
})

/** The row the journey writes when it queues a message (engine/journeys/Apply.ts). */
const queuedRow = (messageId: string): MessageRow => ({
  ...base(messageId),
  channel: "sms",
  status: "queued",
  reason: "",
  provider_message_id: "",
  updated_at: chTime(QUEUED_AT)
})

const sentEntry = (messageId: string, at: number): LedgerEntry => ({
  status: "sent",
  idx: 0,
  channel: "sms",
  n: 0,
  at,
  providerMessageId: `sandbox-${messageId}`,
  row: base(messageId)
})

const statusOf = (messageId: string) =>
  Effect.flatMap(Clickhouse, (clickhouse) =>
    clickhouse.query<{ status: string }>("SELECT status FROM messages FINAL WHERE message_id = {id:String}", { id: messageId })
  ).pipe(Effect.map((rows) => rows.map((row) => row.status)))

describe("messages rows: the latest state wins, whatever the clocks said", () => {
  layer(tempClickhouseLayer())((it) => {
    it.effect("a send recorded a millisecond before its queued row's time (and inserted first) reads as sent", () =>
      Effect.gen(function* () {
        const clickhouse = yield* Clickhouse
        // Seen in the demo: sent by this process's clock at .362, queued by the journey at .363.
        const sent = rowOf(sentEntry("early", QUEUED_AT - 1))
        expect(Date.parse(`${sent.updated_at.replace(" ", "T")}Z`)).toBeGreaterThan(QUEUED_AT)
        yield* clickhouse.insert("messages", [sent])
        yield* clickhouse.insert("messages", [queuedRow("early")])
        expect(yield* statusOf("early")).toEqual(["sent"])
      }))

    it.effect("a send long after its queued time keeps its own time", () =>
      Effect.gen(function* () {
        const clickhouse = yield* Clickhouse
        const sent = rowOf(sentEntry("later", QUEUED_AT + 5_000))
        expect(sent.updated_at).toBe(chTime(QUEUED_AT + 5_000))
        yield* clickhouse.insert("messages", [queuedRow("later"), sent])
        expect(yield* statusOf("later")).toEqual(["sent"])
      }))

    it.effect("a delivery callback dated as the send, or before it, still comes after it (as the webhook dates it)", () =>
      Effect.gen(function* () {
        const clickhouse = yield* Clickhouse
        const sentAt = QUEUED_AT - 1
        const sent = sentEntry("callback", sentAt)
        // engine/Webhooks.ts: `at: Math.max(now, rowTime(entry) + 1)`, with `now` the callback's clock
        const delivered: LedgerEntry = { ...sent, status: "delivered", at: Math.max(sentAt, rowTime(sent) + 1) }
        yield* clickhouse.insert("messages", [rowOf(delivered), rowOf(sent), queuedRow("callback")])
        expect(yield* statusOf("callback")).toEqual(["delivered"])
      }))
  })
})
