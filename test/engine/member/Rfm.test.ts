import { describe, expect, it } from "vitest"
import { applyEvents, emptyState, type MemberContext, refresh } from "../../../engine/member/MemberState.ts"
import { fixedCutpoints, quintileCutpoints, type RfmCutpoints, score, segmentOf } from "../../../engine/member/Rfm.ts"
import { ctx, DAY, NOW, program, programWith, purchase } from "./fixtures.ts"

/** A seeded generator so the population is the same on every run. */
const lcg = (seed: number) => () => {
  seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0
  return seed / 2 ** 32
}

/** Independent reference: rank with ties at their lowest rank, then 1 + floor(5·(rank−1)/n). */
const rankScores = (values: ReadonlyArray<number>): Array<number> => {
  const sorted = [...values].sort((a, b) => a - b)
  const firstRank = new Map<number, number>()
  sorted.forEach((v, i) => {
    if (!firstRank.has(v)) firstRank.set(v, i + 1)
  })
  return values.map((v) => 1 + Math.floor((5 * ((firstRank.get(v) ?? 1) - 1)) / values.length))
}

describe("quintile scores", () => {
  const random = lcg(42)
  const populations: Record<string, ReadonlyArray<number>> = {
    "continuous spend": Array.from({ length: 10_000 }, () => Math.round(random() * 50_000 * 100) / 100),
    "purchase counts with many ties": Array.from({ length: 10_000 }, () => 1 + Math.floor(-Math.log(1 - random()) * 2)),
    "mostly one value": Array.from({ length: 10_000 }, (_, i) => (i % 10 === 0 ? i : 1)),
    "an awkward size": Array.from({ length: 9_997 }, () => Math.floor(random() * 40))
  }

  for (const [name, values] of Object.entries(populations)) {
    it(`over 10,000 members (${name}) match a rank-based computation, ties ranked first`, () => {
      const cut = quintileCutpoints(values)
      expect(values.map((v) => score(v, cut))).toEqual(rankScores(values))
    })
  }

  it("split a population without ties into five equal fifths", () => {
    const values = Array.from({ length: 10_000 }, (_, i) => i)
    const cut = quintileCutpoints(values)
    const counts = [0, 0, 0, 0, 0]
    for (const v of values) counts[score(v, cut) - 1] = (counts[score(v, cut) - 1] ?? 0) + 1
    expect(counts).toEqual([2000, 2000, 2000, 2000, 2000])
  })

  it("rank recency with the most recent fifth scoring 5", () => {
    const lastPurchases = Array.from({ length: 100 }, (_, i) => NOW - i * DAY)
    const cut = quintileCutpoints(lastPurchases)
    expect(score(NOW, cut)).toBe(5)
    expect(score(NOW - 99 * DAY, cut)).toBe(1)
  })
})

describe("fixed cut points", () => {
  const cut = fixedCutpoints(program, NOW)
  const daysAgo = (days: number) => score(NOW - days * DAY, cut?.r ?? [0, 0, 0, 0])

  it("R is 5 minus the recencyDays the days since the last purchase exceed", () => {
    expect([0, 30, 30.001, 90, 91, 180, 181, 365, 366].map(daysAgo)).toEqual([5, 5, 4, 4, 3, 3, 2, 2, 1])
  })

  it("F and M are 1 plus the cut points the value exceeds", () => {
    expect([1, 2, 3, 4, 8, 9].map((f) => score(f, cut?.f ?? [0, 0, 0, 0]))).toEqual([1, 2, 3, 3, 4, 5])
    expect([100, 500, 501, 20000, 20001].map((m) => score(m, cut?.m ?? [0, 0, 0, 0]))).toEqual([1, 1, 2, 4, 5])
  })
})

describe("the RFM segment", () => {
  it("follows the R×F map and is prospect with no purchase", () => {
    expect(segmentOf(5, 1)).toBe("new_customers")
    expect(segmentOf(5, 5)).toBe("champions")
    expect(segmentOf(4, 1)).toBe("promising")
    expect(segmentOf(3, 3)).toBe("need_attention")
    expect(segmentOf(2, 5)).toBe("cant_lose_them")
    expect(segmentOf(1, 3)).toBe("at_risk")
    expect(segmentOf(0, 0)).toBe("prospect")
  })

  it("is announced with rfm.changed when it moves, and R decays as time passes", () => {
    const first = applyEvents(emptyState("m-1"), [purchase("A", 600, NOW - DAY)], ctx, NOW)
    expect(first.state.rfm).toMatchObject({ r: 5, f: 1, m: 2, segment: "new_customers" })
    expect(first.derived.filter((e) => e.type === "rfm.changed").map((e) => e.properties)).toEqual([
      { from: "prospect", to: "new_customers" }
    ])
    expect(refresh(first.state, ctx, NOW + DAY).changed).toBe(false)
    const later = refresh(first.state, ctx, NOW + 60 * DAY)
    expect(later.state.rfm).toMatchObject({ r: 4, segment: "promising" })
    expect(later.state.version).toBe(first.state.version + 1)
    expect(later.derived.map((e) => e.properties)).toEqual([{ from: "new_customers", to: "promising" }])
    const lapsed = refresh(later.state, ctx, NOW + 400 * DAY)
    expect(lapsed.state.rfm).toMatchObject({ r: 0, f: 0, m: 0, segment: "prospect" })
  })

  it("waits, unscored and unannounced, until the population quintiles exist", () => {
    const quintiles = programWith({ rfm: { window: "365d", scores: "quintiles" } })
    const none: MemberContext = { program: quintiles, cutpoints: null }
    const first = applyEvents(emptyState("m-1"), [purchase("A", 600, NOW - DAY)], none, NOW)
    expect(first.state.rfm).toMatchObject({ r: 0, f: 0, m: 0, segment: "unscored" })
    expect(first.derived.filter((e) => e.type === "rfm.changed")).toEqual([])

    const cutpoints: RfmCutpoints = { version: "v1", r: [NOW - 90 * DAY, NOW - 30 * DAY, NOW - 7 * DAY, NOW - 2 * DAY], f: [1, 1, 2, 3], m: [100, 300, 800, 2000] }
    const scored = refresh(first.state, { program: quintiles, cutpoints }, NOW)
    expect(scored.state.rfm).toMatchObject({ r: 5, f: 1, m: 3, segment: "new_customers" })
    expect(scored.derived.map((e) => e.properties)).toEqual([{ from: "prospect", to: "new_customers" }])
  })
})
