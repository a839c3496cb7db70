import { Either, Schema } from "effect"
import type { DerivedEvent, MemberEvent } from "../../schemas/Event.ts"
import type { Program } from "../../schemas/Program.ts"
import type { MemberTagRow } from "../../schemas/Rows.ts"
import { chTime } from "../../schemas/Rows.ts"
import { evaluate } from "./Conditions.ts"
import { isoOf, timeOf } from "./Instant.ts"
import { localDateString } from "./LocalTime.ts"
import { applyFacts, type Figured, isDuplicateOrder, recordHistoryOf, startTier } from "./MemberState/Facts.ts"
import { addSeen, emptyOrders, hasSeen, isRecord, NO_ENTRIES, NO_ITEMS, seenKeys, undatedInMemory, upgradeState, writable, writableList } from "./MemberState/Compact.ts"
import { type Cause, derive, shortHash } from "./MemberState/Ids.ts"
import { basisAt, memberTimeZone, type OrderFigures, orderFigures, tierSince } from "./MemberState/Reads.ts"
import { cutpointsFor, type RfmCutpoints, scoreMember, UNSCORED } from "./Rfm.ts"
import { levelIndex, nextAnniversary, reviewTo } from "./Tiers.ts"

export { attributeValue } from "./MemberState/Reads.ts"
export { profileRow, publicProfile } from "./MemberState/Profile.ts"
export type { RfmCutpoints } from "./Rfm.ts"

/**
 * One member's state, kept as JSON in NATS KV, and what a batch of events does to it.
 *
 * Growth per member (everything else is bounded by the program):
 * - `seen` and `seenBefore`: 12 bytes per applied event id, kept forever so a re-delivery however
 *   late is recognised (1,000 events ≈ 12 KB; the latest in `seen`, see MemberState/Compact.ts);
 * - `orders`: ~45 bytes of JSON per order (orderIds are hashed), kept forever for refunds and
 *   lifetime spend;
 * - `history`: per event type a count, the latest 500 event times and the latest 20 events' scalar
 *   properties (see MemberState/Facts.ts).
 * These three are kept flat, not as an object per item: see MemberState/Compact.ts. A state larger
 * than a NATS message goes to KV in parts (engine/store/StateParts.ts).
 */

const Stamped = <S extends Schema.Schema.Any>(value: S) => Schema.Struct({ v: value, at: Schema.Number })

/** Orders by place (MemberState/Compact.ts `Orders`). */
export const OrdersSchema = Schema.Struct({
  /** shortHash(orderId) of each order, KEY_WIDTH characters each: the latest ones (MemberState/Compact.ts). */
  k: Schema.String,
  /** The same for the orders before those, once there are more than SEEN_KEYS. */
  kBefore: Schema.optional(Schema.String),
  /** null while only a refund for the order has arrived (out of order); it waits for the purchase. */
  at: Schema.Array(Schema.NullOr(Schema.Number)),
  amount: Schema.Array(Schema.Number),
  /** Sum of refunds received; the net counts it capped at the amount. */
  refunded: Schema.Array(Schema.Number)
})

export const HistorySchema = Schema.Struct({
  n: Schema.Number,
  /** The latest event times, ascending. */
  at: Schema.Array(Schema.Number),
  /**
   * The latest events' scalar properties as JSON, one line each (MemberState/Compact.ts
   * `RECENT_SEPARATOR`), each of the time at its place from the end of `at`.
   */
  recent: Schema.String
})

export const DerivedEventSchema = Schema.Struct({
  id: Schema.String,
  type: Schema.String,
  memberId: Schema.String,
  occurredAt: Schema.String,
  properties: Schema.Record({ key: Schema.String, value: Schema.Unknown })
})

