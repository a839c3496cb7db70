import type { MemberEvent } from "../../../schemas/Event.ts"
import type { Journey, Step } from "../../../schemas/Journey.ts"
import { type EvalContext, evaluate, matchesWhere } from "../../member/Conditions.ts"
import { nextLocalTime } from "./Calendar.ts"
import { emitIdOf, messageIdOf } from "./Ids.ts"
import type { Action, Enrollment, Member, Transition, WaitState } from "./Types.ts"
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
  return { now, ctx: member.ctx, enteredAt: enrollment.enteredAt, ...(triggerEvent === undefined ? {} : { triggerEvent }) }
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

/** Runs from step index `start`. */
const run = (journey: Journey, enrollment: Enrollment, member: Member, now: number, start: number, actions: Array<Action>): Transition => {
  const visits: Record<string, number> = { ...enrollment.visits }
  const current = (): Enrollment => ({ ...enrollment, visits: { ...visits } })
  const indexOf = (id: string): number => journey.steps.findIndex((s) => s.id === id)
  const ec = evalContext(enrollment, member, now)
  const eid = enrollment.id
  const record = (stepId: string, outcome: string) => actions.push({ kind: "step", enrollmentId: eid, stepId, outcome, at: now })
  let index = start
  for (let taken = 0; taken < MAX_STEPS_PER_RUN; taken++) {
    const step = journey.steps[index]
    if (step === undefined) return ended(current(), "completed", "end", now, actions)
    const visit = (visits[step.id] ?? 0) + 1
    visits[step.id] = visit
    if (step.when !== undefined && !evaluate(step.when, member.state, ec)) {
      record(step.id, "skipped")
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
      record(step.id, suppressed === null ? "queued" : "suppressed")
    } else if ("wait" in step) {
      const wait = waitOf(step, member, now)
      record(step.id, "waiting")
      actions.push({ kind: "timer", enrollmentId: eid, due: wait.due })
      return { enrollment: { ...current(), stepId: step.id, wait }, actions }
    } else if ("branch" in step) {
      const arm = step.branch.find((a) => "else" in a || evaluate(a.when, member.state, ec))
      if (arm === undefined) record(step.id, "no-match")
      else jump = arm.goto
    } else if ("split" in step) {
      jump = splitArmOf(journey.id, step.id, enrollment.memberId, step.split)?.goto
    } else if ("tag" in step) {
      actions.push({ kind: "tag", enrollmentId: eid, stepId: step.id, add: step.tag.add, remove: step.tag.remove })
      record(step.id, "tagged")
    } else if ("emit" in step) {
      const id = emitIdOf(journey.id, enrollment.journeyVersion, eid, step.id, visit)
      actions.push({ kind: "emit", enrollmentId: eid, stepId: step.id, id, type: step.emit.type, properties: step.emit.properties ?? {} })
      record(step.id, "emitted")
    } else if ("goto" in step) {
      jump = step.goto
    } else {
      record(step.id, "exit")
      return ended(current(), "completed", "exit-step", now, actions)
    }
    if (jump === undefined) {
      index += 1
      continue
    }
    record(step.id, `goto:${jump}`)
    index = indexOf(jump)
    // a step id missing from this version: the caller ran an enrollment on the wrong version
    if (index < 0) return ended(current(), "exited", `missing-step:${jump}`, now, actions)
  }
  return ended(current(), "exited", "loop-guard", now, actions)
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
export const recordGoal = (journey: Journey, enrollment: Enrollment, event: MemberEvent): Transition => {
  const goal = journey.goal
  if (goal === undefined || enrollment.converted !== null || event.type !== goal.event || event.id === enrollment.triggerEventId) {
    return { enrollment, actions: [] }
  }
  if (event.at <= enrollment.enteredAt || event.at > enrollment.enteredAt + goal.within) return { enrollment, actions: [] }
  if (goal.where !== undefined && !matchesWhere(event.properties, goal.where)) return { enrollment, actions: [] }
  const converted = { eventId: event.id, at: event.at, value: valueOf(event) }
  return {
    enrollment: { ...enrollment, converted },
    actions: [{ kind: "conversion", enrollmentId: enrollment.id, variant: enrollment.variant, ...converted }]
  }
}

/**
 * An event for a member inside the journey (or recently out of it): the goal first, then an exit
 * event ends an active enrollment at once (`exited`, reason `event:<type>`), then a matching
 * event resumes a wait-for-event at `onEvent`. The trigger event itself does none of these.
 */
export const onEvent = (journey: Journey, enrollment: Enrollment, event: MemberEvent, member: Member, now: number): Transition => {
  const goal = recordGoal(journey, enrollment, event)
  const actions: Array<Action> = [...goal.actions]
  const e = goal.enrollment
  if (e.status !== "active" || event.id === e.triggerEventId) return { enrollment: e, actions }
  const exit = journey.exit.find((x) => x.event === event.type && (x.where === undefined || matchesWhere(event.properties, x.where)))
  if (exit !== undefined) return ended(e, "exited", `event:${event.type}`, now, actions)
  const wait = e.wait
  if (wait?.kind === "event" && wait.event === event.type && (wait.where === null || matchesWhere(event.properties, wait.where))) {
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
