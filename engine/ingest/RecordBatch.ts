import type { JsMsg } from "@nats-io/jetstream"
import { Effect, MetricLabel } from "effect"
import type { DerivedEvent } from "../../schemas/Event.ts"
import { MESSAGE_REQUEST, TIMER_REQUEST } from "../journeys/Apply.ts"
import * as Metrics from "../Metrics.ts"
import { Nats } from "../Nats.ts"
import { containsBytes, type Outbound } from "../nats/StreamPublisher.ts"
import { type TimerRequest, Timers } from "../Timers.ts"
import { subjectOf, Topology, type TopologyShape } from "../Topology.ts"
import { type AppliedBatch, EVENT_COLUMNS, type JourneyRow } from "./ApplyBatch.ts"
import { partitionOf } from "./Partition.ts"

/**
 * Stage two of a batch: everything stage one produced leaves the engine — derived events onto the
 * event stream, waits onto the timers stream (and into this engine's timer heap: engine/Timers.ts), messages onto the messages stream, refusals onto the
 * dead-letter stream, rows to ClickHouse through the row sink — each retried until it succeeds. Ids
 * are deterministic throughout (Nats-Msg-Id; ReplacingMergeTree keys), so a batch recorded twice
 * after a crash lands once.
 */

/** Set on the engine's own events that their write already applied: readers skip them. */
export const APPLIED_HEADER = "Memberflow-Applied"
const APPLIED = [[APPLIED_HEADER, "1"]] as const
/** The header line as the engine writes it (StreamPublisher: `key: value` after a line break). */
const APPLIED_LINE = new TextEncoder().encode(`\r\n${APPLIED_HEADER}: 1\r\n`)

/** The message's header block as received, where the NATS client keeps it (its `MsgImpl`). */
export const rawHeaders = (msg: JsMsg): Uint8Array | null | undefined => {
  const inner: unknown = Reflect.get(msg, "msg")
  if (typeof inner !== "object" || inner === null) return undefined
  const parsed: unknown = Reflect.get(inner, "_msg")
  const data: unknown = Reflect.get(inner, "_rdata")
  const length: unknown = typeof parsed === "object" && parsed !== null ? Reflect.get(parsed, "hdr") : undefined
  if (typeof length !== "number" || !(data instanceof Uint8Array)) return undefined
  return length > 0 ? data.subarray(0, length) : null
}

/**
 * Whether a message is one of the engine's own, already applied by the write that made it. Every
 * message of the stream is asked, and most carry a `Nats-Msg-Id`: decoding each one's headers into
 * an object was about 5% of what ingestion allocated. The header bytes are searched instead, where
 * the client exposes them; otherwise (another client version) the decoded headers are asked.
 */
export const isApplied = (msg: JsMsg): boolean => {
  const raw = rawHeaders(msg)
  if (raw === undefined) return msg.headers?.get(APPLIED_HEADER) === "1"
  return raw !== null && containsBytes(raw, APPLIED_LINE)
}

/**
 * A derived event as published: its fields and `source`, as one literal. A spread that adds a key
 * (`{ ...event, source }`) made an object V8 builds and serializes on a slow path, about 1 µs more
 * an event, on every event the engine publishes (BENCHMARKS.md).
 */
export const publishedForm = (event: DerivedEvent) => ({
  id: event.id,
  type: event.type,
  memberId: event.memberId,
  occurredAt: event.occurredAt,
  properties: event.properties,
  source: "memberflow"
})

const JOURNEY_TABLES = ["journey_enrollments", "journey_steps", "messages", "conversions"] as const

import { retryForever } from "./Retry.ts"
import type { RowSink } from "./RowSink.ts"

export { retryForever } from "./Retry.ts"

/** The channel a message request is tried on first: its delivery consumer. */
const firstChannel = (event: DerivedEvent): string => {
  const messages = event.properties["messages"]
  const first = Array.isArray(messages) ? (messages[0] as { channel?: unknown } | undefined) : undefined
  return typeof first?.channel === "string" ? first.channel : "sms"
}

const subjectFor = (topology: TopologyShape, event: DerivedEvent): string =>
  event.type === MESSAGE_REQUEST
      ? `${topology.messagesSubject}.${firstChannel(event)}`
      : subjectOf(topology, event.type)

/** Enrollments by journey and variant, messages by channel and status, for /metrics. */
const countJourneyRows = (rows: ReadonlyArray<JourneyRow>) => {
  for (const { table, row } of rows) {
    const r = row as Record<string, string>
    if (table === "journey_enrollments" && r["status"] === "active") {
      Metrics.journeyEnrollments.unsafeUpdate(1, [MetricLabel.make("journey", r["journey_id"] ?? ""), MetricLabel.make("variant", r["variant"] ?? "")])
    } else if (table === "messages") {
      Metrics.journeyMessages.unsafeUpdate(1, [MetricLabel.make("channel", r["channel"] ?? ""), MetricLabel.make("status", r["status"] ?? "")])
    }
  }
}

