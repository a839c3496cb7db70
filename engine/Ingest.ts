import type { JsMsg } from "@nats-io/jetstream"
import { headers as natsHeaders } from "@nats-io/transport-node"
import { Clock, Config, Context, Effect, Either, Fiber, Layer, Metric, MetricLabel, Option, Schedule, Stream } from "effect"
import type { DerivedEvent, MemberEvent } from "../schemas/Event.ts"
import { chTime, type EventRow, type MemberProfileRow, type MemberTagRow, type RejectedEventRow } from "../schemas/Rows.ts"
import { Clickhouse } from "./Clickhouse.ts"
import { batcher } from "./ingest/Batcher.ts"
import { decodeEvent } from "./ingest/Decode.ts"
import { MESSAGE_REQUEST, runJourneys, TIMER_REQUEST } from "./journeys/Apply.ts"
import { JourneyRuntime } from "./JourneyRuntime.ts"
import { maskAttributes, maskRaw } from "./member/Mask.ts"
import { applyEvents, type MemberContext, profileRow } from "./member/MemberState.ts"
import { type Change, MemberStore, type Updated } from "./MemberStore.ts"
import * as Metrics from "./Metrics.ts"
import { Nats } from "./Nats.ts"
import { ProgramRuntime } from "./ProgramRuntime.ts"
import { awaitDrained } from "./Shutdown.ts"
import { subjectOf, Topology } from "./Topology.ts"

const JOURNEY_TABLES = ["journey_enrollments", "journey_steps", "messages", "conversions"] as const

/** Transient store and broker failures are retried until they recover: nothing is acked before. */
export const retryForever = Schedule.exponential("200 millis", 1.5).pipe(
  Schedule.union(Schedule.spaced("10 seconds")),
  Schedule.jittered,
  Schedule.tapOutput(() => Metric.increment(Metrics.retries))
)

const RAW_LIMIT = 256 * 1024
const lossyUtf8 = new TextDecoder("utf-8")

const arrivalMs = (msg: JsMsg): number => Number(msg.timestampNanos / 1_000_000n)

export interface Accepted {
  readonly msg: JsMsg
  readonly event: MemberEvent
}

const eventRow = (event: MemberEvent, receivedAt: number): EventRow => ({
  event_id: event.id,
  type: event.type,
  member_id: event.memberId,
  occurred_at: chTime(event.at),
  received_at: chTime(receivedAt),
  source: event.source ?? "",
  // contact points stay in the member's state only (clickhouse.md): masked here like everywhere else
  properties: JSON.stringify(maskAttributes(event.properties)),
  amount: event.type === "purchase" || event.type === "refund" ? Number(event.properties["amount"]) : null
})

const tagRow = (event: MemberEvent): MemberTagRow | null => {
  if ((event.type !== "tag.added" && event.type !== "tag.removed") || event.source !== "memberflow") return null
  return {
    event_id: event.id,
    member_id: event.memberId,
    tag: String(event.properties["tag"]),
    op: event.type === "tag.added" ? "add" : "remove",
    at: chTime(event.at),
    source: String(event.properties["source"] ?? "")
  }
}

/** The channel a message request is tried on first: its delivery consumer. */
const firstChannel = (event: DerivedEvent): string => {
  const messages = event.properties["messages"]
  const first = Array.isArray(messages) ? (messages[0] as { channel?: unknown } | undefined) : undefined
  return typeof first?.channel === "string" ? first.channel : "sms"
}

/**
 * Publishes every derived event in the updated members' outboxes — including what a crashed run
 * left unpublished — with its deterministic id as `Nats-Msg-Id`, then lets the store drop them.
 */
export const publishDerived = Effect.fn("Ingest.publishDerived")(function* (updates: ReadonlyArray<Updated>) {
  const { js, use } = yield* Nats
  const topology = yield* Topology
  const store = yield* MemberStore
  const derived: Array<DerivedEvent> = []
  for (const update of updates) derived.push(...update.result.state.outbox)
  yield* use("publish derived events", () =>
    Promise.all(
      derived.map((event) =>
        js.publish(
          // Timer and message requests go to their streams; everything else back onto the event stream.
          event.type === TIMER_REQUEST
            ? topology.timersSubject
            : event.type === MESSAGE_REQUEST
              ? `${topology.messagesSubject}.${firstChannel(event)}`
              : subjectOf(topology, event.type),
          JSON.stringify({ ...event, source: "memberflow" }),
          { msgID: event.id }
        )
      )
    )
  ).pipe(Effect.retry(retryForever))
  for (const update of updates) {
    store.markPublished(update.memberId, update.result.state.outbox.map((event) => event.id))
  }
  return derived
})

