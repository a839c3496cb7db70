import { describe, expect, it } from "vitest"
import {
  applyEvents,
  attributeValue,
  emptyState,
  type MemberContext,
  type MemberState,
  refresh
} from "../../../engine/member/MemberState.ts"
import { nextAnniversary, reviewTo } from "../../../engine/member/Tiers.ts"
import { ctx, DAY, event, NOW, program, programWith, programYaml, purchase } from "./fixtures.ts"

const at = (text: string) => Date.parse(text)
const tierChanges = (result: { readonly derived: ReadonlyArray<{ readonly type: string; readonly properties: object }> }) =>
  result.derived.filter((e) => e.type === "tier.changed").map((e) => e.properties)

describe("tier upgrades", () => {
  it("a purchase that lifts spend past a level upgrades at once and announces it exactly once", () => {
    const batch = [purchase("A", 3000, NOW - 2 * DAY, "p-a"), purchase("B", 2500, NOW - DAY, "p-b")]
    const first = applyEvents(emptyState("m-1"), batch, ctx, NOW)
    expect(tierChanges(first)).toEqual([{ from: "classic", to: "silver", reason: "upgrade" }])
    expect(attributeValue(first.state, "tier", ctx, NOW)).toBe("silver")
    expect(attributeValue(first.state, "tierSince", ctx, NOW)).toBe(NOW - DAY)
    expect(first.state.outbox.filter((e) => e.type === "tier.changed")).toHaveLength(1)

    const again = applyEvents(first.state, batch, ctx, NOW + DAY)
    expect(again.changed).toBe(false)
    expect(again.derived).toEqual([])

    // A replay from the state before (a crash before the write) announces the same event id.
    const replay = applyEvents(emptyState("m-1"), batch, ctx, NOW)
    expect(replay.derived.map((e) => e.id)).toEqual(first.derived.map((e) => e.id))
  })

  it("a big purchase jumps straight to the highest level it reaches", () => {
    const result = applyEvents(emptyState("m-1"), [purchase("A", 120000, NOW - DAY)], ctx, NOW)
    expect(tierChanges(result)).toEqual([{ from: "classic", to: "black", reason: "upgrade" }])
    expect(attributeValue(result.state, "tier.next", ctx, NOW)).toBeNull()
    expect(attributeValue(result.state, "tier.spendToNext", ctx, NOW)).toBeNull()
  })

  it("the engine's own tier.changed coming back is history, not a tier change", () => {
    const first = applyEvents(emptyState("m-1"), [purchase("A", 6000, NOW - DAY)], ctx, NOW)
    const own = first.derived[0]
    expect(own?.type).toBe("tier.changed")
    const back = event("tier.changed", NOW - DAY, { from: "classic", to: "silver", reason: "upgrade" }, { id: own?.id ?? "", source: "memberflow" })
    const stray = event("tier.changed", NOW, { from: "silver", to: "black" }, { source: "crm" })
    const result = applyEvents(first.state, [back, stray], ctx, NOW)
    expect(result.state.history["tier.changed"]?.n).toBe(2)
    expect(attributeValue(result.state, "tier", ctx, NOW)).toBe("silver")
    expect(tierChanges(result)).toEqual([])
  })
})

