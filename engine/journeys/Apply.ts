import { Either } from "effect"
import type { OutgoingMessage } from "../../channels/Channel.ts"
import { compose, subscribeTemplateId } from "../../channels/Compose.ts"
import { CONTACT, decide, keepFor } from "../../channels/SendPolicy.ts"
import type { DerivedEvent, MemberEvent } from "../../schemas/Event.ts"
import type { Journey } from "../../schemas/Journey.ts"
import type { Channel } from "../../schemas/Program.ts"
import {
  chTime,
  type ConversionRow,
  type JourneyEnrollmentRow,
  type JourneyStepRow,
  type MessageRow
} from "../../schemas/Rows.ts"
import { type ApplyOptions, type ApplyResult, applyEvents, type Draft, draftOf, type MemberContext, type MemberState } from "../member/MemberState.ts"
import { recordHistoryOf } from "../member/MemberState/Facts.ts"
import { memberLocale, memberTimeZone, type OrderFigures, orderFigures, tierSince } from "../member/MemberState/Reads.ts"
import { derivedId, shortHash } from "../member/MemberState/Ids.ts"
import { addSeen, NO_ENTRIES, writable, writableList } from "../member/MemberState/Compact.ts"
import { isoOf, timeOf } from "../member/Instant.ts"
import { type Brand, templateContext, unsubscribeUrlOf } from "./Context.ts"
import {
  type Action,
  emptySlot,
  type Enrollment,
  handleTimer,
  handleTrigger,
  ignoresEvent,
  hearEvent,
  type JourneySlot,
  type Member,
  nextEntryTime,
  type SlotOptions,
  type SlotResult,
  triggerEventOf
} from "./Machine.ts"
import type { Templates } from "./Templates.ts"

/**
 * Runs the loaded journeys over what a batch did to one member, inside the same KV write: the
 * journey slots, the analyst rows and the events the journeys cause are part of the member's state
 * until they are published and written, so a crash at any point repeats them instead of losing or
 * doubling them.
 */

/** A wait fired: published by engine/Timers.ts when a timer comes due, applied like any event. */
export const TIMER_EVENT = "journey.timer"
/** A timer to keep: routed to the timers stream instead of the event stream. */
export const TIMER_REQUEST = "journey.timer.request"
/** A message to hand over: routed to the messages stream, where engine/Delivery.ts sends it once. */
export const MESSAGE_REQUEST = "journey.message.request"

/** What a message request carries to delivery: rendered, addressed, in the order to try the channels. */
export interface MessageRequest {
  readonly messageId: string
  readonly enrollmentId: string
  readonly journeyId: string
  readonly stepId: string
  readonly variant: string
  readonly template: string
  /** marketing messages are re-checked for consent when handed over */
  readonly marketing: boolean
  /** quiet hours: not before this instant (epoch ms), else null */
  readonly notBefore: number | null
  readonly createdAt: number
  readonly messages: ReadonlyArray<OutgoingMessage>
}

export interface LoadedJourney {
  readonly journey: Journey
  /** A short hash of the decoded journey: a changed file is a new version. */
  readonly version: string
}

/** What runs: the current version of each journey, and every version members may still be inside. */
export interface JourneySet {
  readonly current: ReadonlyArray<LoadedJourney>
  readonly versions: ReadonlyMap<string, Journey>
  readonly templates: Templates
  readonly brand: Brand
  /** experiment winners promoted (engine/Experiments.ts): journey id → the variant new entrants get */
  readonly winners: ReadonlyMap<string, string>
}

type Row = MemberState["rows"][number]

const contactOf = (state: MemberState, channel: Channel): string | null => {
  const contact = state.attributes[CONTACT[channel]]?.v
  return typeof contact === "string" && contact !== "" ? contact : null
}

const enrollmentRow = (e: Enrollment, now: number): JourneyEnrollmentRow => ({
  enrollment_id: e.id,
  journey_id: e.journeyId,
  journey_version: e.journeyVersion,
  member_id: e.memberId,
  variant: e.variant,
  entered_at: chTime(e.enteredAt),
  trigger_event_id: e.triggerEventId ?? "",
  status: e.status,
  exited_at: e.exitedAt === null ? null : chTime(e.exitedAt),
  exit_reason: e.exitReason ?? "",
  version: now * 10 + (e.status === "active" ? 0 : 1)
})

