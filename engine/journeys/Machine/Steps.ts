import type { MemberEvent } from "../../../schemas/Event.ts"
import type { Journey, Step } from "../../../schemas/Journey.ts"
import { type EvalContext, evaluate, matchesWhere } from "../../member/Conditions.ts"
import { nextLocalTime } from "./Calendar.ts"
import { emitIdOf, messageIdOf } from "./Ids.ts"
import type { Action, Conversion, Enrollment, Member, Transition, WaitState } from "./Types.ts"
import { triggerEventOf } from "./Types.ts"
import { CONTROL, splitArmOf } from "./Variants.ts"

/**
 * Running an enrollment's steps: from its current step until a wait, the end or an exit. Each step
 * taken is a `step` action (a journey_steps row) with an outcome: `queued` / `suppressed` (send),
 * `waiting` then `elapsed` / `event` / `timeout` (wait), `goto:<id>` (branch, split, goto),
 * `no-match` (a branch with no arm taken falls through), `tagged`, `emitted`, `exit`, `skipped`
 * (its `when` was false).
 */

/** Validation forbids loops without a wait; this bounds a run anyway (the enrollment exits `loop-guard`). */
export const MAX_STEPS_PER_RUN = 200

const evalContext = (enrollment: Enrollment, member: Member, now: number): EvalContext => {
  const triggerEvent = triggerEventOf(enrollment)
  const ctx = member.ctx
  const enteredAt = enrollment.enteredAt
  const figures = member.figures
  if (triggerEvent === undefined) return figures === undefined ? { now, ctx, enteredAt } : { now, ctx, enteredAt, figures }
  return figures === undefined ? { now, ctx, enteredAt, triggerEvent } : { now, ctx, enteredAt, triggerEvent, figures }
}

const ended = (enrollment: Enrollment, status: "completed" | "exited", reason: string, now: number, actions: Array<Action>): Transition => {
  const done: Enrollment = { ...enrollment, status, exitedAt: now, exitReason: reason, stepId: null, wait: null }
  actions.push({ kind: "ended", enrollmentId: done.id, enrollment: done })
  return { enrollment: done, actions }
}

const waitOf = (step: Extract<Step, { readonly wait: unknown }>, member: Member, now: number): WaitState => {
  const wait = step.wait
  if (typeof wait === "number") return { kind: "timer", stepId: step.id, due: now + wait }
  if ("until" in wait) return { kind: "timer", stepId: step.id, due: nextLocalTime(member, wait.until, now) }
  return {
    kind: "event",
    stepId: step.id,
    event: wait.event,
    where: wait.where ?? null,
    due: now + wait.timeout,
    onEvent: wait.onEvent,
    onTimeout: wait.onTimeout
  }
}

const record = (actions: Array<Action>, enrollmentId: string, stepId: string, outcome: string, now: number): void => {
  actions.push({ kind: "step", enrollmentId, stepId, outcome, at: now })
}

/** The enrollment as it stands after the steps taken: its visits so far. */
const withVisits = (enrollment: Enrollment, visits: Readonly<Record<string, number>>): Enrollment => ({ ...enrollment, visits: { ...visits } })

const indexOf = (journey: Journey, id: string): number => journey.steps.findIndex((s) => s.id === id)