/** A batch whose member state is durable and whose derived events are published, not yet acked. */
export interface AppliedBatch {
  readonly batch: ReadonlyArray<JsMsg>
  readonly started: number
  readonly rejected: ReadonlyArray<RejectedEventRow & { readonly data: Uint8Array }>
  readonly eventRows: ReadonlyArray<EventRow>
  readonly tagRows: ReadonlyArray<MemberTagRow>
  readonly profileRows: ReadonlyArray<MemberProfileRow>
  /** Journey rows from the members' row outboxes; dropped from the outbox once written. */
  readonly journeyRows: ReadonlyArray<JourneyRow>
  readonly applied: number
  readonly duplicates: number
  readonly derived: number
}

/** Enrollments by journey and variant, messages by channel and status, for /metrics. */
const countJourneyRows = (rows: ReadonlyArray<{ readonly table: string; readonly row: unknown }>) => {
  for (const { table, row } of rows) {
    const r = row as Record<string, string>
    if (table === "journey_enrollments" && r["status"] === "active") {
      Metrics.journeyEnrollments.unsafeUpdate(1, [MetricLabel.make("journey", r["journey_id"] ?? ""), MetricLabel.make("variant", r["variant"] ?? "")])
    } else if (table === "messages") {
      Metrics.journeyMessages.unsafeUpdate(1, [MetricLabel.make("channel", r["channel"] ?? ""), MetricLabel.make("status", r["status"] ?? "")])
    }
  }
}

type JourneyRow = { readonly memberId: string; readonly id: string; readonly table: string; readonly row: unknown }

/** One insert per journey table: the rows of the members' outboxes. */
const journeyInserts = (clickhouse: Context.Tag.Service<Clickhouse>, rows: ReadonlyArray<JourneyRow>) =>
  JOURNEY_TABLES.map((table) => clickhouse.insert(table, rows.filter((r) => r.table === table).map((r) => r.row)))

/**
 * Once rows are in ClickHouse: each member's next write may drop them from its outbox, and they
 * count in /metrics.
 */
const journeyRowsWritten = Effect.fn("Ingest.journeyRowsWritten")(function* (rows: ReadonlyArray<JourneyRow>) {
  const store = yield* MemberStore
  const written = new Map<string, Array<string>>()
  for (const row of rows) written.set(row.memberId, [...(written.get(row.memberId) ?? []), row.id])
  const fresh = new Set<string>()
  for (const [memberId, ids] of written) for (const id of store.markPublished(memberId, ids)) fresh.add(`${memberId}|${id}`)
  // a row written again (its member changed before the outbox dropped it) is counted once
  countJourneyRows(rows.filter((row) => fresh.has(`${row.memberId}|${row.id}`)))
})

/**
 * Applies `f` to every member the engine holds, in slices, through the path a batch of events takes:
 * compare-and-set, derived events, profile rows, journey rows. The sweep's and the broadcasts' pass.
 */
export const passAllMembers = Effect.fn("Ingest.passAllMembers")(function* (f: Change[1], ctx: MemberContext, now: number) {
  const store = yield* MemberStore
  const clickhouse = yield* Clickhouse
  const ids = yield* store.memberIds
  let written = 0
  for (let offset = 0; offset < ids.length; offset += 5000) {
    const updates = yield* store
      .updateMany(ids.slice(offset, offset + 5000).map((memberId): Change => [memberId, f]), 256)
      .pipe(Effect.retry(retryForever))
    yield* publishDerived(updates)
    const profiles = updates.filter((update) => update.written).map((update) => profileRow(update.result.state, ctx, now))
    written += profiles.length
    const rows = updates.flatMap((update) => (update.result.state.rows ?? []).map((row) => ({ memberId: update.memberId, ...row })))
    yield* Effect.all([clickhouse.insert("member_profiles", profiles), ...journeyInserts(clickhouse, rows)], { discard: true }).pipe(
      Effect.retry(retryForever)
    )
    yield* journeyRowsWritten(rows)
  }
  return { members: ids.length, written }
})

/**
 * Stage one of a batch: decode, apply to member state (KV, compare-and-set), publish the derived
 * events (JetStream, deterministic ids).
 */
