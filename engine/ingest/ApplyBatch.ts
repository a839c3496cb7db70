import type { JsMsg } from "@nats-io/jetstream"
import { Either } from "effect"
import type { DerivedEvent, MemberEvent } from "../../schemas/Event.ts"
import { chTime, type EventRow, type MemberProfileRow, type MemberTagRow, type RejectedEventRow } from "../../schemas/Rows.ts"
import { type JourneySet, MESSAGE_REQUEST, runJourneys, TIMER_EVENT, TIMER_REQUEST } from "../journeys/Apply.ts"
import { maskAttributes, maskRaw } from "../member/Mask.ts"
import { applyEvents, type ApplyResult, type MemberContext, type MemberState, profileRow } from "../member/MemberState.ts"
import { shortHash } from "../member/MemberState/Ids.ts"
import { hasSeen, NO_ITEMS } from "../member/MemberState/Compact.ts"
import { encodeLine } from "../store/RowBody.ts"
import { decodeEvent } from "./Decode.ts"
import type { Delivered } from "./Delivered.ts"

/**
 * Stage one of a batch, in process and in stream order: decode each message, apply each event to
 * its member with the event's arrival in the stream as `now` (so a replay after a crash decides
 * exactly as the first run did), run the journeys, and collect what must leave the engine — rows
 * for ClickHouse, events and requests to publish. The member states change in the store; their
 * outboxes are emptied into the batch, which stage two (engine/ingest/RecordBatch.ts) writes.
 */

const RAW_LIMIT = 256 * 1024
const lossyUtf8 = new TextDecoder("utf-8")

export const arrivalMs = (msg: JsMsg): number => {
  // `msg.info` is parsed once per message (its `seq` reads it too); `timestampNanos` would split the
  // reply subject again and go through a BigInt, for every message. The parsed nanoseconds are a
  // double, within 256 ns of the server's figure at today's epoch: exact milliseconds unless that
  // close to a millisecond boundary, where the exact path decides.
  const nanos = msg.info.timestampNanos
  const ms = Math.floor(nanos / 1e6)
  const rest = nanos - ms * 1e6
  return rest > 1_024 && rest < 998_976 ? ms : Number(msg.timestampNanos / 1_000_000n)
}

/** A message of an owned partition, decoded or refused. */
export type Routed =
  | { readonly kind: "event"; readonly msg: JsMsg; readonly partition: number; readonly event: MemberEvent; readonly arrival: number }
  | { readonly kind: "rejected"; readonly msg: JsMsg; readonly partition: number; readonly reason: string; readonly arrival: number }

/** A derived event to publish; `applied`: already in its member's state (its own write made it). */
export interface Outgoing {
  readonly event: DerivedEvent
  readonly applied: boolean
}

export type JourneyRow = { readonly memberId: string; readonly id: string; readonly table: string; readonly row: unknown }

export interface AppliedBatch {
  readonly rejected: ReadonlyArray<RejectedEventRow & { readonly data: Uint8Array }>
  readonly eventRows: ReadonlyArray<EventRow>
  /** More `events` rows, encoded already in `EVENT_COLUMNS` (engine/ingest/Delivered.ts). */
  readonly eventLines: ReadonlyArray<Uint8Array>
  readonly tagRows: ReadonlyArray<MemberTagRow>
  readonly profileRows: ReadonlyArray<MemberProfileRow>
  readonly journeyRows: ReadonlyArray<JourneyRow>
  readonly outgoing: ReadonlyArray<Outgoing>
  /** Arrival times of the messages handled, for the latency histogram. */
  readonly arrivals: ReadonlyArray<number>
  readonly applied: number
  readonly duplicates: number
}

export const emptyBatch: AppliedBatch = {
  rejected: [],
  eventRows: [],
  eventLines: [],
  tagRows: [],
  profileRows: [],
  journeyRows: [],
  outgoing: [],
  arrivals: [],
  applied: 0,
  duplicates: 0
}

