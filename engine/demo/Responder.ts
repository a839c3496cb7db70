import type { Journey } from "../../schemas/Journey.ts"
import { CONTROL } from "../journeys/Machine.ts"
import type { DemoEvent } from "./SyntheticBrand.ts"
import { hashString } from "./SyntheticBrand/People.ts"

/**
 * The demo's members answering their journeys: in each journey with a goal, a share of the
 * members of each arm reaches the goal a few demo-days after entry, and that share depends on the
 * arm — control converts least, the first variant most — so the lift table at the end has a real
 * difference to find (and, where few members entered, the honest "no clear difference").
 *
 * Who answers is deterministic and evenly spread: the n-th member of an arm answers when
 * ⌊(n+1)·rate + φ⌋ > ⌊n·rate + φ⌋ (φ a hash of the seed and arm), so an arm's share is its rate
 * within one member, rather than a coin flip per member whose noise would swamp the difference in
 * a demo-sized brand.
 */

/** Conversion rates by arm: the holdout, the experiment's variants in file order, a journey without one. */
export const RATES = { control: 0.04, variants: [0.12, 0.08], laterVariants: 0.07, noExperiment: 0.1 } as const

export interface GoalPlan {
  readonly journeyId: string
  readonly goalEvent: string
  readonly withinMs: number
  /** the experiment's variant ids in file order; empty without an experiment */
  readonly variants: ReadonlyArray<string>
}

export const goalPlanOf = (journey: Journey): GoalPlan | null =>
  journey.goal === undefined
    ? null
    : {
      journeyId: journey.id,
      goalEvent: journey.goal.event,
      withinMs: journey.goal.within,
      variants: journey.experiment?.variants.map((v) => v.id) ?? []
    }

export const rateOf = (plan: GoalPlan, variant: string): number => {
  if (variant === CONTROL) return RATES.control
  const index = plan.variants.indexOf(variant)
  if (index < 0) return RATES.noExperiment
  return RATES.variants[index] ?? RATES.laterVariants
}

/** An enrollment as the demo reads it from journey_enrollments. */
export interface Enrolled {
  readonly enrollmentId: string
  readonly journeyId: string
  readonly memberId: string
  readonly variant: string
  readonly enteredAt: number
}

export interface Response {
  /** when to publish it: its own event time (never before the engine could have entered them) */
  readonly at: number
  readonly event: DemoEvent
}

/** A number in [0, 1) from the parts: the same enrollment always gets the same answer. */
const unit = (...parts: ReadonlyArray<string>): number => hashString(parts.join("\u001f")) / 4294967296

/**
 * Whether and how the `ordinal`-th member (from 0) of an arm answers: null for those who do not;
 * else the goal event (a purchase; for a tier goal, a purchase big enough to reach the next tier),
 * dated inside the goal window.
 */
export const respond = (seed: string, plan: GoalPlan, enrolled: Enrolled, ordinal: number, dayMs: number, currency: string): Response | null => {
  const rate = rateOf(plan, enrolled.variant)
  const phase = unit(seed, "phase", plan.journeyId, enrolled.variant)
  if (Math.floor((ordinal + 1) * rate + phase) <= Math.floor(ordinal * rate + phase)) return null
  const delay = Math.min(plan.withinMs * 0.5, dayMs * (0.5 + 3.5 * unit(seed, "delay", enrolled.enrollmentId)))
  const at = enrolled.enteredAt + Math.max(200, Math.round(delay))
  const size = unit(seed, "amount", enrolled.enrollmentId)
  const base = { id: `${enrolled.enrollmentId}-goal`, memberId: enrolled.memberId, occurredAt: new Date(at).toISOString() }
  const purchase = (amount: number): DemoEvent => ({
    ...base,
    type: "purchase",
    properties: { orderId: `${enrolled.enrollmentId}-order`, amount, currency, channel: size < 0.5 ? "online" : "store" }
  })
  // tier.changed is the engine's to publish: the member's purchase is what earns it
  if (plan.goalEvent === "tier.changed") return { at, event: purchase(3000 + Math.round(size * 2000)) }
  if (plan.goalEvent === "purchase") return { at, event: purchase(200 + Math.round(size * 2800)) }
  return { at, event: { ...base, type: plan.goalEvent, properties: {} } }
}
