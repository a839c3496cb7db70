import type { MemberEvent } from "../../../schemas/Event.ts"
import type { Journey } from "../../../schemas/Journey.ts"
import { type EvalContext, evaluate, matchesWhere } from "../../member/Conditions.ts"
import { nextOccurrence, occurrenceToday } from "./Calendar.ts"
import { enrollmentIdOf } from "./Ids.ts"
import { nextTick } from "./Schedule.ts"
import { type Enrollment, type JourneySlot, type Member, settle, type TriggerEventRef } from "./Types.ts"
import { inGlobalControl, variantOf } from "./Variants.ts"

/**
 * Whether a member enters a journey now, and when a time-based trigger is next due.
 *
 * Order of checks: the trigger fires (and its bookkeeping moves: segment edge, lapse, date, tick),
 * then status (paused stops new entries), the program's global control group (marketing only),
 * re-entry, audience. The enrollment starts at the first step; `advance` runs it.
 */

export type TriggerInput =
  /** an event, already applied to the member's state: `event` triggers; `segment` and same-day `date` re-checks */
  | { readonly kind: "event"; readonly event: MemberEvent }
  /** the state changed without an event (a refresh): `segment` and same-day `date` re-checks */
  | { readonly kind: "change" }
  /** the scheduler's call at nextEntryTime of a `date` journey */
  | { readonly kind: "date" }
  /** the scheduler's call at nextEntryTime of an `inactivity` journey */
  | { readonly kind: "inactivity" }
  /** a cron tick of a `schedule` journey (the tick's time) */
  | { readonly kind: "schedule"; readonly tick: number }

export interface EntryOptions {
  /** the journey version new entries run on (any string the caller chooses, e.g. a content hash) */
  readonly version: string
  /** the program's global control percent; default: the member's program policies */
  readonly globalControl?: number
  /** an experiment winner: every non-control entrant gets it */
  readonly winner?: string
}

export interface EntryResult {
  readonly slot: JourneySlot
  readonly entered?: Enrollment
  /** the active enrollment a `reentry: always` entry replaced (ended as `exited`, reason `reentered`) */
  readonly replaced?: Enrollment
  /** why there was no entry */
  readonly reason?: string
}

interface Fired {
  readonly slot: JourneySlot
  readonly key?: string
  /** the trigger event, kept as a reference (refOf) only when an enrollment is made of it */
  readonly trigger?: MemberEvent | null
  readonly dateKey?: string
  readonly reason?: string
}

const refOf = (event: MemberEvent): TriggerEventRef => ({
  id: event.id,
  type: event.type,
  at: event.at,
  occurredAt: event.occurredAt,
  properties: event.properties
})

/** The time of the member's latest event of a type, or null. */
export const lastEventAt = (member: Member, type: string): number | null => {
  const times = member.state.history[type]?.at
  return times === undefined || times.length === 0 ? null : (times[times.length - 1] ?? null)
}

