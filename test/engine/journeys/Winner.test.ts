import { describe, expect, it } from "@effect/vitest"
import { pickWinner, twoProportionP } from "../../../engine/journeys/Winner.ts"
import type { Experiment } from "../../../schemas/Journey.ts"

const DAY = 86_400_000
const experiment: Experiment = {
  control: 20,
  variants: [
    { id: "gift", weight: 50 },
    { id: "points", weight: 50 }
  ],
  winner: { after: 21 * DAY, minPerVariant: 500 }
}
const START = Date.parse("2026-05-01T00:00:00Z")
const LATER = START + 22 * DAY

const arms = (gift: [number, number], points: [number, number], giftP: number | null, giftLift: number | null) => [
  { variant: "control", enrolled: 500, converted: 40, pValue: null, lift: null },
  { variant: "gift", enrolled: gift[0], converted: gift[1], pValue: giftP, lift: giftLift },
  { variant: "points", enrolled: points[0], converted: points[1], pValue: 0.4, lift: 0.05 }
]

describe("experiment winner promotion", () => {
  it("promotes the variant that beats control and every other variant significantly, after the wait", () => {
    expect(pickWinner(experiment, arms([1000, 150], [1000, 85], 0.001, 0.87), START, LATER)).toMatchObject({ kind: "winner", variant: "gift" })
  })

  it("waits until the experiment has run `after`", () => {
    expect(pickWinner(experiment, arms([1000, 150], [1000, 85], 0.001, 0.87), START, START + 20 * DAY).kind).toBe("wait")
  })

  it("waits for minPerVariant members in every variant", () => {
    expect(pickWinner(experiment, arms([1000, 150], [400, 30], 0.001, 0.87), START, LATER)).toEqual({ kind: "wait", reason: "fewer than 500 members in points" })
  })

  it("keeps the split when the best variant does not beat control, or another variant, significantly", () => {
    expect(pickWinner(experiment, arms([1000, 150], [1000, 85], 0.2, 0.87), START, LATER).kind).toBe("wait")
    // gift 10.0% vs points 9.5%: no clear difference between them
    expect(pickWinner(experiment, arms([1000, 100], [1000, 95], 0.01, 0.25), START, LATER)).toEqual({ kind: "wait", reason: "gift does not beat points significantly yet" })
  })

  it("the two-proportion test agrees with a hand computation", () => {
    // 150/1000 vs 85/1000: pooled 0.1175, z = 0.065 / sqrt(0.1175·0.8825·0.002) = 4.5204…, p ≈ 6.2e-6
    const p = twoProportionP(150, 1000, 85, 1000)
    expect(p).not.toBeNull()
    expect(p as number).toBeGreaterThan(5e-6)
    expect(p as number).toBeLessThan(7e-6)
    expect(twoProportionP(0, 10, 0, 10)).toBeNull()
  })
})