export const eventRow = (event: MemberEvent, receivedAt: number): EventRow => ({
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

/** The `events` columns, in the order `eventRow` gives them. */
export const EVENT_COLUMNS: ReadonlyArray<string> = Object.keys(
  eventRow({ id: "", type: "", memberId: "", occurredAt: "1970-01-01T00:00:00Z", at: 0, properties: {}, source: undefined }, 0)
)

/** An event's `events` row as its line (RowBody `encodeLine`): what `eventRow` gives, encoded. */
export const eventLine = (event: MemberEvent, receivedAt: number): string => encodeLine(eventRow(event, receivedAt), EVENT_COLUMNS)

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

/**
 * A decoded event as a payload again, for a refusal after decoding (its member's state cannot be
 * read): the reader keeps no bytes of an event it decoded. The same event (the fields events.md
 * names), not necessarily the same bytes.
 */
export const eventPayload = (event: MemberEvent): Uint8Array =>
  utf8.encode(
    JSON.stringify({
      id: event.id,
      type: event.type,
      memberId: event.memberId,
      occurredAt: event.occurredAt,
      ...(event.source === undefined ? {} : { source: event.source }),
      properties: event.properties
    })
  )
const utf8 = new TextEncoder()

export const rejectedRow = (stream: string, msg: Pick<Delivered, "seq" | "subject" | "data" | "arrival">, reason: string): RejectedEventRow & { readonly data: Uint8Array } => {
  const data = msg.data ?? new Uint8Array()
  return {
    rejection_id: `${stream}:${msg.seq}`,
    received_at: chTime(msg.arrival),
    subject: msg.subject,
    raw: maskRaw(lossyUtf8.decode(data.subarray(0, RAW_LIMIT))),
    reason,
    data
  }
}

export interface Decoded {
  readonly event: MemberEvent | null
  readonly reason: string | null
}

/**
 * The `now` an event is applied at: its arrival in the stream, except that a fired timer says its due
 * time has come. Its arrival is stamped by the NATS server's clock while the engine that fired it
 * judged "due" by its own, a few milliseconds early at most (engine/Timers.ts) or more across hosts;
 * at an arrival before its due time the wait would not be over, the timer consumed, and the member
 * left waiting for good.
 */
export const nowOf = (event: MemberEvent, arrival: number): number => {
  if (event.type !== TIMER_EVENT) return arrival
  const due = event.properties["due"]
  return typeof due === "number" && due > arrival ? due : arrival
}

export const decode = (msg: JsMsg, subjectPrefix: string, maxBytes: number, arrival: number): Decoded => {
  const decoded = decodeEvent(msg.subject, msg.data, { subjectPrefix, now: arrival, maxBytes })
  return Either.isLeft(decoded) ? { event: null, reason: decoded.left } : { event: decoded.right, reason: null }
}

/** What a member store offers stage one: a state to change in place, and word that it changed or not. */
export interface States {
  readonly take: (memberId: string) => MemberState
  readonly put: (memberId: string, partition: number, state: MemberState) => void
  /** The state taken was not changed: the store may let go of the object (a pass over every member). */
  readonly leave: (memberId: string) => void
}

/** What a member's journeys add to its outbox without changing its profile (tier, RFM, tags, attributes…). */
const JOURNEY_ONLY = new Set(["journey.entered", "journey.exited", TIMER_REQUEST, MESSAGE_REQUEST])

interface Working {
  state: MemberState
  partition: number
  changed: boolean
  /** Whether the member_profiles row may differ: false while only fired timers moved journeys on. */
  profile: boolean
  now: number
  /** The latest pass marker the member was passed over at in this batch, or is past (`stamp`); 0 = none. */
  passed: number
}

/**
 * Collects one member's changes over a batch: the working state (taken once, put back once), its
 * outbox and rows moved into the batch's outputs.
 */
export class BatchBuilder {
  private readonly working = new Map<string, Working>()
  private readonly rejected: Array<AppliedBatch["rejected"][number]> = []
  private readonly eventRows: Array<EventRow> = []
  private readonly eventLines: Array<Uint8Array> = []
  private readonly tagRows: Array<MemberTagRow> = []
  private readonly journeyRows: Array<JourneyRow> = []
  private readonly outgoing: Array<Outgoing> = []
  private readonly arrivals: Array<number> = []
  private applied = 0
  private duplicates = 0

  constructor(
    private readonly states: States,
    private readonly ctx: MemberContext,
    private readonly journeys: JourneySet,
    private readonly stream: string
  ) {}

  private stateOf(memberId: string, partition: number, now: number) {
    let work = this.working.get(memberId)
    if (work === undefined) {
      work = { state: this.states.take(memberId), partition, changed: false, profile: false, now, passed: 0 }
      this.working.set(memberId, work)
    }
    work.now = Math.max(work.now, now)
    return work
  }

  reject(msg: Delivered, reason: string): void {
    this.rejected.push(rejectedRow(this.stream, msg, reason))
    this.arrivals.push(msg.arrival)
  }

  /**
   * Applies one event with its arrival as `now` (a fired timer: no earlier than its due time).
   * `row`: its `events` row encoded already (`eventLine`), written if it is applied.
   */
  event(event: MemberEvent, partition: number, arrival: number, row: Uint8Array | null = null): void {
    this.arrivals.push(arrival)
    const now = nowOf(event, arrival)
    const work = this.stateOf(event.memberId, partition, now)
    const result = runJourneys(applyEvents(work.state, [event], this.ctx, now, { owned: true }), this.journeys, this.ctx, now, { owned: true })
    // A fired timer moves the member's journeys on and changes its profile only through what the
    // step does (a tag step, an emit): its profile row is written only then (one row fewer per wait).
    if (result.changed && (event.type !== TIMER_EVENT || result.state.outbox.some((e) => !JOURNEY_ONLY.has(e.type)))) work.profile = true
    this.take(work, result)
    this.applied += result.applied.length
    this.duplicates += result.duplicates.length
    for (const applied of result.applied) {
      if (row !== null && applied === event) this.eventLines.push(row)
      else this.eventRows.push(eventRow(applied, arrival))
    }
  }

  /** A change with no event (a pass over the members): `f` may mutate the state it is given. */
  change(memberId: string, partition: number, now: number, f: (state: MemberState) => ApplyResult): void {
    const work = this.stateOf(memberId, partition, now)
    const result = f(work.state)
    if (result.changed) work.profile = true
    this.take(work, result)
  }

  /**
   * Notes that the member is past the pass marker at stream sequence `seq`: if its state is written
   * from this batch, it says so (`MemberState.passed`), so that a replay from before the marker
   * does not pass over it again (engine/Ingest.ts, checkpoints during a pass).
   */
  stamp(memberId: string, partition: number, now: number, seq: number): void {
    const work = this.stateOf(memberId, partition, now)
    work.passed = Math.max(work.passed, seq)
  }

  private take(work: { state: MemberState; changed: boolean }, result: ApplyResult): void {
    work.state = result.state
    if (!result.changed) return
    work.changed = true
  }

  /** Puts every changed state back into the store, with its outbox and rows moved into the batch. */
  finish(): AppliedBatch {
    const profileRows: Array<MemberProfileRow> = []
    for (const [memberId, work] of this.working) {
      const state = work.state as { -readonly [K in keyof MemberState]: MemberState[K] }
      const outbox = state.outbox
      const rows = state.rows ?? []
      if (!work.changed && outbox.length === 0 && rows.length === 0) {
        this.states.leave(memberId)
        continue
      }
      for (const event of outbox) {
        // What the state's own write applied (tier, tags, RFM, journey entries and exits) is marked so
        // that no engine applies it again when it comes back through the stream. Timer and message
        // requests go to their own streams.
        const applied = event.type !== TIMER_REQUEST && event.type !== MESSAGE_REQUEST && hasSeen(state, shortHash(event.id))
        this.outgoing.push({ event, applied })
        if (applied) {
          // A literal: a spread adding `at` and `source` took V8's slow path (~2 µs; RecordBatch `publishedForm`).
          const asEvent: MemberEvent = {
            id: event.id,
            type: event.type,
            memberId: event.memberId,
            occurredAt: event.occurredAt,
            at: Date.parse(event.occurredAt),
            properties: event.properties,
            source: "memberflow"
          }
          this.eventRows.push(eventRow(asEvent, work.now))
          const row = tagRow(asEvent)
          if (row !== null) this.tagRows.push(row)
        }
      }
      for (const row of rows) this.journeyRows.push({ memberId, ...row })
      state.outbox = NO_ITEMS
      state.rows = NO_ITEMS
      if (work.passed > (state.passed ?? 0)) state.passed = work.passed
      this.states.put(memberId, work.partition, state)
      if (work.changed && work.profile) profileRows.push(profileRow(state, this.ctx, work.now))
    }
    this.working.clear()
    return {
      rejected: this.rejected,
      eventRows: this.eventRows,
      eventLines: this.eventLines,
      tagRows: this.tagRows,
      profileRows,
      journeyRows: this.journeyRows,
      outgoing: this.outgoing,
      arrivals: this.arrivals,
      applied: this.applied,
      duplicates: this.duplicates
    }
  }
}
