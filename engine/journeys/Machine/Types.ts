import type { Channel } from "../../../schemas/Program.ts"
import type { MemberEvent } from "../../../schemas/Event.ts"
import type { MemberContext, MemberState } from "../../member/MemberState.ts"
import type { OrderFigures } from "../../member/MemberState/Reads.ts"

/**
 * The runtime's plain data. Everything here is JSON (no Map, Set, Date or undefined values), since
 * it lives in the member's KV state under `journeys[journeyId]`.
 */

export interface Member {
  /** The state after the event being handled was applied. */
  readonly state: MemberState
  readonly ctx: MemberContext
  /**
   * orderFigures of `state` at the `now` of the run, for a caller whose run changes no order (the
   * engine's): conditions on spend then read them instead of summing the orders each time.
   */
  readonly figures?: () => OrderFigures
}

/** The event that started an enrollment, kept so `event.<property>` conditions read it after a wait. */
export interface TriggerEventRef {
  readonly id: string
  readonly type: string
  readonly at: number
  readonly occurredAt: string
  readonly properties: Readonly<Record<string, unknown>>
}

/** Where an enrollment is parked. `due` is epoch ms: the engine keeps a timer for it. */
export type WaitState =
  | { readonly kind: "timer"; readonly stepId: string; readonly due: number }
  | {
    readonly kind: "event"
    readonly stepId: string
    readonly event: string
    readonly where: Readonly<Record<string, unknown>> | null
    /** the timeout */
    readonly due: number
    readonly onEvent: string
    readonly onTimeout: string
  }

export interface Conversion {
  readonly eventId: string
  readonly at: number
  readonly value: number
}

export type EnrollmentStatus = "active" | "completed" | "exited"

export interface Enrollment {
  /** enrollmentIdOf(journey id, member id, entryKey) */
  readonly id: string
  readonly journeyId: string
  /** The version it entered on; it runs on that version to the end. */
  readonly journeyVersion: string
  readonly memberId: string
  /** `control` for the holdout, DEFAULT_VARIANT without an experiment. */
  readonly variant: string
  readonly entryKey: string
  readonly enteredAt: number
  readonly triggerEventId: string | null
  readonly trigger: TriggerEventRef | null
  /** The step to run next, or the step it waits in; null once ended. */
  readonly stepId: string | null
  readonly status: EnrollmentStatus
  readonly exitedAt: number | null
  /** `end` (fell off the last step), `exit-step`, `event:<type>` (an exit event), `reentered`, `loop-guard`, `missing-step:<id>` */
  readonly exitReason: string | null
  readonly wait: WaitState | null
  /** How often each step ran: the visit number makes message and emit ids unique when a goto loops. */
  readonly visits: Readonly<Record<string, number>>
  /** The goal reached, once. */
  readonly converted: Conversion | null
}

/**
 * Per member and journey: the enrollment in progress and what re-entry and re-arming need.
 */
export interface JourneySlot {
  readonly active: Enrollment | null
  /** The latest ended enrollment: its goal window may still be open. */
  readonly last: Enrollment | null
  readonly entries: number
  readonly lastEntryAt: number | null
  readonly lastExitAt: number | null
  /** segment trigger: whether the member matched the condition at the last look (entry is on the rising edge). */
  readonly segmentMatched: boolean
  /** inactivity trigger: the time of the event whose lapse was used (a later such event re-arms). */
  readonly lapseUsed: number | null
  /** date trigger: the member-local date (YYYY-MM-DD) of the last date entry. */
  readonly dateEntered: string | null
  /** date trigger: the member-local date whose scheduled tick was looked at (so the scheduler moves on). */
  readonly dateChecked: string | null
  /** schedule trigger: the last cron tick looked at. */
  readonly lastTick: number | null
}

export const emptySlot: JourneySlot = {
  active: null,
  last: null,
  entries: 0,
  lastEntryAt: null,
  lastExitAt: null,
  segmentMatched: false,
  lapseUsed: null,
  dateEntered: null,
  dateChecked: null,
  lastTick: null
}

/** What the engine does after a transition. Every action names its enrollment. */
export type Action =
  /** a journey_steps row */
  | { readonly kind: "step"; readonly enrollmentId: string; readonly stepId: string; readonly outcome: string; readonly at: number }
  /** a message to send (or, for control, to record as suppressed) */
  | {
    readonly kind: "send"
    readonly enrollmentId: string
    readonly messageId: string
    readonly stepId: string
    readonly channel: Channel
    readonly fallback: ReadonlyArray<Channel>
    /** the variant's template when it overrides the step's */
    readonly template: string
    readonly variant: string
    readonly suppressed: "control" | null
  }
  /** call onTimer(…, due) at `due` */
  | { readonly kind: "timer"; readonly enrollmentId: string; readonly due: number }
  | { readonly kind: "tag"; readonly enrollmentId: string; readonly stepId: string; readonly add: ReadonlyArray<string>; readonly remove: ReadonlyArray<string> }
  | {
    readonly kind: "emit"
    readonly enrollmentId: string
    readonly stepId: string
    readonly id: string
    readonly type: string
    readonly properties: Readonly<Record<string, unknown>>
  }
  /** a conversions row */
  | { readonly kind: "conversion"; readonly enrollmentId: string; readonly variant: string; readonly eventId: string; readonly value: number; readonly at: number }
  /** a new journey_enrollments row */
  | { readonly kind: "enrolled"; readonly enrollmentId: string; readonly enrollment: Enrollment }
  /** the journey_enrollments row's final state */
  | { readonly kind: "ended"; readonly enrollmentId: string; readonly enrollment: Enrollment }

export interface Transition {
  readonly enrollment: Enrollment
  readonly actions: ReadonlyArray<Action>
}

/** The trigger event as Conditions.ts reads it. */
export const triggerEventOf = (enrollment: Enrollment): MemberEvent | undefined =>
  enrollment.trigger === null
    ? undefined
    : { ...enrollment.trigger, memberId: enrollment.memberId, source: undefined }

/** The slot after an enrollment moved: an ended one leaves `active` for `last`. */
export const settle = (slot: JourneySlot, enrollment: Enrollment): JourneySlot => {
  if (enrollment.status === "active") return { ...slot, active: enrollment }
  const wasActive = slot.active?.id === enrollment.id
  return {
    ...slot,
    active: wasActive ? null : slot.active,
    last: enrollment,
    lastExitAt: enrollment.exitedAt ?? slot.lastExitAt
  }
}
