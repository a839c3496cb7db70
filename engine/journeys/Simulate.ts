import { Either } from "effect"
import type { MemberEvent } from "../../schemas/Event.ts"
import type { Journey } from "../../schemas/Journey.ts"
import type { Channel } from "../../schemas/Program.ts"
import type { MemberContext, MemberState } from "../member/MemberState.ts"
import type { OutgoingMessage } from "../../channels/Channel.ts"
import { copyOf } from "../member/MemberState.ts"
import { type JourneySet, sendStep } from "./Apply.ts"
import type { Brand } from "./Context.ts"
import { type Action, emptySlot, handleEvent, handleTimer, handleTrigger, type JourneySlot, nextEntryTime, triggerEventOf } from "./Machine.ts"
import type { Templates } from "./Templates.ts"

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

/** What a person reads of a rendered message. */
const shown = (message: OutgoingMessage): { readonly subject?: string; readonly body: string } => {
  switch (message.channel) {
    case "email":
      return { subject: message.subject, body: message.text }
    case "sms":
      return { body: message.body }
    case "wechat":
      return { body: `${message.kind} ${message.templateId}\n${Object.entries(message.data).map(([key, value]) => `${key}: ${value}`).join("\n")}` }
  }
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
          // The engine's own decision (consent, caps, quiet hours, rendering) on a copy of the member.
          const enrollment = slot.active ?? slot.last
          const set: JourneySet = { current: [], versions: new Map(), templates, brand, winners: new Map() }
          const copy = copyOf(state)
          const { row, request } = sendStep(copy, journey, action, ctx, set, enrollment === null ? undefined : triggerEventOf(enrollment), now)
          const message = request?.messages[0]
          if (message === undefined) {
            messages.push({ stepId: action.stepId, channel: null, template: action.template, status: "suppressed", reason: row.reason, body: "" })
            lines.push(`${iso(now)}  ${action.stepId}: ${action.channel}/${action.template} ${row.status} (${row.reason})`)
            break
          }
          const rendered = shown(message)
          const deferred = request?.notBefore == null ? "" : ` (quiet hours: deferred to ${iso(request.notBefore)})`
          messages.push({ stepId: action.stepId, channel: message.channel, template: action.template, status: "would send", reason: row.reason, ...rendered })
          lines.push(
            `${iso(now)}  ${action.stepId}: would send ${message.channel}/${action.template}${deferred}${rendered.subject === undefined ? "" : ` — ${rendered.subject}`}\n${rendered.body.replace(/^/gm, "      ")}`
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