// The event a derived event is as an input: its five fields (derive and perform make no others).
const toEvent = (d: DerivedEvent): MemberEvent => ({
  id: d.id,
  type: d.type,
  memberId: d.memberId,
  occurredAt: d.occurredAt,
  properties: d.properties,
  at: timeOf(d.occurredAt),
  source: "memberflow"
})

// Tier names by id, per program: every rendered message needs them.
const tierNamesByLevels = new WeakMap<MemberContext["program"]["tiers"]["levels"], Readonly<Record<string, string>>>()
const tierNamesOf = (ctx: MemberContext): Readonly<Record<string, string>> => {
  const levels = ctx.program.tiers.levels
  let names = tierNamesByLevels.get(levels)
  if (names === undefined) {
    names = Object.fromEntries(levels.map((level) => [level.id, level.name]))
    tierNamesByLevels.set(levels, names)
  }
  return names
}

/** A typed row as the state holds it: the row itself, no copy (it is made for this and held by nobody else). */
const stored = <R extends object>(row: { readonly [K in keyof R]: R[K] }): Record<string, unknown> => row

export type SendAction = Extract<Action, { kind: "send" }>

/**
 * A send step, decided in the member's write (channels.md rules 1–3): the reachable channels and
 * caps, quiet hours, then every candidate channel rendered whole. What is queued becomes a message
 * request that delivery hands over once; what is not is recorded with its reason, the journey moves on.
 */
export const sendStep = (
  d: Draft,
  journey: Journey,
  action: SendAction,
  ctx: MemberContext,
  set: JourneySet,
  trigger: MemberEvent | undefined,
  now: number
): { readonly row: MessageRow; readonly request: MessageRequest | null } => {
  const marketing = journey.category === "marketing"
  const row = (channel: Channel, status: MessageRow["status"], reason: string): MessageRow => ({
    message_id: action.messageId,
    enrollment_id: action.enrollmentId,
    journey_id: journey.id,
    variant: action.variant,
    step_id: action.stepId,
    member_id: d.memberId,
    channel,
    template: action.template,
    status,
    reason,
    provider_message_id: "",
    created_at: chTime(now),
    updated_at: chTime(now)
  })
  if (action.suppressed !== null) return { row: row(action.channel, "suppressed", action.suppressed), request: null }
  const state = d as MemberState
  const policies = ctx.program.policies
  const timeZone = memberTimeZone(state, ctx.program)
  const credit = subscribeTemplateId(set.templates, action.template)
  const decision = decide(
    { channels: [action.channel, ...action.fallback], marketing, timeZone, now },
    {
      contact: (channel) => contactOf(state, channel),
      consent: (channel) => state.consent[channel]?.v === true,
      wechatCredit: () => credit === null || (state.credits?.[credit] ?? 0) > 0
    },
    policies,
    state.sent ?? []
  )
  if (decision.kind === "suppressed") return { row: row(decision.channel, "suppressed", decision.reason), request: null }
  const first = decision.channels[0] ?? action.channel
  const context = templateContext(state, ctx, journey, action.variant, trigger, set.brand, now, first)
  const options = { currency: ctx.program.currency, locale: memberLocale(state, ctx.program), timeZone, tierNames: tierNamesOf(ctx) }
  const messages: Array<OutgoingMessage> = []
  for (const channel of decision.channels) {
    // A fallback's unsubscribe link opts out of its own channel.
    const forChannel = channel === first ? context : { ...context, unsubscribeUrl: unsubscribeUrlOf(set.brand, d.memberId, channel) }
    const composed = compose(set.templates, channel, action.template, forChannel, options, {
      messageId: action.messageId,
      memberId: d.memberId,
      to: contactOf(state, channel) ?? ""
    })
    // A rendering error fails this message alone, naming the template and the variable.
    if (Either.isLeft(composed)) return { row: row(channel, "failed", composed.left), request: null }
    messages.push(composed.right)
  }
  const chosen = decision.channels[0] ?? action.channel
  if (marketing) {
    const horizon = now - keepFor(policies)
    d.sent = [...(d.sent ?? []).filter((mark) => mark.at > horizon), { at: now, ch: chosen }]
  }
  if (chosen === "wechat" && credit !== null) d.credits = { ...(d.credits ?? {}), [credit]: (d.credits?.[credit] ?? 1) - 1 }
  return {
    row: row(chosen, "queued", decision.notBefore === null ? "" : "quiet_hours_deferred"),
    request: {
      messageId: action.messageId,
      enrollmentId: action.enrollmentId,
      journeyId: journey.id,
      stepId: action.stepId,
      variant: action.variant,
      template: action.template,
      marketing,
      notBefore: decision.notBefore,
      createdAt: now,
      messages
    }
  }
}