describe("the yearly tier review", () => {
  const reached = at("2025-03-10T15:00:00+08:00")
  const black = applyEvents(emptyState("m-1"), [purchase("A", 120000, reached)], ctx, reached).state

  it("is not due before the tier anniversary", () => {
    const result = refresh(black, ctx, at("2026-03-09T23:59:00+08:00"))
    expect(tierChanges(result)).toEqual([])
    expect(attributeValue(result.state, "tier", ctx, at("2026-03-09T23:59:00+08:00"))).toBe("black")
  })

  it("keeps the level when spend reaches its keepSpend, and downgrades when it does not", () => {
    const kept = refresh(black, ctx, at("2026-03-10T00:00:00+08:00"))
    expect(tierChanges(kept)).toEqual([])
    expect(kept.state.tier?.reviewedAt).toBe(at("2026-03-10T00:00:00+08:00"))

    // 85,000 in the next year: below black's minSpend but above its keepSpend of 80,000.
    const year2 = applyEvents(kept.state, [purchase("B", 85000, at("2026-09-01T12:00:00+08:00"))], ctx, at("2026-09-01T12:00:00+08:00"))
    const kept2 = refresh(year2.state, ctx, at("2027-03-10T08:00:00+08:00"))
    expect(tierChanges(kept2)).toEqual([])
    expect(kept2.state.tier?.id).toBe("black")

    // 79,999 in the year after: below keepSpend, so the member moves to the highest level it reaches.
    const year3 = applyEvents(kept2.state, [purchase("C", 79999, at("2027-10-01T12:00:00+08:00"))], ctx, at("2027-10-01T12:00:00+08:00"))
    const review3 = refresh(year3.state, ctx, at("2028-03-11T08:00:00+08:00"))
    expect(tierChanges(review3)).toEqual([{ from: "black", to: "diamond", reason: "review" }])
    expect(review3.state.tier).toMatchObject({ id: "diamond", since: at("2028-03-10T00:00:00+08:00") })
    expect(review3.derived[0]?.occurredAt).toBe(new Date(at("2028-03-10T00:00:00+08:00")).toISOString())

    // Refreshing again changes nothing and announces nothing.
    const again = refresh(review3.state, ctx, at("2028-03-11T09:00:00+08:00"))
    expect(tierChanges(again)).toEqual([])
  })

  it("catches up on every anniversary missed while the engine was down", () => {
    const result = refresh(black, ctx, at("2027-06-01T00:00:00+08:00"))
    // 2026 review: 120,000 in the year → keep; 2027 review: nothing → classic.
    expect(tierChanges(result)).toEqual([{ from: "black", to: "classic", reason: "review" }])
  })

  it("a level without keepSpend needs its minSpend again", () => {
    const silver = applyEvents(emptyState("m-2"), [purchase("S", 6000, reached)], ctx, reached).state
    const topUp = applyEvents(silver, [purchase("T", 4999, at("2025-12-01T12:00:00+08:00"))], ctx, at("2025-12-01T12:00:00+08:00")).state
    // Both purchases fall in the year before 10 March 2026: 10,999 ≥ 5,000.
    expect(tierChanges(refresh(topUp, ctx, at("2026-03-10T10:00:00+08:00")))).toEqual([])
    expect(tierChanges(refresh(topUp, ctx, at("2027-03-10T10:00:00+08:00")))).toEqual([
      { from: "silver", to: "classic", reason: "review" }
    ])
  })

  it("review: never keeps every level", () => {
    const never: MemberContext = { program: programWith({ tiers: { ...programYaml.tiers, review: "never" } }), cutpoints: null }
    const result = refresh(black, never, at("2030-01-01T00:00:00+08:00"))
    expect(result.state.tier?.id).toBe("black")
    expect(tierChanges(result)).toEqual([])
  })

  it("reviewTo never moves a member up", () => {
    expect(reviewTo(program, "silver", 60000)).toBeNull()
    expect(reviewTo(program, "black", 79999)?.id).toBe("diamond")
    expect(reviewTo(program, "black", 10)?.id).toBe("classic")
  })

  it("the anniversary is member-local midnight, across daylight saving and 29 February", () => {
    // 2 am in Shanghai on 10 March is still 9 March in New York; DST has begun by then in 2026.
    expect(nextAnniversary(at("2025-03-10T02:00:00+08:00"), at("2025-03-10T02:00:00+08:00"), "America/New_York")).toBe(
      at("2026-03-09T00:00:00-04:00")
    )
    expect(nextAnniversary(at("2024-02-29T10:00:00+08:00"), at("2024-02-29T10:00:00+08:00"), "Asia/Shanghai")).toBe(
      at("2025-02-28T00:00:00+08:00")
    )
  })
})

describe("external tiers", () => {
  const external: MemberContext = {
    program: programWith({ tiers: { ...programYaml.tiers, source: "external" } }),
    cutpoints: null
  }
  const tier = (state: MemberState) => attributeValue(state, "tier", external, NOW)

  it("follow tier.changed and member.registered, by event time, and never compute", () => {
    const registered = applyEvents(emptyState("m-1"), [event("member.registered", NOW - 10 * DAY, { tier: "gold" })], external, NOW)
    expect(tier(registered.state)).toBe("gold")
    const spent = applyEvents(registered.state, [purchase("A", 200000, NOW - DAY)], external, NOW)
    expect(tier(spent.state)).toBe("gold")
    expect(spent.derived.filter((e) => e.type === "tier.changed")).toEqual([])
    const changed = applyEvents(spent.state, [event("tier.changed", NOW - 2 * DAY, { from: "gold", to: "diamond" }, { source: "crm" })], external, NOW)
    expect(tier(changed.state)).toBe("diamond")
    expect(attributeValue(changed.state, "tierSince", external, NOW)).toBe(NOW - 2 * DAY)
    const late = applyEvents(changed.state, [event("tier.changed", NOW - 5 * DAY, { from: "gold", to: "silver" }, { source: "crm" })], external, NOW)
    expect(tier(late.state)).toBe("diamond")
  })
})