/** Runs from step index `start`. */
const run = (journey: Journey, enrollment: Enrollment, member: Member, now: number, start: number, actions: Array<Action>): Transition => {
  const visits: Record<string, number> = { ...enrollment.visits }
  // made when a condition is first evaluated: most runs (a send, then a wait) evaluate none
  let ec: EvalContext | undefined
  const eid = enrollment.id
  let index = start
  for (let taken = 0; taken < MAX_STEPS_PER_RUN; taken++) {
    const step = journey.steps[index]
    if (step === undefined) return ended(withVisits(enrollment, visits), "completed", "end", now, actions)
    const visit = (visits[step.id] ?? 0) + 1
    visits[step.id] = visit
    if (step.when !== undefined && !evaluate(step.when, member.state, (ec ??= evalContext(enrollment, member, now)))) {
      record(actions, eid, step.id, "skipped", now)
      index += 1
      continue
    }
    let jump: string | undefined
    if ("send" in step) {
      const suppressed = enrollment.variant === CONTROL ? CONTROL : null
      actions.push({
        kind: "send",
        enrollmentId: eid,
        messageId: messageIdOf(journey.id, enrollment.journeyVersion, eid, step.id, visit),
        stepId: step.id,
        channel: step.send.channel,
        fallback: step.send.fallback,
        template: step.send.variant?.[enrollment.variant]?.template ?? step.send.template,
        variant: enrollment.variant,
        suppressed
      })
      record(actions, eid, step.id, suppressed === null ? "queued" : "suppressed", now)
    } else if ("wait" in step) {
      const wait = waitOf(step, member, now)
      record(actions, eid, step.id, "waiting", now)
      actions.push({ kind: "timer", enrollmentId: eid, due: wait.due })
      return { enrollment: { ...withVisits(enrollment, visits), stepId: step.id, wait }, actions }
    } else if ("branch" in step) {
      let arm: (typeof step.branch)[number] | undefined
      for (const a of step.branch) {
        if ("else" in a || evaluate(a.when, member.state, (ec ??= evalContext(enrollment, member, now)))) {
          arm = a
          break
        }
      }
      if (arm === undefined) record(actions, eid, step.id, "no-match", now)
      else jump = arm.goto
    } else if ("split" in step) {
      jump = splitArmOf(journey.id, step.id, enrollment.memberId, step.split)?.goto
    } else if ("tag" in step) {
      actions.push({ kind: "tag", enrollmentId: eid, stepId: step.id, add: step.tag.add, remove: step.tag.remove })
      record(actions, eid, step.id, "tagged", now)
    } else if ("emit" in step) {
      const id = emitIdOf(journey.id, enrollment.journeyVersion, eid, step.id, visit)
      actions.push({ kind: "emit", enrollmentId: eid, stepId: step.id, id, type: step.emit.type, properties: step.emit.properties ?? {} })
      record(actions, eid, step.id, "emitted", now)
    } else if ("goto" in step) {
      jump = step.goto
    } else {
      record(actions, eid, step.id, "exit", now)
      return ended(withVisits(enrollment, visits), "completed", "exit-step", now, actions)
    }
    if (jump === undefined) {
      index += 1
      continue
    }
    record(actions, eid, step.id, `goto:${jump}`, now)
    index = indexOf(journey, jump)
    // a step id missing from this version: the caller ran an enrollment on the wrong version
    if (index < 0) return ended(withVisits(enrollment, visits), "exited", `missing-step:${jump}`, now, actions)
  }
  return ended(withVisits(enrollment, visits), "exited", "loop-guard", now, actions)
}

const startAt = (journey: Journey, enrollment: Enrollment, member: Member, now: number, stepId: string, actions: Array<Action>): Transition => {
  const index = journey.steps.findIndex((s) => s.id === stepId)
  if (index < 0) return ended(enrollment, "exited", `missing-step:${stepId}`, now, actions)
  return run(journey, { ...enrollment, stepId, wait: null }, member, now, index, actions)
}

/**
 * Runs an active enrollment that is not waiting, from its current step (a new entry: the first).
 * A waiting or ended enrollment is returned unchanged.
 */
export const advance = (journey: Journey, enrollment: Enrollment, member: Member, now: number): Transition => {
  if (enrollment.status !== "active" || enrollment.wait !== null || enrollment.stepId === null) return { enrollment, actions: [] }
  return startAt(journey, enrollment, member, now, enrollment.stepId, [])
}

/** `value` of a conversion: a purchase's amount, else 0. */
const valueOf = (event: MemberEvent): number => {
  const amount = event.properties["amount"]
  return event.type === "purchase" && typeof amount === "number" && Number.isFinite(amount) ? amount : 0
}

/**
 * The goal, once per enrollment, for any status (control included, and after the enrollment
 * ended): an event of the goal's type and `where`, other than the trigger event, whose event time
 * is after entry and at most `within` after it.
 */
/** The conversion an event makes for an enrollment, or null (most events make none). */
const conversionOf = (journey: Journey, enrollment: Enrollment, event: MemberEvent): Conversion | null => {
  const goal = journey.goal
  if (goal === undefined || enrollment.converted !== null || event.type !== goal.event || event.id === enrollment.triggerEventId) return null
  if (event.at <= enrollment.enteredAt || event.at > enrollment.enteredAt + goal.within) return null
  if (goal.where !== undefined && !matchesWhere(event.properties, goal.where)) return null
  return { eventId: event.id, at: event.at, value: valueOf(event) }
}

