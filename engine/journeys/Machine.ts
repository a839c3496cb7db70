import type { MemberEvent } from "../../schemas/Event.ts"
import type { Journey } from "../../schemas/Journey.ts"
import { occurrenceToday } from "./Machine/Calendar.ts"
import { type EntryOptions, entryFor, type TriggerInput } from "./Machine/Entry.ts"
import { advance, onEvent, onTimer, passesBy } from "./Machine/Steps.ts"
import { type Action, type Enrollment, type JourneySlot, type Member, settle } from "./Machine/Types.ts"

export { considerEntry, type EntryOptions, type EntryResult, lastEventAt, nextEntryTime, type TriggerInput } from "./Machine/Entry.ts"
export { advance, MAX_STEPS_PER_RUN, onEvent, onTimer, passesBy, recordGoal } from "./Machine/Steps.ts"
export { nextTick } from "./Machine/Schedule.ts"
export { CONTROL, inGlobalControl, splitArmOf, variantOf } from "./Machine/Variants.ts"
export { bucketOf, emitIdOf, enrollmentIdOf, hash32, messageIdOf } from "./Machine/Ids.ts"
export {
  type Action,
  type Conversion,
  emptySlot,
  type Enrollment,
  type EnrollmentStatus,
  type JourneySlot,
  type Member,
  settle,
  type Transition,
  type TriggerEventRef,
  triggerEventOf,
  type WaitState
} from "./Machine/Types.ts"

/**
 * The journey runtime's pure core: per member and journey, a `JourneySlot` (JSON, kept in the
 * member's KV state under `journeys[journeyId]`) moved by events, timers and scheduler ticks. No
 * I/O, no clock, no randomness: `now` is passed in and every assignment and id is a hash.
 *
 * The functions below compose the parts in the order the engine needs them; the parts
 * (considerEntry, advance, onEvent, onTimer) are exported for callers that need finer control.
 *
 * Versions: an enrollment runs on the version it entered (`journeyVersion`). `journeyOf` gives the
 * journey of a version; the caller keeps old versions as long as enrollments use them. Without it
 * (or when it has no such version) the current journey is used, and a step id the current version
 * no longer has ends the enrollment as `exited`, reason `missing-step:<id>`.
 */

export interface SlotOptions extends EntryOptions {
  readonly journeyOf?: (version: string) => Journey | undefined
}

export interface SlotResult {
  readonly slot: JourneySlot
  readonly actions: ReadonlyArray<Action>
  /** why no entry happened, when an entry was considered and refused */
  readonly reason?: string
}

const versionOf = (journey: Journey, enrollment: Enrollment, options: SlotOptions): Journey =>
  options.journeyOf?.(enrollment.journeyVersion) ?? journey

/**
 * Considers an entry and, on entry, runs the new enrollment to its first wait or end. `reasons`:
 * whether a refusal's reason is wanted (see entryFor).
 */
const enter = (
  journey: Journey,
  slot: JourneySlot,
  member: Member,
  input: TriggerInput,
  now: number,
  options: SlotOptions,
  actions: Array<Action>,
  reasons = true
): SlotResult => {
  const entry = entryFor(journey, slot, member, input, now, options, reasons)
  if (entry.entered === undefined) return entry.reason === undefined ? { slot: entry.slot, actions } : { slot: entry.slot, actions, reason: entry.reason }
  if (entry.replaced !== undefined) actions.push({ kind: "ended", enrollmentId: entry.replaced.id, enrollment: entry.replaced })
  actions.push({ kind: "enrolled", enrollmentId: entry.entered.id, enrollment: entry.entered })
  const run = advance(journey, entry.entered, member, now)
  actions.push(...run.actions)
  return { slot: settle(entry.slot, run.enrollment), actions }
}

/**
 * An event the member's state has already taken in: the enrollment inside hears it (goal, exit,
 * wait-for-event), the last ended one may still convert, then it may start an entry (event
 * trigger, segment edge, a same-day date entry).
 */
