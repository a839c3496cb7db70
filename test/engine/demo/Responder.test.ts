import { describe, expect, it } from "@effect/vitest"
import { type GoalPlan, RATES, rateOf, respond } from "../../../engine/demo/Responder.ts"

const DAY_MS = 1000
const birthday: GoalPlan = { journeyId: "birthday-reward", goalEvent: "purchase", withinMs: 14_000, variants: ["points", "gift"] }
const nudge: GoalPlan = { journeyId: "tier-upgrade-nudge", goalEvent: "tier.changed", withinMs: 30_000, variants: [] }

const enrolments = (plan: GoalPlan, variant: string, count: number) =>
  Array.from({ length: count }, (_, i) => ({ enrollmentId: `e-${plan.journeyId}-${variant}-${i}`, journeyId: plan.journeyId, memberId: `m${i}`, variant, enteredAt: 1_000_000 + i }))

describe("the demo's members answering their journeys", () => {
  it("the first variant truly works best and control least; a journey without an experiment has one rate", () => {
    expect(rateOf(birthday, "control")).toBe(RATES.control)
    expect(rateOf(birthday, "points")).toBe(RATES.variants[0])
    expect(rateOf(birthday, "gift")).toBe(RATES.variants[1])
    expect(rateOf(nudge, "default")).toBe(RATES.noExperiment)
    expect(RATES.variants[0]).toBeGreaterThan(RATES.variants[1])
    expect(RATES.variants[1]).toBeGreaterThan(RATES.control)
  })

  it("each arm's share of answers is its rate within one member, at any size, and the same enrollment always answers the same way", () => {
    for (const [variant, rate] of [["control", RATES.control], ["points", RATES.variants[0]], ["gift", RATES.variants[1]]] as const) {
      for (const size of [7, 25, 126, 748, 5_000]) {
        const answers = enrolments(birthday, variant, size).map((e, i) => respond("seed", birthday, e, i, DAY_MS, "CNY"))
        const answered = answers.filter((a) => a !== null).length
        expect(Math.abs(answered - size * rate)).toBeLessThanOrEqual(1)
      }
      const answers = enrolments(birthday, variant, 300).map((e, i) => respond("seed", birthday, e, i, DAY_MS, "CNY"))
      const again = enrolments(birthday, variant, 300).map((e, i) => respond("seed", birthday, e, i, DAY_MS, "CNY"))
      expect(again).toEqual(answers)
    }
  })

  it("an answer is the goal event, dated a few demo-days after entry and inside the goal window", () => {
    const answers = enrolments(birthday, "points", 5_000).flatMap((e, i) => {
      const r = respond("seed", birthday, e, i, DAY_MS, "CNY")
      return r === null ? [] : [{ e, r }]
    })
    expect(answers.length).toBeGreaterThan(300)
    for (const { e, r } of answers) {
      expect(r.event.type).toBe("purchase")
      expect(r.event.memberId).toBe(e.memberId)
      expect(r.at).toBe(Date.parse(r.event.occurredAt))
      expect(r.at - e.enteredAt).toBeGreaterThanOrEqual(0.5 * DAY_MS)
      expect(r.at - e.enteredAt).toBeLessThanOrEqual(Math.min(4 * DAY_MS, birthday.withinMs / 2))
      expect(r.event.properties).toMatchObject({ orderId: `${e.enrollmentId}-order`, currency: "CNY" })
      expect(Number(r.event.properties["amount"])).toBeGreaterThanOrEqual(200)
    }
  })

  it("for a tier goal the member buys enough to reach the next tier (the nudge's audience is within ¥3,000)", () => {
    const answers = enrolments(nudge, "default", 2_000).flatMap((e, i) => {
      const r = respond("seed", nudge, e, i, DAY_MS, "CNY")
      return r === null ? [] : [r]
    })
    expect(answers.length).toBeGreaterThan(100)
    expect(answers.every((r) => r.event.type === "purchase" && Number(r.event.properties["amount"]) >= 3000)).toBe(true)
  })
})
