import { Either } from "effect"
import type { MemberEvent } from "../../schemas/Event.ts"
import type { Journey } from "../../schemas/Journey.ts"
import type { Channel } from "../../schemas/Program.ts"
import type { MemberContext, MemberState } from "../member/MemberState.ts"
import { reachable } from "./Apply.ts"
import { type Brand, templateContext } from "./Context.ts"
import { type Action, emptySlot, handleEvent, handleTimer, handleTrigger, type JourneySlot, nextEntryTime, triggerEventOf } from "./Machine.ts"
import type { Templates } from "./Templates.ts"
import { renderTemplate } from "./Templates/Render.ts"

/**
 * A dry run of one journey for one member: the path they would take and every message rendered,
 * with time fast-forwarded through each wait. Nothing is sent, stored or published.
 */

export interface SimulatedMessage {
  readonly stepId: string
  readonly channel: Channel | null
  readonly template: string
  readonly status: "would send" | "suppressed"
  readonly reason: string
  readonly subject?: string
  readonly body: string
}

export interface Simulation {
  readonly entered: boolean
  /** Why the member would not enter, when they would not. */
  readonly reason: string | null
  readonly variant: string | null
  readonly lines: ReadonlyArray<string>
  readonly messages: ReadonlyArray<SimulatedMessage>
}

const MAX_ROUNDS = 100

const iso = (ms: number) => new Date(ms).toISOString().replace(".000Z", "Z")

const render = (
  templates: Templates,
  channel: Channel,
  name: string,
  context: ReturnType<typeof templateContext>,
  ctx: MemberContext
): { readonly subject?: string; readonly body: string } => {
  const options = { escape: channel === "email", currency: ctx.program.currency, locale: context.member.locale }
  const text = (source: string) => Either.getOrElse(renderTemplate(source, context, options), (error) => `(template ${channel}/${name} fails: ${error})`)
  if (channel === "email") {
    const template = templates.email.get(name)
    return template === undefined ? { body: `(no email template ${name})` } : { subject: text(template.subject), body: text(template.html) }
  }
  if (channel === "sms") {
    const template = templates.sms.get(name)
    return { body: template === undefined ? `(no sms template ${name})` : text(template.text) }
  }
  const template = templates.wechat.get(name)
  if (template === undefined) return { body: `(no wechat template ${name})` }
  const fields = Object.entries(template.data).map(([key, value]) => `${key}: ${text(String(value))}`)
  return { body: `${template.kind} ${template.templateId}\n${fields.join("\n")}` }
}

/**
 * Simulates from a trigger: an event for event journeys (the member's latest of that type, or one
 * made up with no properties), otherwise the scheduler's call for the journey's trigger kind.
 */
export const simulate = (
  journey: Journey,
  version: string,
  state: MemberState,
  ctx: MemberContext,
  templates: Templates,
  trigger: MemberEvent | undefined,
  brand: Brand,
  start: number
): Simulation => {
  const lines: Array<string> = []
  const messages: Array<SimulatedMessage> = []
  const options = { version }
  const member = { state, ctx }
  let now = start
  const kind0 = "date" in journey.trigger ? "date" : "inactivity" in journey.trigger ? "inactivity" : "schedule" in journey.trigger ? "schedule" : null
  const kind = kind0
  // A date or inactivity journey is simulated on the day its entry next comes due.
  if (kind === "date" || kind === "inactivity") {
    const due = nextEntryTime(journey, emptySlot, member, now)
    if (due !== null && due > now) {
      lines.push(`${iso(now)}  next entry due ${iso(due)}; simulating from then`)
      now = due
    }
  }
  const first =
    kind === null
      ? handleEvent(journey, emptySlot, trigger ?? madeUp(journey, state.memberId, now), member, now, options)
      : handleTrigger(journey, emptySlot, kind === "schedule" ? { kind, tick: now } : { kind }, member, now, options)
  let slot: JourneySlot = first.slot
  if (slot.active === null && !first.actions.some((a) => a.kind === "enrolled")) {
    lines.push(`${state.memberId} would not enter ${journey.id}: ${first.reason ?? "the trigger does not match"}`)
    return { entered: false, reason: first.reason ?? "the trigger does not match", variant: null, lines, messages }
  }
  let pending: ReadonlyArray<Action> = first.actions
  let variant: string | null = null
  for (let round = 0; round < MAX_ROUNDS; round++) {
    let due: number | null = null
    for (const action of pending) {
      switch (action.kind) {
        case "enrolled":
          variant = action.enrollment.variant
          lines.push(`${iso(now)}  enters ${journey.id} (version ${version}) as variant ${action.enrollment.variant}`)
          break
        case "step":
          if (action.outcome !== "queued" && action.outcome !== "suppressed") lines.push(`${iso(action.at)}  ${action.stepId}: ${action.outcome}`)
          break
        case "send": {
          const enrollment = slot.active ?? slot.last
          const context = templateContext(state, ctx, journey, action.variant, enrollment === null ? undefined : triggerEventOf(enrollment), brand, now)
          const channel = action.suppressed === null ? reachable(state, [action.channel, ...action.fallback], journey.category === "marketing") : null
          const rendered = channel === null ? { body: "" } : render(templates, channel, action.template, context, ctx)
          const reason = action.suppressed ?? (channel === null ? "no_reachable_channel" : "")
          messages.push({ stepId: action.stepId, channel, template: action.template, status: channel === null ? "suppressed" : "would send", reason, ...rendered })
          lines.push(
            channel === null
              ? `${iso(now)}  ${action.stepId}: ${action.channel}/${action.template} suppressed (${reason})`
              : `${iso(now)}  ${action.stepId}: would send ${channel}/${action.template}${rendered.subject === undefined ? "" : ` — ${rendered.subject}`}\n${rendered.body.replace(/^/gm, "      ")}`
          )
          break
        }
        case "timer":
          due = action.due
          break
        case "tag":
          lines.push(`${iso(now)}  ${action.stepId}: tags +[${action.add.join(", ")}] -[${action.remove.join(", ")}]`)
          break
        case "emit":
          lines.push(`${iso(now)}  ${action.stepId}: would publish ${action.type} ${JSON.stringify(action.properties)}`)
          break
        case "ended":
          lines.push(`${iso(now)}  leaves ${journey.id}: ${action.enrollment.status} (${action.enrollment.exitReason ?? "end"})`)
          break
        case "conversion":
          break
      }
    }
    if (due === null || slot.active === null) break
    const wait = slot.active.wait
    lines.push(
      wait?.kind === "event"
        ? `${iso(now)}  waits for ${wait.event} until ${iso(due)}; simulated without it (the timeout path)`
        : `${iso(now)}  waits until ${iso(due)}`
    )
    now = due
    const moved = handleTimer(journey, slot, due, member, now, options)
    slot = moved.slot
    pending = moved.actions
  }
  return { entered: true, reason: null, variant, lines, messages }
}

const madeUp = (journey: Journey, memberId: string, now: number): MemberEvent => {
  const type = "event" in journey.trigger ? journey.trigger.event.type : "simulated"
  return { id: `simulated-${journey.id}-${memberId}`, type, memberId, occurredAt: new Date(now).toISOString(), at: now, properties: {}, source: "simulate" }
}