/** Turns a transition's actions into rows, derived events and tag changes on the member's state. */
const perform = (
  d: Draft,
  journey: Journey,
  actions: ReadonlyArray<Action>,
  ctx: MemberContext,
  set: JourneySet,
  slot: JourneySlot,
  now: number,
  derived: Array<DerivedEvent>
): void => {
  // Most events move no journey: nothing to allocate then.
  if (actions.length === 0) return
  const at = isoOf(now)
  // Its own list, not the shared empty one a state rests with (MemberState/Compact.ts `NO_ITEMS`).
  const rows: Array<Row> = (d.rows = writableList(d.rows ?? []))
  for (const action of actions) {
    switch (action.kind) {
      case "enrolled":
      case "ended": {
        const e = action.enrollment
        rows.push({ id: `enr:${e.id}:${e.status}`, table: "journey_enrollments", row: stored(enrollmentRow(e, now)) })
        const type = action.kind === "enrolled" ? "journey.entered" : "journey.exited"
        derived.push({
          id: derivedId("journey", e.id, type),
          type,
          memberId: e.memberId,
          occurredAt: at,
          properties: e.exitReason === null
            ? { journeyId: e.journeyId, variant: e.variant }
            : { journeyId: e.journeyId, variant: e.variant, reason: e.exitReason }
        })
        break
      }
      case "step": {
        const row: JourneyStepRow = { enrollment_id: action.enrollmentId, journey_id: journey.id, step_id: action.stepId, at: chTime(action.at), outcome: action.outcome }
        rows.push({ id: `step:${action.enrollmentId}:${action.stepId}:${action.at}:${action.outcome}`, table: "journey_steps", row: stored(row) })
        break
      }
      case "send": {
        const enrollment = slot.active?.id === action.enrollmentId ? slot.active : slot.last
        const trigger = enrollment === null ? undefined : triggerEventOf(enrollment)
        const { row, request } = sendStep(d, journey, action, ctx, set, trigger, now)
        rows.push({ id: `msg:${action.messageId}`, table: "messages", row: stored(row) })
        if (request !== null) {
          derived.push({ id: action.messageId, type: MESSAGE_REQUEST, memberId: d.memberId, occurredAt: at, properties: stored(request) })
        }
        break
      }
      case "conversion": {
        const row: ConversionRow = {
          journey_id: journey.id,
          enrollment_id: action.enrollmentId,
          variant: action.variant,
          member_id: d.memberId,
          event_id: action.eventId,
          converted_at: chTime(action.at),
          value: action.value
        }
        rows.push({ id: `conv:${action.enrollmentId}`, table: "conversions", row: stored(row) })
        break
      }
      case "timer":
        derived.push({
          id: derivedId("timer", action.enrollmentId, action.due),
          type: TIMER_REQUEST,
          memberId: d.memberId,
          occurredAt: at,
          properties: { journeyId: journey.id, enrollmentId: action.enrollmentId, due: action.due }
        })
        break
      case "emit":
        derived.push({ id: action.id, type: action.type, memberId: d.memberId, occurredAt: at, properties: action.properties })
        break
      case "tag": {
        // A journey's tag step is a manual tag change whose source is the journey.
        const change: MemberEvent = {
          id: derivedId("journey-tag", action.enrollmentId, action.stepId, now),
          type: "tags.updated",
          memberId: d.memberId,
          occurredAt: at,
          at: now,
          properties: { add: action.add, remove: action.remove, source: journey.id },
          source: "memberflow"
        }
        applyEvents(d, [change], ctx, now, { owned: true })
        break
      }
    }
  }
}

const dateInput = (trigger: Extract<Journey["trigger"], { readonly date: unknown }>, state: MemberState): unknown =>
  trigger.date.attribute === "birthday"
    ? state.attributes["birthday"]?.v
    : trigger.date.attribute === "registeredAt"
      ? state.registeredAt
      : trigger.date.attribute === "tierSince"
        ? tierSince(state)
        : state.points.expiresAt?.v