export const handleEvent = (journey: Journey, slot: JourneySlot, event: MemberEvent, member: Member, now: number, options: SlotOptions): SlotResult => {
  const actions: Array<Action> = []
  let next = slot
  if (next.active !== null) {
    const moved = onEvent(versionOf(journey, next.active, options), next.active, event, member, now)
    actions.push(...moved.actions)
    next = settle(next, moved.enrollment)
  }
  const last = next.last
  if (last !== null && last.converted === null) {
    const moved = onEvent(versionOf(journey, last, options), last, event, member, now)
    actions.push(...moved.actions)
    next = { ...next, last: moved.enrollment }
  }
  return enter(journey, next, member, { kind: "event", event }, now, options, actions)
}

/** Whether considering an entry on this event gives the slot back as it is: the trigger cannot fire. */
const triggerIgnores = (journey: Journey, slot: JourneySlot, event: MemberEvent, member: Member, now: number): boolean => {
  if (journey.status === "draft") return true
  const trigger = journey.trigger
  if ("event" in trigger) return event.type !== trigger.event.type
  // a segment look always records whether the member matched
  if ("segment" in trigger) return false
  if ("date" in trigger) {
    const occurrence = occurrenceToday(journey, member, now)
    return occurrence === null || now < occurrence.at || slot.dateEntered === occurrence.key
  }
  // inactivity and schedule triggers are not fired by events
  return true
}

/**
 * True when handleEvent would give the slot back as it is (the same object) with no actions:
 * nothing inside or recently out of the journey to hear the event, and a trigger the event cannot
 * fire. A caller that keeps only slots and actions may then skip the call — most events are such.
 */
export const ignoresEvent = (journey: Journey, slot: JourneySlot, event: MemberEvent, member: Member, now: number): boolean =>
  slot.active === null && (slot.last === null || slot.last.converted !== null) && triggerIgnores(journey, slot, event, member, now)

export interface HeardEvent {
  readonly slot: JourneySlot
  readonly actions: ReadonlyArray<Action>
  /**
   * handleEvent would have given a new slot equal to `slot` (it copies the slot whenever an
   * enrollment hears an event): a caller that counts a new slot as a change counts this as one.
   */
  readonly renewed: boolean
}

const hear = (journey: Journey, enrollment: Enrollment, event: MemberEvent, member: Member, now: number, actions: Array<Action>): Enrollment => {
  const moved = onEvent(journey, enrollment, event, member, now)
  for (const action of moved.actions) actions.push(action)
  return moved.enrollment
}

/**
 * handleEvent for a caller that keeps slots and actions but no reasons (the engine's run): the
 * same slot contents and actions, with the slot given back as the same object when its contents
 * did not change. Member state is long-lived, so a copy per event per journey was both work and
 * old-generation garbage.
 */
export const hearEvent = (journey: Journey, slot: JourneySlot, event: MemberEvent, member: Member, now: number, options: SlotOptions): HeardEvent => {
  const actions: Array<Action> = []
  let next = slot
  let renewed = false
  const active = next.active
  if (active !== null) {
    const version = versionOf(journey, active, options)
    const heard = passesBy(version, active, event) ? active : hear(version, active, event, member, now, actions)
    // settle would copy the slot with the same active enrollment: an equal slot
    if (heard === active && active.status === "active") renewed = true
    else next = settle(next, heard)
  }
  const last = next.last
  if (last !== null && last.converted === null) {
    const version = versionOf(journey, last, options)
    const heard = passesBy(version, last, event) ? last : hear(version, last, event, member, now, actions)
    if (heard === last) renewed = true
    else next = { ...next, last: heard }
  }
  if (triggerIgnores(journey, next, event, member, now)) return { slot: next, actions, renewed }
  const entered = enter(journey, next, member, { kind: "event", event }, now, options, actions, false)
  return { slot: entered.slot, actions: entered.actions, renewed }
}

/** A timer the engine kept for the active enrollment fired (a stale one changes nothing). */
export const handleTimer = (journey: Journey, slot: JourneySlot, due: number, member: Member, now: number, options: SlotOptions): SlotResult => {
  if (slot.active === null) return { slot, actions: [] }
  const moved = onTimer(versionOf(journey, slot.active, options), slot.active, due, member, now)
  return { slot: settle(slot, moved.enrollment), actions: moved.actions }
}

/** A scheduler call with no event: a date or inactivity check, a cron tick, or a state change. */
export const handleTrigger = (journey: Journey, slot: JourneySlot, input: Exclude<TriggerInput, { readonly kind: "event" }>, member: Member, now: number, options: SlotOptions): SlotResult =>
  enter(journey, slot, member, input, now, options, [])