/** Validates a state read back from storage. */
export const MemberStateSchema = Schema.Struct({
  memberId: Schema.String,
  version: Schema.Number,
  updatedAt: Schema.NullOr(Schema.Number),
  firstSeenAt: Schema.NullOr(Schema.Number),
  lastSeenAt: Schema.NullOr(Schema.Number),
  registeredAt: Schema.NullOr(Schema.Number),
  /** shortHash of the latest applied event ids, one after the other (KEY_WIDTH characters each). */
  seen: Schema.String,
  /** The same for the older ones, once there are more than SEEN_KEYS (MemberState/Compact.ts). */
  seenBefore: Schema.optional(Schema.String),
  /** Free attributes from member.registered / member.updated, last write (by occurredAt) wins per key. */
  attributes: Schema.Record({ key: Schema.String, value: Stamped(Schema.Unknown) }),
  consent: Schema.Struct({
    sms: Schema.NullOr(Stamped(Schema.Boolean)),
    email: Schema.NullOr(Stamped(Schema.Boolean)),
    wechat: Schema.NullOr(Stamped(Schema.Boolean))
  }),
  orders: OrdersSchema,
  points: Schema.Struct({
    balance: Schema.NullOr(Stamped(Schema.Number)),
    expiresAt: Schema.NullOr(Stamped(Schema.NullOr(Schema.String)))
  }),
  tier: Schema.NullOr(
    Schema.Struct({
      id: Schema.String,
      /** null: the starting level, held since registration (or the first event). */
      since: Schema.NullOr(Schema.Number),
      reviewedAt: Schema.NullOr(Schema.Number),
      /** occurredAt of the external event that set it, for last-write-wins. */
      at: Schema.NullOr(Schema.Number)
    })
  ),
  rfm: Schema.Struct({
    r: Schema.Number,
    f: Schema.Number,
    m: Schema.Number,
    segment: Schema.String,
    /** The last segment announced with rfm.changed ('unscored' is never announced). */
    announced: Schema.String
  }),
  /** Rule tags held, with the time they were added. */
  ruleTags: Schema.Record({ key: Schema.String, value: Schema.Number }),
  /** Manual tags, last write (by occurredAt) wins per tag. */
  manualTags: Schema.Record({
    key: Schema.String,
    value: Schema.Struct({ on: Schema.Boolean, at: Schema.Number, source: Schema.String })
  }),
  history: Schema.Record({ key: Schema.String, value: HistorySchema }),
  /** Derived events not yet published; the engine publishes them, then `clearOutbox`. */
  outbox: Schema.Array(DerivedEventSchema),
  /** Journey slots by journey id (engine/journeys/Machine/Types.ts `JourneySlot`). */
  journeys: Schema.Record({ key: Schema.String, value: Schema.Unknown }),
  /**
   * Per date/inactivity journey: the entry time a timer is kept for (so it is requested once), and
   * the inputs it was computed from (so it is recomputed only when they change).
   */
  entryTimers: Schema.Record({ key: Schema.String, value: Schema.Struct({ due: Schema.Number, inputs: Schema.String }) }),
  /**
   * Analyst rows (journey_enrollments, journey_steps, messages, conversions) made in the write that
   * caused them and not yet in ClickHouse: written after the KV write, dropped by `clearOutbox`, so a
   * crash in between writes them again instead of losing them.
   */
  rows: Schema.Array(Schema.Struct({ id: Schema.String, table: Schema.String, row: Schema.Record({ key: Schema.String, value: Schema.Unknown }) })),
  /** Marketing messages queued, for the frequency caps; those older than the longest cap are dropped. */
  sent: Schema.optional(Schema.Array(Schema.Struct({ at: Schema.Number, ch: Schema.Literal("sms", "email", "wechat") }))),
  /** WeChat subscribe-message credits by template id (`wechat.subscribed`); each send spends one. */
  credits: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.Number })),
  /**
   * The stream sequence of the latest pass marker (engine/ingest/Passes.ts) this member was passed
   * over at, written with the state only when a change is written while the pass is under way: a
   * replay that meets the marker again skips this member (engine/Ingest.ts, checkpoints during a pass).
   */
  passed: Schema.optional(Schema.Number)
})

export interface MemberState extends Schema.Schema.Type<typeof MemberStateSchema> {}

/** What a member's state is computed with. `cutpoints` null = population quintiles not computed yet. */
export interface MemberContext {
  readonly program: Program
  readonly cutpoints: RfmCutpoints | null
}

export interface TagChange {
  readonly tag: string
  readonly op: "add" | "remove"
  readonly at: number
  readonly source: string
}

export interface ApplyResult {
  readonly state: MemberState
  readonly changed: boolean
  readonly applied: ReadonlyArray<MemberEvent>
  readonly duplicates: ReadonlyArray<MemberEvent>
  readonly derived: ReadonlyArray<DerivedEvent>
}

type DeepMutable<T> = T extends ReadonlyArray<infer U>
  ? Array<DeepMutable<U>>
  : T extends object
    ? { -readonly [K in keyof T]: DeepMutable<T[K]> }
    : T

/** A private working copy, mutated while a batch is applied. */
export type Draft = DeepMutable<MemberState>