const lastTimeOf = (state: MemberState, type: string): number | undefined => {
  const times = state.history[type]?.at
  return times?.[times.length - 1]
}

/**
 * What a date or inactivity journey's next entry time depends on, as one comparable string. Joined
 * rather than concatenated: V8 keeps a concatenation as a tree of its parts, which entryInputsAre
 * would walk for every character it reads.
 */
const entryInputs = (journey: Journey, version: string, slot: JourneySlot, state: MemberState, ctx: MemberContext): string => {
  const trigger = journey.trigger
  if ("inactivity" in trigger) return [version, `${lastTimeOf(state, trigger.inactivity.event) ?? ""}`, `${slot.lapseUsed ?? ""}`].join("|")
  if (!("date" in trigger)) return version
  return [version, String(dateInput(trigger, state) ?? ""), memberTimeZone(state, ctx.program), slot.dateChecked ?? "", slot.dateEntered ?? ""].join("|")
}

/** Where `part` ends in `text` if it is there at `at` (-1 otherwise or when `at` already is). */
const partAt = (text: string, at: number, part: string): number => {
  // a loop over char codes: startsWith at an offset was the slower part of the whole comparison
  if (at < 0 || at + part.length > text.length) return -1
  for (let i = 0; i < part.length; i++) if (text.charCodeAt(at + i) !== part.charCodeAt(i)) return -1
  return at + part.length
}
/** After a part: past the "|" that must follow it. */
const barAt = (text: string, at: number): number => (at >= 0 && text.charCodeAt(at) === 124 ? at + 1 : -1)

/**
 * Where String(value ?? "") ends in `text` if it is there at `at`, else -1. A whole number (epoch
 * ms, the usual part) is compared digit by digit: converting it to a string was the larger cost.
 */
const valueAt = (text: string, at: number, value: unknown): number => {
  if (at < 0) return -1
  if (value === undefined || value === null) return at
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) return partAt(text, at, String(value))
  let digits = 1
  for (let power = 10; power <= value; power *= 10) digits++
  const end = at + digits
  if (end > text.length) return -1
  let rest = value
  for (let i = end - 1; i >= at; i--) {
    if (text.charCodeAt(i) !== 48 + (rest % 10)) return -1
    rest = Math.floor(rest / 10)
  }
  return end
}

/**
 * `entryInputs(…) === kept`, compared part by part: asked for every date and inactivity journey on
 * every event, and mostly true, so the string is made only when it changed.
 */
const entryInputsAre = (kept: string, journey: Journey, version: string, slot: JourneySlot, state: MemberState, ctx: MemberContext): boolean => {
  const trigger = journey.trigger
  if ("inactivity" in trigger) {
    let at = barAt(kept, partAt(kept, 0, version))
    at = barAt(kept, valueAt(kept, at, lastTimeOf(state, trigger.inactivity.event)))
    return valueAt(kept, at, slot.lapseUsed) === kept.length
  }
  if (!("date" in trigger)) return kept === version
  let at = barAt(kept, partAt(kept, 0, version))
  at = barAt(kept, valueAt(kept, at, dateInput(trigger, state)))
  at = barAt(kept, partAt(kept, at, memberTimeZone(state, ctx.program)))
  at = barAt(kept, partAt(kept, at, slot.dateChecked ?? ""))
  return partAt(kept, at, slot.dateEntered ?? "") === kept.length
}

interface OptionsOfSet {
  readonly current: ReadonlyArray<LoadedJourney>
  readonly journeyOf: (version: string) => Journey | undefined
  /** by journey id (the last loaded journey of an id, as a Map built in file order keeps it) */
  readonly byId: Map<string, { readonly winner: string | undefined; readonly options: SlotOptions }>
}

// The options a set's journeys run with, made once per set instead of once per member and write.
// Sets are snapshots (a new winner makes a new set); a journey's winner is still checked on each use.
const optionsOfSets = new WeakMap<JourneySet, OptionsOfSet>()

const optionsWith = (set: JourneySet, journey: Journey, version: string, journeyOf: OptionsOfSet["journeyOf"]) => {
  const winner = set.winners.get(journey.id)
  const promoted = winner !== undefined && journey.experiment?.variants.some((v) => v.id === winner) === true
  return { winner, options: promoted ? { version, journeyOf, winner } : { version, journeyOf } }
}