/**
 * Empties a batch's lists of event, tag and profile rows once the sink has encoded them. The batch is
 * held until its publishes are acknowledged and its rows written (its metrics are read then), but its
 * row objects need not be: held that long, they outlived the young generation and were promoted
 * (BENCHMARKS.md, 2026-12-05, late night). The lists are the batch's own (BatchBuilder.finish makes
 * them; those of `emptyBatch` are empty).
 */
const releaseRows = (work: AppliedBatch): void => {
  for (const rows of [work.eventRows, work.eventLines, work.tagRows, work.profileRows]) (rows as Array<unknown>).length = 0
}

/**
 * Hands a batch's rows to the sink and publishes what it made; `written` runs once the rows are in
 * ClickHouse and the publishes acknowledged. Returns when the publishes are acknowledged and the
 * rows queued.
 */
export const recordBatch = Effect.fn("Ingest.recordBatch")(function* (work: AppliedBatch, sink: RowSink, written: () => void, partitions: number) {
  const { publisher, use } = yield* Nats
  const topology = yield* Topology
  const timers = yield* Timers
  // A batch's publishes go as two groups, each one promise (StreamPublisher.publishAll): its derived
  // events, and its timers, each held by this engine, the partition's owner, until it is due.
  const events: Array<Outbound> = []
  const timerMessages: Array<Outbound> = []
  const timerRequests: Array<{ readonly partition: number; readonly request: TimerRequest }> = []
  for (const { event, applied: isApplied } of work.outgoing) {
    const data = JSON.stringify(publishedForm(event))
    if (event.type !== TIMER_REQUEST) {
      events.push({ subject: subjectFor(topology, event), data, options: isApplied ? { msgID: event.id, headers: APPLIED } : { msgID: event.id } })
      continue
    }
    // A timer is kept on a subject of its own in its member's partition.
    const partition = partitionOf(event.memberId, partitions)
    timerMessages.push({ subject: timers.subjectFor(partition, event.id), data, options: { msgID: event.id } })
    timerRequests.push({ partition, request: event as unknown as TimerRequest })
  }
  const publishes = use("publish derived events", () =>
    Promise.all([
      publisher.publishAll(events),
      publisher.publishAll(timerMessages, (i, ack) => {
        const { partition, request } = timerRequests[i]!
        timers.schedule(partition, request, ack.seq, ack.duplicate)
      })
    ])
  ).pipe(Effect.retry(retryForever))
  // All of a batch's dead letters in flight at once, as its derived events: a flood of bad input
  // costs about what as many good events cost, not a round trip each.
  const deadLetters = use("publish dead letters", () =>
    publisher.publishAll(
      work.rejected.map((row) => ({
        subject: topology.deadletterSubject,
        data: row.data,
        options: {
          msgID: row.rejection_id,
          headers: [
            ["Memberflow-Reason", row.reason.slice(0, 1024).replace(/[\r\n]+/g, " ")],
            ["Memberflow-Subject", row.subject]
          ]
        }
      }))
    )
  ).pipe(Effect.retry(retryForever))
  // The rows go to the sink first, then the publishes (`releaseRows`); the batch is written once
  // both are: the sink's callback and the end of the publishes each count one part.
  let parts = 2
  const partDone = () => {
    if (--parts > 0) return
    countJourneyRows(work.journeyRows)
    written()
  }
  const byTable = new Map<string, Array<unknown>>(JOURNEY_TABLES.map((table) => [table, []]))
  for (const { table, row } of work.journeyRows) byTable.get(table)?.push(row)
  yield* sink.offer(
    [
      ["events", work.eventRows],
      ["member_tags", work.tagRows],
      ["member_profiles", work.profileRows],
      ["rejected_events", work.rejected.map(({ data: _, ...row }) => row)],
      ...byTable
    ],
    partDone,
    [["events", EVENT_COLUMNS, work.eventLines]]
  )
  releaseRows(work)
  const publishing = performance.now()
  yield* Effect.all([publishes, deadLetters], { concurrency: "unbounded", discard: true })
  if (work.outgoing.length + work.rejected.length > 0) Metrics.publishSeconds.unsafeUpdate((performance.now() - publishing) / 1000, [])
  partDone()
  if (work.rejected.length > 0) {
    yield* Effect.logWarning("events rejected").pipe(Effect.annotateLogs({ count: work.rejected.length, first: work.rejected[0]?.reason ?? "" }))
  }
})