// A fresh copy nobody else holds, so it is ours to mutate. The state is plain JSON by design, and a
// JSON round trip is several times faster than structuredClone here (the hot path: once per member
// per batch).
export const copyOf = (state: MemberState): Draft => {
  const copy = JSON.parse(JSON.stringify(state)) as Draft
  undatedInMemory(copy.orders)
  return copy
}

export interface ApplyOptions {
  /**
   * The caller owns `state` outright and discards it if the result is not kept (MemberStore: a
   * private cache entry, dropped on any failed write), so it may be mutated in place instead of
   * copied — the copy was the largest cost of applying a batch.
   */
  readonly owned?: boolean
}

export const draftOf = (state: MemberState, options: ApplyOptions | undefined): Draft =>
  options?.owned === true ? (state as Draft) : copyOf(state)

/** A state as stored in KV (JSON), in the current format whatever format it was stored in. */
export const parseState = (json: string): MemberState => upgradeState(JSON.parse(json) as MemberState)

/** Each kind a top-level field may be, and how a refusal names it. */
const KINDS = {
  string: [(value: unknown) => typeof value === "string", "a string"],
  number: [(value: unknown) => typeof value === "number", "a number"],
  time: [(value: unknown) => value === null || typeof value === "number", "a number or null"],
  object: [isRecord, "an object"],
  objectOrNull: [(value: unknown) => value === null || isRecord(value), "an object or null"],
  array: [Array.isArray, "an array"]
} as const satisfies Record<string, readonly [(value: unknown) => boolean, string]>
/** The kind of each top-level field (`?`: may be absent), as the engine reads them. */
const FIELDS: ReadonlyArray<readonly [string, keyof typeof KINDS, optional?: "?"]> = [
  ["version", "number"], ["updatedAt", "time"], ["firstSeenAt", "time"], ["lastSeenAt", "time"], ["registeredAt", "time"],
  ["seen", "string"], ["seenBefore", "string", "?"], ["attributes", "object"], ["consent", "object"], ["orders", "object"],
  ["points", "object"], ["tier", "objectOrNull"], ["rfm", "object"], ["ruleTags", "object"], ["manualTags", "object"],
  ["history", "object"], ["outbox", "array"], ["journeys", "object"], ["entryTimers", "object"], ["rows", "array"],
  ["sent", "array", "?"], ["credits", "object", "?"], ["passed", "number", "?"]
]

/**
 * A state read back from the members bucket, or what is wrong with it: not JSON, not an object,
 * another member's, or a top-level field of the wrong kind. A light check of the shape (each field's
 * kind, not everything inside it), paid once per read from KV: a value damaged from outside, or
 * written by something else under a member's key, is refused here with a reason instead of failing
 * somewhere in the middle of applying an event to it.
 */
export const parseStoredState = (json: string, memberId: string): Either.Either<MemberState, string> => {
  let parsed: unknown
  try {
    parsed = JSON.parse(json)
  } catch (error) {
    return Either.left(`not JSON (${error instanceof Error ? error.message : String(error)})`)
  }
  if (!isRecord(parsed)) return Either.left("not a JSON object")
  if (parsed["memberId"] !== memberId) return Either.left(`it holds the state of member ${JSON.stringify(parsed["memberId"])}`)
  // In the current format first (a state stored by an engine of before keeps `seen` and its orders otherwise).
  try {
    upgradeState(parsed)
  } catch (error) {
    return Either.left(`it cannot be brought to the current format (${error instanceof Error ? error.message : String(error)})`)
  }
  for (const [field, kind, optional] of FIELDS) {
    const value = parsed[field]
    if (value === undefined && optional === "?") continue
    const [fits, named] = KINDS[kind]
    if (!fits(value)) return Either.left(value === undefined ? `field ${field} is missing` : `field ${field} is not ${named}`)
  }
  const orders = parsed["orders"] as Record<string, unknown>
  if (typeof orders["k"] !== "string" || !(Array.isArray(orders["at"]) && Array.isArray(orders["amount"]) && Array.isArray(orders["refunded"]))) {
    return Either.left("its orders are not whole (k, at, amount or refunded)")
  }
  return Either.right(parsed as unknown as MemberState)
}