export const recordGoal = (journey: Journey, enrollment: Enrollment, event: MemberEvent): Transition => {
  const converted = conversionOf(journey, enrollment, event)
  if (converted === null) return { enrollment, actions: [] }
  return {
    enrollment: { ...enrollment, converted },
    actions: [{ kind: "conversion", enrollmentId: enrollment.id, variant: enrollment.variant, ...converted }]
  }
}

const exitsOn = (journey: Journey, event: MemberEvent): boolean => {
  for (const x of journey.exit) if (x.event === event.type && (x.where === undefined || matchesWhere(event.properties, x.where))) return true
  return false
}

const resumesOn = (wait: Extract<WaitState, { readonly kind: "event" }>, event: MemberEvent): boolean =>
  wait.event === event.type && (wait.where === null || matchesWhere(event.properties, wait.where))

/**
 * Whether onEvent would give the enrollment back as it is, with no actions: no goal reached, and
 * (when active, and not its trigger event) no exit and no wait ended. Most events are such.
 */
export const passesBy = (journey: Journey, enrollment: Enrollment, event: MemberEvent): boolean => {
  if (conversionOf(journey, enrollment, event) !== null) return false
  if (enrollment.status !== "active" || event.id === enrollment.triggerEventId) return true
  if (exitsOn(journey, event)) return false
  const wait = enrollment.wait
  return !(wait?.kind === "event" && resumesOn(wait, event))
}

/**
 * An event for a member inside the journey (or recently out of it): the goal first, then an exit
 * event ends an active enrollment at once (`exited`, reason `event:<type>`), then a matching
 * event resumes a wait-for-event at `onEvent`. The trigger event itself does none of these.
 */
export const onEvent = (journey: Journey, enrollment: Enrollment, event: MemberEvent, member: Member, now: number): Transition => {
  // recordGoal inline: no transition is made for the usual event that converts nothing.
  const converted = conversionOf(journey, enrollment, event)
  const actions: Array<Action> = []
  let e = enrollment
  if (converted !== null) {
    e = { ...enrollment, converted }
    actions.push({ kind: "conversion", enrollmentId: enrollment.id, variant: enrollment.variant, ...converted })
  }
  if (e.status !== "active" || event.id === e.triggerEventId) return { enrollment: e, actions }
  if (exitsOn(journey, event)) return ended(e, "exited", `event:${event.type}`, now, actions)
  const wait = e.wait
  if (wait?.kind === "event" && resumesOn(wait, event)) {
    actions.push({ kind: "step", enrollmentId: e.id, stepId: wait.stepId, outcome: "event", at: now })
    return startAt(journey, e, member, now, wait.onEvent, actions)
  }
  return { enrollment: e, actions }
}

/**
 * A timer fired: when it is the enrollment's current wait and due ≤ now, a duration (or `until`)
 * wait continues with the next step and a wait-for-event goes to `onTimeout`. Any other timer is
 * stale (the enrollment moved on or ended) and changes nothing.
 */
export const onTimer = (journey: Journey, enrollment: Enrollment, due: number, member: Member, now: number): Transition => {
  const wait = enrollment.wait
  if (enrollment.status !== "active" || wait === null || wait.due !== due || due > now) return { enrollment, actions: [] }
  const actions: Array<Action> = []
  if (wait.kind === "event") {
    actions.push({ kind: "step", enrollmentId: enrollment.id, stepId: wait.stepId, outcome: "timeout", at: now })
    return startAt(journey, enrollment, member, now, wait.onTimeout, actions)
  }
  actions.push({ kind: "step", enrollmentId: enrollment.id, stepId: wait.stepId, outcome: "elapsed", at: now })
  const index = journey.steps.findIndex((s) => s.id === wait.stepId)
  if (index < 0) return ended(enrollment, "exited", `missing-step:${wait.stepId}`, now, actions)
  return run(journey, { ...enrollment, wait: null }, member, now, index + 1, actions)
}