/** The options every step of a journey in `set` takes. */
const slotOptions = (set: JourneySet, journey: Journey, version: string): SlotOptions => {
  let known = optionsOfSets.get(set)
  if (known === undefined || known.current !== set.current) {
    const versions = set.versions
    const journeyOf = (v: string) => versions.get(v)
    const byId = new Map<string, { readonly winner: string | undefined; readonly options: SlotOptions }>()
    for (const loaded of set.current) byId.set(loaded.journey.id, optionsWith(set, loaded.journey, loaded.version, journeyOf))
    known = { current: set.current, journeyOf, byId }
    optionsOfSets.set(set, known)
  }
  const entry = known.byId.get(journey.id)
  if (entry === undefined) return { version, journeyOf: known.journeyOf }
  if (entry.winner === set.winners.get(journey.id)) return entry.options
  // the winners changed under the same set: made again from the journey they were made from
  let loaded: LoadedJourney | undefined
  for (const j of set.current) if (j.journey.id === journey.id) loaded = j
  const fresh = loaded === undefined ? entry : optionsWith(set, loaded.journey, loaded.version, known.journeyOf)
  known.byId.set(journey.id, fresh)
  return fresh.options
}

/** The request for a member's next date or inactivity entry check, due at `due`. */
const entryTimerRequest = (memberId: string, journeyId: string, due: number, now: number): DerivedEvent => ({
  id: derivedId("entry-timer", memberId, journeyId, due),
  type: TIMER_REQUEST,
  memberId,
  occurredAt: isoOf(now),
  properties: { journeyId, enrollmentId: `entry:${memberId}:${journeyId}`, due, kind: "entry" }
})

/**
 * The batch's new events — and the events the engine derived from them in this write — go to every
 * journey; a `journey.timer` event goes to the journey whose wait it ends.
 */