export const applyBatch = Effect.fn("Ingest.applyBatch")(function* (batch: ReadonlyArray<JsMsg>) {
  const started = yield* Clock.currentTimeMillis
  const topology = yield* Topology
  const store = yield* MemberStore
  const runtime = yield* ProgramRuntime
  const journeySet = yield* (yield* JourneyRuntime).current
  const maxBytes = yield* Config.integer("MEMBERFLOW_MAX_EVENT_BYTES").pipe(Config.withDefault(64 * 1024))
  const ctx = yield* runtime.context

  const rejected: Array<RejectedEventRow & { readonly data: Uint8Array }> = []
  const byMember = new Map<string, Array<MemberEvent>>()
  const redelivered = new Set<string>()
  const receivedAt = new Map<string, number>()
  for (const msg of batch) {
    const decoded = decodeEvent(msg.subject, msg.data, { subjectPrefix: topology.subjectPrefix, now: started, maxBytes })
    if (Either.isLeft(decoded)) {
      rejected.push({
        rejection_id: `${topology.stream}:${msg.seq}`,
        received_at: chTime(arrivalMs(msg)),
        subject: msg.subject,
        raw: maskRaw(lossyUtf8.decode(msg.data.subarray(0, RAW_LIMIT))),
        reason: decoded.left,
        data: msg.data
      })
      continue
    }
    const event = decoded.right
    const list = byMember.get(event.memberId)
    if (list === undefined) byMember.set(event.memberId, [event])
    else list.push(event)
    receivedAt.set(event.id, arrivalMs(msg))
    if (msg.redelivered) redelivered.add(event.id)
  }

  const updates: ReadonlyArray<Updated> = yield* store.updateMany(
    Array.from(byMember, ([memberId, events]): Change => [
      memberId,
      (state, options) => runJourneys(applyEvents(state, events, ctx, started, options), journeySet, ctx, started, options)
    ])
  ).pipe(Effect.retry(retryForever))

  const derived = yield* publishDerived(updates)

  // Rows are taken now: the states may change again while this batch is being recorded.
  const eventRows: Array<EventRow> = []
  const tagRows: Array<MemberTagRow> = []
  const profileRows: Array<MemberProfileRow> = []
  const journeyRows: Array<JourneyRow> = []
  let applied = 0
  let duplicates = 0
  for (const update of updates) {
    applied += update.result.applied.length
    duplicates += update.result.duplicates.length
    // Written to ClickHouse although already applied: redeliveries (a crash may have come between
    // the KV write and these rows) and the engine's own events, applied when they were made.
    const again = update.result.duplicates.filter((event) => redelivered.has(event.id) || event.source === "memberflow")
    for (const event of [...update.result.applied, ...again]) {
      eventRows.push(eventRow(event, receivedAt.get(event.id) ?? started))
      const row = tagRow(event)
      if (row !== null) tagRows.push(row)
    }
    if (update.written || again.some((event) => redelivered.has(event.id))) {
      profileRows.push(profileRow(update.result.state, ctx, started))
    }
    for (const row of update.result.state.rows ?? []) journeyRows.push({ memberId: update.memberId, ...row })
  }
  return { batch, started, rejected, eventRows, tagRows, profileRows, journeyRows, applied, duplicates, derived: derived.length } satisfies AppliedBatch
})

/**
 * Stage two: analyst rows (ClickHouse) and dead letters, and only then the acks. A crash anywhere
 * before the acks redelivers the batch; the per-member event-id memory makes the second
 * application a no-op, and redelivered events are written to ClickHouse again (ReplacingMergeTree
 * keeps one row).
 */
export const recordBatch = Effect.fn("Ingest.recordBatch")(function* (work: AppliedBatch) {
  const { batch, started, rejected, eventRows, tagRows, profileRows, journeyRows, applied, duplicates, derived } = work
  const { js, use } = yield* Nats
  const topology = yield* Topology
  const clickhouse = yield* Clickhouse
  yield* Effect.all(
    [
      clickhouse.insert("events", eventRows),
      clickhouse.insert("member_tags", tagRows),
      clickhouse.insert("member_profiles", profileRows),
      clickhouse.insert("rejected_events", rejected.map(({ data: _, ...row }) => row)),
      ...journeyInserts(clickhouse, journeyRows)
    ],
    { concurrency: "unbounded", discard: true }
  ).pipe(Effect.retry(retryForever))
  yield* journeyRowsWritten(journeyRows)

  yield* Effect.forEach(
    rejected,
    (row) => {
      const h = natsHeaders()
      h.set("Memberflow-Reason", row.reason.slice(0, 1024).replace(/[\r\n]+/g, " "))
      h.set("Memberflow-Subject", row.subject)
      return use("publish dead letter", () =>
        js.publish(topology.deadletterSubject, row.data, { msgID: row.rejection_id, headers: h })
      ).pipe(Effect.retry(retryForever))
    },
    { concurrency: 64, discard: true }
  )

  for (const msg of batch) msg.ack()
  const done = yield* Clock.currentTimeMillis
  for (const msg of batch) Metrics.eventLatencySeconds.unsafeUpdate((done - arrivalMs(msg)) / 1000, [])
  yield* Metric.incrementBy(Metrics.eventsReceived, batch.length)
  yield* Metric.incrementBy(Metrics.eventsApplied, applied)
  yield* Metric.incrementBy(Metrics.eventsDuplicate, duplicates)
  yield* Metric.incrementBy(Metrics.eventsRejected, rejected.length)
  yield* Metric.incrementBy(Metrics.derivedPublished, derived)
  yield* Metrics.batchSeconds(Effect.succeed((done - started) / 1000))
  if (rejected.length > 0) {
    yield* Effect.logWarning("events rejected").pipe(
      Effect.annotateLogs({ count: rejected.length, first: rejected[0]?.reason ?? "" })
    )
  }
  return { received: batch.length, applied, duplicates, rejected: rejected.length, derived }
})

