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
import { type ApplyOptions, type ApplyResult, applyEvents, type Draft, type MemberContext, type MemberState } from "../member/MemberState.ts"
import { recordHistory } from "../member/MemberState/Facts.ts"
import { memberLocale, memberTimeZone, tierSince } from "../member/MemberState/Reads.ts"
import { derivedId, shortHash } from "../member/MemberState/Ids.ts"
import { type Brand, templateContext } from "./Context.ts"
import { type Action, emptySlot, type Enrollment, handleEvent, handleTimer, handleTrigger, type JourneySlot, nextEntryTime, type SlotOptions, triggerEventOf } from "./Machine.ts"
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

const toEvent = (d: DerivedEvent): MemberEvent => ({ ...d, at: Date.parse(d.occurredAt), source: "memberflow" })

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
  const context = templateContext(state, ctx, journey, action.variant, trigger, set.brand, now)
  const tierNames = Object.fromEntries(ctx.program.tiers.levels.map((level) => [level.id, level.name]))
  const options = { currency: ctx.program.currency, locale: memberLocale(state, ctx.program), timeZone, tierNames }
  const messages: Array<OutgoingMessage> = []
  for (const channel of decision.channels) {
    const composed = compose(set.templates, channel, action.template, context, options, {
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
  const at = new Date(now).toISOString()
  const rows: Array<Row> = d.rows ?? (d.rows = [])
  for (const action of actions) {
    switch (action.kind) {
      case "enrolled":
      case "ended": {
        const e = action.enrollment
        rows.push({ id: `enr:${e.id}:${e.status}`, table: "journey_enrollments", row: { ...enrollmentRow(e, now) } })
        const type = action.kind === "enrolled" ? "journey.entered" : "journey.exited"
        derived.push({
          id: derivedId("journey", e.id, type),
          type,
          memberId: e.memberId,
          occurredAt: at,
          properties: { journeyId: e.journeyId, variant: e.variant, ...(e.exitReason === null ? {} : { reason: e.exitReason }) }
        })
        break
      }
      case "step": {
        const row: JourneyStepRow = { enrollment_id: action.enrollmentId, journey_id: journey.id, step_id: action.stepId, at: chTime(action.at), outcome: action.outcome }
        rows.push({ id: `step:${action.enrollmentId}:${action.stepId}:${action.at}:${action.outcome}`, table: "journey_steps", row: { ...row } })
        break
      }
      case "send": {
        const enrollment = slot.active?.id === action.enrollmentId ? slot.active : slot.last
        const trigger = enrollment === null ? undefined : triggerEventOf(enrollment)
        const { row, request } = sendStep(d, journey, action, ctx, set, trigger, now)
        rows.push({ id: `msg:${action.messageId}`, table: "messages", row: { ...row } })
        if (request !== null) {
          derived.push({ id: action.messageId, type: MESSAGE_REQUEST, memberId: d.memberId, occurredAt: at, properties: { ...request } })
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
        rows.push({ id: `conv:${action.enrollmentId}`, table: "conversions", row: { ...row } })
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

/** What a date or inactivity journey's next entry time depends on, as one comparable string. */
const entryInputs = (journey: Journey, version: string, slot: JourneySlot, state: MemberState, ctx: MemberContext): string => {
  const trigger = journey.trigger
  if ("inactivity" in trigger) {
    const times = state.history[trigger.inactivity.event]?.at
    return `${version}|${times?.[times.length - 1] ?? ""}|${slot.lapseUsed ?? ""}`
  }
  if (!("date" in trigger)) return version
  const value =
    trigger.date.attribute === "birthday"
      ? state.attributes["birthday"]?.v
      : trigger.date.attribute === "registeredAt"
        ? state.registeredAt
        : trigger.date.attribute === "tierSince"
          ? tierSince(state)
          : state.points.expiresAt?.v
  return `${version}|${String(value ?? "")}|${memberTimeZone(state, ctx.program)}|${slot.dateChecked ?? ""}|${slot.dateEntered ?? ""}`
}

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
  const inputs = [...result.applied, ...result.derived.map(toEvent)]
  const d = (options.owned === true ? result.state : JSON.parse(JSON.stringify(result.state))) as Draft
  const slots: Record<string, unknown> = { ...(d.journeys ?? {}) }
  const entryTimers: Record<string, { due: number; inputs: string }> = { ...(d.entryTimers ?? {}) }
  let moved = false
  const versions = set.versions
  const derived: Array<DerivedEvent> = []
  const rowsBefore = (d.rows ?? []).length
  const journeyOf = (v: string) => versions.get(v)
  // Per journey, once per call: the options every step of this member's run takes.
  const optionsOf = new Map<string, SlotOptions>()
  for (const { journey, version } of journeys) {
    const winner = set.winners.get(journey.id)
    const promoted = winner !== undefined && journey.experiment?.variants.some((v) => v.id === winner) === true
    optionsOf.set(journey.id, { version, journeyOf, ...(promoted ? { winner } : {}) })
  }
  const step = (journey: Journey, version: string, f: (slot: JourneySlot, opts: SlotOptions) => { slot: JourneySlot; actions: ReadonlyArray<Action> }) => {
    const previous = (slots[journey.id] as JourneySlot | undefined) ?? emptySlot
    const next = f(previous, optionsOf.get(journey.id) ?? { version, journeyOf })
    if (next.slot !== previous) {
      slots[journey.id] = next.slot
      moved = true
    }
    perform(d, journey, next.actions, ctx, set, next.slot, now, derived)
  }
  const member = { state: d as MemberState, ctx }
  for (const event of inputs) {
    for (const { journey, version } of journeys) {
      if (event.type === TIMER_EVENT) {
        if (event.properties["journeyId"] !== journey.id) continue
        if (event.properties["kind"] === "entry") {
          const kind = "date" in journey.trigger ? ("date" as const) : ("inactivity" as const)
          delete entryTimers[journey.id]
          moved = true
          step(journey, version, (slot, opts) => handleTrigger(journey, slot, { kind }, member, now, opts))
        } else {
          step(journey, version, (slot, opts) => handleTimer(journey, slot, Number(event.properties["due"]), member, now, opts))
        }
      } else {
        step(journey, version, (slot, opts) => handleEvent(journey, slot, event, member, now, opts))
      }
    }
  }
  for (const { journeyId, tick } of ticks) {
    const loaded = journeys.find((j) => j.journey.id === journeyId)
    if (loaded === undefined) continue
    step(loaded.journey, loaded.version, (slot, opts) => handleTrigger(loaded.journey, slot, { kind: "schedule", tick }, member, now, opts))
  }
  // Date and inactivity entries come due by themselves: keep one timer per member and journey for
  // the next one, so that no tick ever scans the members. It is recomputed only when what it depends
  // on changed (the calendar arithmetic is the costly part of a member's journeys).
  for (const { journey, version } of journeys) {
    if (!("date" in journey.trigger) && !("inactivity" in journey.trigger)) continue
    const slot = (slots[journey.id] as JourneySlot | undefined) ?? emptySlot
    const inputs = entryInputs(journey, version, slot, member.state, ctx)
    const kept = entryTimers[journey.id]
    if (kept !== undefined && kept.inputs === inputs && kept.due > now) continue
    const due = nextEntryTime(journey, slot, member, now)
    if (due === null) {
      if (kept !== undefined) {
        delete entryTimers[journey.id]
        moved = true
      }
      continue
    }
    if (due <= now) {
      const kind = "date" in journey.trigger ? ("date" as const) : ("inactivity" as const)
      step(journey, version, (current, opts) => handleTrigger(journey, current, { kind }, member, now, opts))
      if (kept !== undefined) delete entryTimers[journey.id]
      moved = true
      continue
    }
    // A timer already kept for no later than the new due stays: when it fires early the entry is
    // refused ("not lapsed yet") and the next one is requested then. So a member who buys every day
    // holds one inactivity timer, not one per purchase.
    if (kept !== undefined && kept.due > now && kept.due <= due) {
      entryTimers[journey.id] = { due: kept.due, inputs }
      moved = moved || kept.inputs !== inputs
      continue
    }
    entryTimers[journey.id] = { due, inputs }
    moved = true
    derived.push({
      id: derivedId("entry-timer", d.memberId, journey.id, due),
      type: TIMER_REQUEST,
      memberId: d.memberId,
      occurredAt: new Date(now).toISOString(),
      properties: { journeyId: journey.id, enrollmentId: `entry:${d.memberId}:${journey.id}`, due, kind: "entry" }
    })
  }
  d.journeys = slots
  d.entryTimers = entryTimers
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
    d.seen.push(shortHash(event.id))
    recordHistory(d, toEvent(event))
  }
  return { ...result, state: d as MemberState, changed: true, derived: [...result.derived, ...derived] }
}