export const runJourneys = (
  result: ApplyResult,
  set: JourneySet,
  ctx: MemberContext,
  now: number,
  options: ApplyOptions,
  /** Cron ticks of `schedule` journeys to consider this member for (the broadcast's pass). */
  ticks: ReadonlyArray<{ readonly journeyId: string; readonly tick: number }> = []
): ApplyResult => {
  const journeys = set.current
  if (journeys.length === 0 || result.state.lastSeenAt === null) return result
  const d = draftOf(result.state, options)
  // The draft is ours (owned, or the copy just made): its slots and entry timers change in place,
  // once they are its own records and not the shared empty one (MemberState/Compact.ts `NO_ENTRIES`).
  let slots: Record<string, unknown> = d.journeys ?? NO_ENTRIES
  let entryTimers: Record<string, { due: number; inputs: string }> = d.entryTimers ?? NO_ENTRIES
  const setSlot = (journeyId: string, slot: JourneySlot) => {
    slots = d.journeys = writable(slots)
    slots[journeyId] = slot
  }
  const setEntryTimer = (journeyId: string, timer: { due: number; inputs: string }) => {
    entryTimers = d.entryTimers = writable(entryTimers)
    entryTimers[journeyId] = timer
  }
  let moved = false
  const derived: Array<DerivedEvent> = []
  const rowsBefore = (d.rows ?? []).length
  const slotOf = (journey: Journey): JourneySlot => (slots[journey.id] as JourneySlot | undefined) ?? emptySlot
  const optionsFor = (journey: Journey, version: string): SlotOptions => slotOptions(set, journey, version)
  const settleStep = (journey: Journey, previous: JourneySlot, next: SlotResult): void => {
    if (next.slot !== previous) {
      setSlot(journey.id, next.slot)
      moved = true
    }
    perform(d, journey, next.actions, ctx, set, next.slot, now, derived)
  }
  // No order changes in a run (tags, sends and slots do not touch them): summed once, when asked.
  let figures: OrderFigures | undefined
  const member: Member = { state: d as MemberState, ctx, figures: () => (figures ??= orderFigures(d, ctx.program.rfm.window, now)) }
  const applied = result.applied
  const inputs = applied.length + result.derived.length
  for (let i = 0; i < inputs; i++) {
    const event = i < applied.length ? applied[i]! : toEvent(result.derived[i - applied.length]!)
    if (event.type === TIMER_EVENT) {
      for (const { journey, version } of journeys) {
        if (event.properties["journeyId"] !== journey.id) continue
        const previous = slotOf(journey)
        if (event.properties["kind"] === "entry") {
          const kind = "date" in journey.trigger ? ("date" as const) : ("inactivity" as const)
          delete entryTimers[journey.id]
          moved = true
          settleStep(journey, previous, handleTrigger(journey, previous, { kind }, member, now, optionsFor(journey, version)))
        } else {
          settleStep(journey, previous, handleTimer(journey, previous, Number(event.properties["due"]), member, now, optionsFor(journey, version)))
        }
      }
      continue
    }
    for (const { journey, version } of journeys) {
      const previous = slotOf(journey)
      // Most events move no journey: skip what would come back unchanged.
      if (ignoresEvent(journey, previous, event, member, now)) continue
      const heard = hearEvent(journey, previous, event, member, now, optionsFor(journey, version))
      if (heard.renewed) moved = true
      settleStep(journey, previous, heard)
    }
  }
  for (const { journeyId, tick } of ticks) {
    const loaded = journeys.find((j) => j.journey.id === journeyId)
    if (loaded === undefined) continue
    const previous = slotOf(loaded.journey)
    settleStep(loaded.journey, previous, handleTrigger(loaded.journey, previous, { kind: "schedule", tick }, member, now, optionsFor(loaded.journey, loaded.version)))
  }
  // Date and inactivity entries come due by themselves: keep one timer per member and journey for
  // the next one, so that no tick ever scans the members. It is recomputed only when what it depends
  // on changed (the calendar arithmetic is the costly part of a member's journeys).
  for (const { journey, version } of journeys) {
    if (!("date" in journey.trigger) && !("inactivity" in journey.trigger)) continue
    const slot = slotOf(journey)
    const kept = entryTimers[journey.id]
    if (kept !== undefined && kept.due > now && entryInputsAre(kept.inputs, journey, version, slot, member.state, ctx)) continue
    const due = nextEntryTime(journey, slot, member, now)
    if (due === null) {
      if (kept !== undefined) {
        delete entryTimers[journey.id]
        moved = true
      }
      continue
    }
    if (due <= now && "inactivity" in journey.trigger) {
      // Lapsed already: judged by a timer due now rather than on this event, so that what is queued
      // behind it (a member's history being loaded, oldest first) is applied before the lapse is —
      // else every old purchase would look lapsed in turn and enter the member again. A timer asked
      // for and not fired yet will do.
      if (kept !== undefined && kept.due <= now) continue
      setEntryTimer(journey.id, { due: now, inputs: entryInputs(journey, version, slot, member.state, ctx) })
      moved = true
      derived.push(entryTimerRequest(d.memberId, journey.id, now, now))
      continue
    }
    if (due <= now) {
      settleStep(journey, slot, handleTrigger(journey, slot, { kind: "date" }, member, now, optionsFor(journey, version)))
      if (kept !== undefined) delete entryTimers[journey.id]
      moved = true
      continue
    }
    // made only for a timer kept: most members have none for most journeys most of the time
    const inputs = entryInputs(journey, version, slot, member.state, ctx)
    // A timer already kept for no later than the new due stays: when it fires early the entry is
    // refused ("not lapsed yet") and the next one is requested then. So a member who buys every day
    // holds one inactivity timer, not one per purchase.
    if (kept !== undefined && kept.due > now && kept.due <= due) {
      setEntryTimer(journey.id, { due: kept.due, inputs })
      moved = moved || kept.inputs !== inputs
      continue
    }
    setEntryTimer(journey.id, { due, inputs })
    moved = true
    derived.push(entryTimerRequest(d.memberId, journey.id, due, now))
  }
  const changed = moved || derived.length > 0 || (d.rows ?? []).length !== rowsBefore
  if (!changed) return result
  if (!result.changed) {
    d.version += 1
    d.updatedAt = now
  }
  d.outbox = [...d.outbox, ...derived]
  // journey.entered / journey.exited are applied here, in the write that makes them: when they come
  // back through the stream they are already known and cost no second write (as for tier and tag
  // events). Emitted events are not: other journeys may be triggered by them.
  for (const event of derived) {
    if (event.type !== "journey.entered" && event.type !== "journey.exited") continue
    addSeen(d, shortHash(event.id))
    recordHistoryOf(d, event.type, timeOf(event.occurredAt), event.properties)
  }
  return { ...result, state: d as MemberState, changed: true, derived: [...result.derived, ...derived] }
}