/** Both stages, one after the other: a batch from the stream to durable, acked effects. */
export const processBatch = (batch: ReadonlyArray<JsMsg>) => Effect.flatMap(applyBatch(batch), recordBatch)

/**
 * The consuming loop: a durable pull consumer shared by every engine, read with backpressure
 * (`consume` only pulls more as batches complete), batched by size or time.
 */
/** The running consumer loop; `done` fails when ingestion stops for good (so the process exits). */
export class Ingest extends Context.Tag("memberflow/Ingest")<Ingest, { readonly done: Effect.Effect<void, unknown> }>() {}

export const IngestLive = Layer.scoped(
  Ingest,
  Effect.gen(function* () {
    const { js, jsm, use } = yield* Nats
    const topology = yield* Topology
    const batchSize = yield* Config.integer("MEMBERFLOW_BATCH_SIZE").pipe(Config.withDefault(4000))
    const batchWindow = yield* Config.integer("MEMBERFLOW_BATCH_WINDOW_MS").pipe(Config.withDefault(25))
    const consumer = yield* use("get consumer", () => js.consumers.get(topology.stream, topology.consumer))
    // Short pull expiry: NATS cannot cancel a pull, so messages that reach the outstanding pull of an
    // engine that just stopped wait out the ack wait; a 5 s expiry bounds how long such a pull lives.
    const messages = yield* use("consume", () => consumer.consume({ max_messages: batchSize * 2, expires: 5_000 }))
    const context = yield* Effect.context<Nats | Topology | Clickhouse | MemberStore | ProgramRuntime | JourneyRuntime>()
    const nextBatch = batcher(messages, batchSize, batchWindow)
    const fiber = yield* Stream.repeatEffectOption(
      use("next batch", nextBatch).pipe(
        Effect.mapError(Option.some),
        Effect.flatMap((batch) => (batch === null ? Effect.fail(Option.none()) : Effect.succeed(batch)))
      )
    ).pipe(
      // Two stages in a pipeline: batch n+1 is applied to member state while batch n is written to
      // ClickHouse and acked. A batch in flight finishes before shutdown takes effect: SIGTERM drains.
      Stream.mapEffect((batch) => Effect.uninterruptible(applyBatch(batch))),
      Stream.buffer({ capacity: 1 }),
      Stream.mapEffect((applied) => Effect.uninterruptible(recordBatch(applied))),
      Stream.runDrain,
      Effect.provide(context),
      Effect.tapErrorCause((cause) => Effect.logError("ingest stopped", cause)),
      Effect.fork
    )
    // Ending without a stop (the consumer was deleted, the iterator failed) is a failure too.
    const done = Fiber.join(fiber).pipe(Effect.zipRight(Effect.fail(new Error("the event consumer ended"))))
    // Shutdown: stop pulling first, let the batch in flight become durable and be acked, and only
    // then interrupt what is left (the iterator's own return waits on the stop).
    yield* Effect.addFinalizer(() =>
      Effect.gen(function* () {
        yield* Effect.sync(() => messages.stop())
        yield* awaitDrained(fiber)
        yield* Fiber.interrupt(fiber)
        yield* Effect.logInfo("ingest drained")
      })
    )
    yield* use("consumer info", () => jsm.consumers.info(topology.stream, topology.consumer)).pipe(
      Effect.flatMap((info) => Metric.set(Metrics.consumerLag, info.num_pending)),
      Effect.catchAll(() => Effect.void),
      Effect.repeat(Schedule.spaced("5 seconds")),
      Effect.forkScoped
    )
    yield* Effect.logInfo("ingest started").pipe(Effect.annotateLogs({ stream: topology.stream, consumer: topology.consumer }))
    return { done }
  })
)