export const emptyState = (memberId: string): MemberState => ({
  memberId,
  version: 0,
  updatedAt: null,
  firstSeenAt: null,
  lastSeenAt: null,
  registeredAt: null,
  seen: "",
  attributes: {},
  consent: { sms: null, email: null, wechat: null },
  orders: emptyOrders(),
  points: { balance: null, expiresAt: null },
  tier: null,
  rfm: { r: 0, f: 0, m: 0, segment: "prospect", announced: "prospect" },
  ruleTags: NO_ENTRIES,
  manualTags: NO_ENTRIES,
  history: {},
  outbox: NO_ITEMS,
  journeys: NO_ENTRIES,
  entryTimers: NO_ENTRIES,
  rows: NO_ITEMS
})

type TagRule = Program["tags"][number]

// The program's tag rules by id, built once per program (the last rule of an id wins, as in a Map).
const rulesByProgram = new WeakMap<Program["tags"], ReadonlyMap<string, TagRule>>()

const rulesOf = (program: Program): ReadonlyMap<string, TagRule> => {
  let rules = rulesByProgram.get(program.tags)
  if (rules === undefined) {
    rules = new Map(program.tags.map((rule) => [rule.id, rule]))
    rulesByProgram.set(program.tags, rules)
  }
  return rules
}

/** RFM with the cut points in force, then the program's tag rules; true when anything moved. */
const reevaluate = (d: Draft, ctx: MemberContext, now: number, cause: Cause, derived: Array<DerivedEvent>, known?: OrderFigures): boolean => {
  let changed = false
  // One pass over the orders for RFM and every rule that reads them (nothing here changes the
  // orders), or none when the last event's purchase just made it.
  const figures = known ?? orderFigures(d, ctx.program.rfm.window, now)
  const next = scoreMember(figures.rfm, cutpointsFor(ctx.program, ctx.cutpoints, now))
  const rfm = d.rfm
  if (rfm.r !== next.r || rfm.f !== next.f || rfm.m !== next.m || rfm.segment !== next.segment) {
    Object.assign(rfm, next)
    changed = true
  }
  if (next.segment !== UNSCORED && next.segment !== rfm.announced) {
    derived.push(derive(d, "rfm", "rfm.changed", { from: rfm.announced, to: next.segment }, cause, next.segment))
    rfm.announced = next.segment
    changed = true
  }
  const rules = rulesOf(ctx.program)
  const ec = { now, ctx, figures: () => figures }
  for (const tag of Object.keys(d.ruleTags)) {
    const rule = rules.get(tag)
    if (rule === undefined || !evaluate(rule.when, d, ec)) {
      delete d.ruleTags[tag]
      derived.push(derive(d, "tag", "tag.removed", { tag, source: tag }, cause, `remove:${tag}`))
      changed = true
    }
  }
  for (const rule of ctx.program.tags) {
    if (d.ruleTags[rule.id] === undefined && evaluate(rule.when, d, ec)) {
      d.ruleTags = writable(d.ruleTags)
      d.ruleTags[rule.id] = now
      derived.push(derive(d, "tag", "tag.added", { tag: rule.id, source: rule.id }, cause, `add:${rule.id}`))
      changed = true
    }
  }
  return changed
}

const finish = (
  d: Draft,
  now: number,
  applied: ReadonlyArray<MemberEvent>,
  duplicates: ReadonlyArray<MemberEvent>,
  derived: ReadonlyArray<DerivedEvent>
): ApplyResult => {
  d.version += 1
  d.updatedAt = now
  if (derived.length > 0) {
    d.outbox = writableList(d.outbox)
    d.outbox.push(...derived)
  }
  // The engine's own events are applied here, in the write that causes them: when they come back
  // through the stream they are already known, and cost no second write.
  for (const event of derived) {
    addSeen(d, shortHash(event.id))
    recordHistoryOf(d, event.type, timeOf(event.occurredAt), event.properties)
  }
  return { state: d, changed: true, applied, duplicates, derived }
}

/**
 * Applies a batch in order. An event whose id was applied before, or a purchase whose orderId is
 * already known, is a duplicate and changes nothing. `version` grows by one when anything changed.
 */
export const applyEvents = (
  state: MemberState,
  events: ReadonlyArray<MemberEvent>,
  ctx: MemberContext,
  now: number,
  options?: ApplyOptions
): ApplyResult => {
  const d = draftOf(state, options)
  // `seen` grows with every event a member ever had: a Set of it pays off only for a large batch.
  const seen = events.length > 8 ? new Set(seenKeys(d)) : null
  const applied: Array<MemberEvent> = []
  const duplicates: Array<MemberEvent> = []
  const derived: Array<DerivedEvent> = []
  const figured: Figured = { figures: undefined }
  for (const event of events) {
    const hash = shortHash(event.id)
    if ((seen === null ? hasSeen(d, hash) : seen.has(hash)) || isDuplicateOrder(d, event)) {
      duplicates.push(event)
      continue
    }
    seen?.add(hash)
    addSeen(d, hash)
    figured.figures = undefined
    applyFacts(d, event, ctx, now, derived, figured)
    applied.push(event)
  }
  const last = applied[applied.length - 1]
  if (last === undefined) return { state, changed: false, applied, duplicates, derived: [] }
  reevaluate(d, ctx, now, { key: last.id, occurredAt: last.occurredAt }, derived, figured.figures)
  return finish(d, now, applied, duplicates, derived)
}