const fire = (journey: Journey, slot: JourneySlot, member: Member, input: TriggerInput, now: number): Fired => {
  const trigger = journey.trigger
  const event = input.kind === "event" ? input.event : undefined
  if ("event" in trigger) {
    if (event === undefined || event.type !== trigger.event.type) return { slot, reason: "not the trigger" }
    if (trigger.event.where !== undefined && !matchesWhere(event.properties, trigger.event.where)) return { slot, reason: "where does not match" }
    return { slot, key: event.id, trigger: event }
  }
  if ("segment" in trigger) {
    if (input.kind !== "event" && input.kind !== "change") return { slot, reason: "not the trigger" }
    const matches = evaluate(trigger.segment.enters, member.state, evalContextOf(member, now, undefined, event))
    const next = { ...slot, segmentMatched: matches }
    if (!matches) return { slot: next, reason: "not in the segment" }
    if (slot.segmentMatched) return { slot: next, reason: "already in the segment" }
    return event === undefined
      ? { slot: next, key: `segment:${now}`, trigger: null }
      : { slot: next, key: `segment:${event.id}`, trigger: event }
  }
  if ("date" in trigger) {
    if (input.kind !== "event" && input.kind !== "change" && input.kind !== "date") return { slot, reason: "not the trigger" }
    const occurrence = occurrenceToday(journey, member, now)
    const checked = input.kind === "date" && occurrence !== null ? { ...slot, dateChecked: occurrence.key } : slot
    if (occurrence === null) return { slot: checked, reason: "not the day" }
    if (now < occurrence.at) return { slot, reason: "not the time yet" }
    if (slot.dateEntered === occurrence.key) return { slot: checked, reason: "entered today already" }
    return { slot: checked, key: `date:${occurrence.key}`, trigger: null, dateKey: occurrence.key }
  }
  if ("inactivity" in trigger) {
    if (input.kind !== "inactivity") return { slot, reason: "not the trigger" }
    const last = lastEventAt(member, trigger.inactivity.event)
    if (last === null) return { slot, reason: "never did the event" }
    if (now < last + trigger.inactivity.for) return { slot, reason: "not lapsed yet" }
    if (slot.lapseUsed === last) return { slot, reason: "lapse used" }
    // a lapse is used when looked at, entered or not: the next such event re-arms it
    return { slot: { ...slot, lapseUsed: last }, key: `lapse:${last}`, trigger: null }
  }
  if (input.kind !== "schedule") return { slot, reason: "not the trigger" }
  if (slot.lastTick !== null && input.tick <= slot.lastTick) return { slot, reason: "tick seen" }
  return { slot: { ...slot, lastTick: input.tick }, key: `tick:${input.tick}`, trigger: null }
}

/** How conditions see the member now, with the order figures when the caller keeps them (built, not spread). */
const evalContextOf = (member: Member, now: number, enteredAt: number | undefined, triggerEvent: MemberEvent | undefined): EvalContext => {
  const ctx = member.ctx
  const figures = member.figures
  if (enteredAt === undefined) {
    if (triggerEvent === undefined) return figures === undefined ? { now, ctx } : { now, ctx, figures }
    return figures === undefined ? { now, ctx, triggerEvent } : { now, ctx, triggerEvent, figures }
  }
  if (triggerEvent === undefined) return figures === undefined ? { now, ctx, enteredAt } : { now, ctx, enteredAt, figures }
  return figures === undefined ? { now, ctx, enteredAt, triggerEvent } : { now, ctx, enteredAt, triggerEvent, figures }
}

const inAudience = (journey: Journey, member: Member, now: number, triggerEvent: MemberEvent | undefined): boolean =>
  journey.audience === undefined || evaluate(journey.audience, member.state, evalContextOf(member, now, now, triggerEvent))

type Reentry = { readonly kind: "enter" } | { readonly kind: "replace" } | { readonly kind: "refuse"; readonly reason: string }

/**
 * never: one entry ever. afterExit: whenever not inside. always: a new trigger ends the
 * enrollment in progress (reason `reentered`) and starts again, so a member is still inside at
 * most once. {after}: not inside, and that long since the last entry.
 */
const reentry = (journey: Journey, slot: JourneySlot, now: number): Reentry => {
  const rule = journey.reentry
  if (rule === "never") return slot.entries === 0 && slot.active === null ? { kind: "enter" } : { kind: "refuse", reason: "entered before (reentry: never)" }
  if (slot.active !== null) return rule === "always" ? { kind: "replace" } : { kind: "refuse", reason: "already inside" }
  if (rule === "afterExit" || rule === "always") return { kind: "enter" }
  return slot.lastEntryAt === null || now - slot.lastEntryAt >= rule.after ? { kind: "enter" } : { kind: "refuse", reason: "entered too recently" }
}

export const considerEntry = (
  journey: Journey,
  slot: JourneySlot,
  member: Member,
  input: TriggerInput,
  now: number,
  options: EntryOptions
): EntryResult => entryFor(journey, slot, member, input, now, options, true)

/**
 * considerEntry. Every refusal leaves the slot as the trigger left it, so the order of the checks
 * decides only which reason is named: without `reasons` the re-entry rule and the audience are
 * looked at before the enrollment id is hashed, as they refuse most entries a run considers (a
 * member inside already, or not in the audience, buying again).
 */
export const entryFor = (
  journey: Journey,
  slot: JourneySlot,
  member: Member,
  input: TriggerInput,
  now: number,
  options: EntryOptions,
  reasons: boolean
): EntryResult => {
  if (journey.status === "draft") return { slot, reason: "draft" }
  const fired = fire(journey, slot, member, input, now)
  const key = fired.key
  if (key === undefined) return { slot: fired.slot, reason: fired.reason ?? "not the trigger" }
  let next = fired.slot
  if (journey.status !== "active") return { slot: next, reason: "paused" }
  const memberId = member.state.memberId
  const percent = options.globalControl ?? member.ctx.program.policies.globalControl
  if (journey.category === "marketing" && inGlobalControl(memberId, percent)) return { slot: next, reason: "global control" }
  const triggerEvent = input.kind === "event" ? input.event : undefined
  const early = reasons ? null : reentry(journey, next, now)
  if (early?.kind === "refuse") return { slot: next, reason: early.reason }
  if (!reasons && !inAudience(journey, member, now, triggerEvent)) return { slot: next, reason: "not in the audience" }
  const id = enrollmentIdOf(journey.id, memberId, key)
  if (next.active?.id === id || next.last?.id === id) return { slot: next, reason: "entered on this already" }
  const rule = early ?? reentry(journey, next, now)
  if (rule.kind === "refuse") return { slot: next, reason: rule.reason }
  if (reasons && !inAudience(journey, member, now, triggerEvent)) return { slot: next, reason: "not in the audience" }
  let replaced: Enrollment | undefined
  if (rule.kind === "replace" && next.active !== null) {
    replaced = { ...next.active, status: "exited", exitedAt: now, exitReason: "reentered", stepId: null, wait: null }
    next = settle(next, replaced)
  }
  const trigger = fired.trigger === undefined || fired.trigger === null ? null : refOf(fired.trigger)
  const entered: Enrollment = {
    id,
    journeyId: journey.id,
    journeyVersion: options.version,
    memberId,
    variant: variantOf(journey, memberId, options.winner),
    entryKey: key,
    enteredAt: now,
    triggerEventId: trigger?.id ?? null,
    trigger,
    stepId: journey.steps[0]?.id ?? null,
    status: "active",
    exitedAt: null,
    exitReason: null,
    wait: null,
    visits: {},
    converted: null
  }
  next = {
    ...next,
    active: entered,
    entries: next.entries + 1,
    lastEntryAt: now,
    ...(fired.dateKey === undefined ? {} : { dateEntered: fired.dateKey })
  }
  return replaced === undefined ? { slot: next, entered } : { slot: next, entered, replaced }
}

/**
 * When the scheduler should next call considerEntry for a time-based trigger (epoch ms; at or
 * before `now` means due now), or null: none coming (event and segment triggers, no date
 * attribute, no event to lapse from, the lapse used).
 * - date: `at` member-local on the next entry day from today, skipping a day already looked at or
 *   entered; a time already past today is due now.
 * - inactivity: the latest such event's time + `for`.
 * - schedule: the first cron tick after the last tick looked at (and not before `now`).
 */
export const nextEntryTime = (journey: Journey, slot: JourneySlot, member: Member, now: number): number | null => {
  if (journey.status !== "active") return null
  const trigger = journey.trigger
  if ("date" in trigger) return nextOccurrence(journey, member, now, [slot.dateChecked, slot.dateEntered])?.at ?? null
  if ("inactivity" in trigger) {
    const last = lastEventAt(member, trigger.inactivity.event)
    return last === null || slot.lapseUsed === last ? null : last + trigger.inactivity.for
  }
  if ("schedule" in trigger) {
    const timeZone = trigger.schedule.timezone ?? member.ctx.program.timezone
    return nextTick(trigger.schedule.cron, timeZone, Math.max(slot.lastTick ?? -Infinity, now - 1))
  }
  return null
}