/** Yearly reviews due by `now`, each at local midnight of the tier anniversary. */
const review = (d: Draft, ctx: MemberContext, now: number, derived: Array<DerivedEvent>): boolean => {
  const program = ctx.program
  if (program.tiers.source !== "computed" || program.tiers.review !== "yearly") return false
  const timeZone = memberTimeZone(d, program)
  let changed = false
  // Bounded: a member reviewed after years of downtime catches up one anniversary at a time.
  for (let guard = 0; guard < 100; guard++) {
    const tier = d.tier
    const since = tierSince(d)
    if (tier === null || since === null || levelIndex(program, tier.id) === 0) break
    const at = nextAnniversary(since, Math.max(tier.reviewedAt ?? since, since), timeZone)
    if (at > now) break
    const to = reviewTo(program, tier.id, basisAt(d, program, at))
    if (to !== null) {
      const date = localDateString(at, timeZone)
      const cause = { key: `review:${date}`, occurredAt: new Date(at).toISOString() }
      derived.push(derive(d, "tier", "tier.changed", { from: tier.id, to: to.id, reason: "review" }, cause, to.id))
      d.tier = { id: to.id, since: at, reviewedAt: at, at: null }
    } else {
      tier.reviewedAt = at
    }
    changed = true
  }
  return changed
}

/**
 * Time-based re-evaluation with no event: the yearly tier review, RFM with the current cut points
 * and time, rule tags whose `within` windows moved.
 */
export const refresh = (state: MemberState, ctx: MemberContext, now: number, options?: ApplyOptions): ApplyResult => {
  if (state.lastSeenAt === null) return { state, changed: false, applied: [], duplicates: [], derived: [] }
  const d = draftOf(state, options)
  const started = d.tier === null
  if (started) startTier(d, ctx.program)
  const derived: Array<DerivedEvent> = []
  const reviewed = review(d, ctx, now, derived)
  const cause = { key: `refresh:${state.version + 1}`, occurredAt: isoOf(now) }
  const moved = reevaluate(d, ctx, now, cause, derived)
  if (!started && !reviewed && !moved) return { state, changed: false, applied: [], duplicates: [], derived: [] }
  return finish(d, now, [], [], derived)
}

/** Drops published derived events from the outbox. Not a profile change, so `version` stays. */
export const clearOutbox = (state: MemberState, ids: ReadonlyArray<string>): MemberState => {
  const published = new Set(ids)
  const outbox = state.outbox.filter((e) => !published.has(e.id))
  const rows = (state.rows ?? []).filter((r) => !published.has(r.id))
  // Emptied: the shared empty list (MemberState/Compact.ts `NO_ITEMS`), as a batch leaves it.
  return { ...state, outbox: outbox.length === 0 ? NO_ITEMS : outbox, rows: rows.length === 0 ? NO_ITEMS : rows }
}

/** Tag changes among derived events, for the member_tags table. */
export const tagChanges = (derived: ReadonlyArray<DerivedEvent>): ReadonlyArray<TagChange & { readonly eventId: string }> =>
  derived.flatMap((e) => {
    const tag = e.properties["tag"]
    if ((e.type !== "tag.added" && e.type !== "tag.removed") || typeof tag !== "string") return []
    const source = e.properties["source"]
    return [{
      eventId: e.id,
      tag,
      op: e.type === "tag.added" ? ("add" as const) : ("remove" as const),
      at: Date.parse(e.occurredAt),
      source: typeof source === "string" ? source : "manual"
    }]
  })

export const memberTagRows = (derived: ReadonlyArray<DerivedEvent>): ReadonlyArray<MemberTagRow> =>
  derived.flatMap((e) =>
    tagChanges([e]).map((c) => ({
      event_id: c.eventId,
      member_id: e.memberId,
      tag: c.tag,
      op: c.op,
      at: chTime(c.at),
      source: c.source
    }))
  )
