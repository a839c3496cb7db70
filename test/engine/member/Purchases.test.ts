import { describe, expect, it } from "vitest"
import { applyEvents, attributeValue, emptyState, type MemberState } from "../../../engine/member/MemberState.ts"
import type { MemberEvent } from "../../../schemas/Event.ts"
import { ctx, DAY, event, NOW, purchase, refund } from "./fixtures.ts"

const run = (batches: ReadonlyArray<ReadonlyArray<MemberEvent>>, start: MemberState = emptyState("m-1")): MemberState =>
  batches.reduce((state, batch) => applyEvents(state, batch, ctx, NOW).state, start)

const read = (state: MemberState, path: string) => attributeValue(state, path, ctx, NOW)

const registered = event("member.registered", NOW - 500 * DAY, { name: "Lily" }, { id: "reg" })
const a = purchase("A", 3000, NOW - 400 * DAY, "p-a") // outside the 365-day window
const b = purchase("B", 4000, NOW - 100 * DAY, "p-b")
const c = purchase("C", 2500, NOW - 10 * DAY, "p-c")
const refundB = refund("B", 1000, NOW - 5 * DAY, "r-b")
const refundD = refund("D", 1000, NOW - 3 * DAY, "r-d") // arrives before its purchase, and exceeds it
const d = purchase("D", 800, NOW - 2 * DAY, "p-d")

const expectSettled = (state: MemberState) => {
  expect(read(state, "purchase.total")).toBe(8500) // 3000 + (4000 − 1000) + 2500 + (800 − 800)
  expect(read(state, "purchase.count")).toBe(3) // D nets to zero
  expect(read(state, "purchase.averageOrder")).toBe(2833.33)
  expect(read(state, "purchase.lastAt")).toBe(c.at) // D was refunded in full
  expect(read(state, "spend365d")).toBe(5500)
  expect(read(state, "tier")).toBe("silver")
  expect(read(state, "tier.next")).toBe("gold")
  expect(read(state, "tier.spendToNext")).toBe(14500)
  // 10 days since the last purchase → R 5; 2 purchases in the window → F 2; 5500 → M 3.
  expect(state.rfm).toMatchObject({ r: 5, f: 2, m: 3, segment: "potential_loyalists" })
}

describe("a member's purchases", () => {
  it("in order give the lifetime total, the 365-day spend, the tier and the RFM segment", () => {
    expectSettled(run([[registered, a, b, c, refundB, refundD, d]]))
  })

  it("arriving out of order, one at a time, land where their event time puts them", () => {
    expectSettled(run([[d], [refundB], [c], [refundD], [a], [registered], [b]].reverse()))
    expectSettled(run([[refundD], [c], [refundB], [a], [d], [registered], [b]]))
  })

  it("re-delivered with the same event id change nothing, however late", () => {
    const settled = run([[registered, a, b, c, refundB, refundD, d]])
    const again = applyEvents(settled, [c, refundB, d, a], ctx, NOW + 300 * DAY)
    expect(again.changed).toBe(false)
    expect(again.duplicates.map((e) => e.id)).toEqual(["p-c", "r-b", "p-d", "p-a"])
    expect(again.state).toBe(settled)
    expectSettled(again.state)
  })

  it("re-published under a new event id but the same orderId count once", () => {
    const settled = run([[registered, a, b, c, refundB, refundD, d]])
    const copy = purchase("C", 2500, c.at, "p-c-republished")
    const result = applyEvents(settled, [copy], ctx, NOW)
    expect(result.duplicates).toEqual([copy])
    expect(result.changed).toBe(false)
    expectSettled(result.state)
  })

  it("a duplicate inside one batch is applied once", () => {
    const state = run([[b, b, purchase("B", 4000, b.at, "p-b-2")]])
    expect(read(state, "purchase.total")).toBe(4000)
    expect(read(state, "purchase.count")).toBe(1)
  })

  it("refunds cap at the order amount and several partial refunds add up", () => {
    const state = run([[purchase("E", 1000, NOW - DAY), refund("E", 300, NOW), refund("E", 300, NOW), refund("E", 900, NOW)]])
    expect(read(state, "purchase.total")).toBe(0)
    expect(read(state, "purchase.count")).toBe(0)
    const partial = run([[purchase("F", 1000, NOW - DAY), refund("F", 300, NOW), refund("F", 250.5, NOW)]])
    expect(read(partial, "purchase.total")).toBe(449.5)
  })

  it("a refund that arrives before its purchase is held and applied when the purchase comes", () => {
    const waiting = run([[refund("G", 400, NOW - DAY)]])
    expect(read(waiting, "purchase.total")).toBe(0)
    expect(read(waiting, "purchase.count")).toBe(0)
    const done = run([[purchase("G", 1000, NOW - 2 * DAY)]], waiting)
    expect(read(done, "purchase.total")).toBe(600)
    expect(read(done, "spend365d")).toBe(600)
  })

  it("a refund does not downgrade the tier at once", () => {
    const state = run([[purchase("H", 6000, NOW - DAY)], [refund("H", 6000, NOW)]])
    expect(read(state, "spend365d")).toBe(0)
    expect(read(state, "tier")).toBe("silver")
    expect(state.rfm.segment).toBe("prospect")
  })

  it("spend365d and RFM count by event time relative to now", () => {
    const state = run([[purchase("I", 2000, NOW - 364 * DAY), purchase("J", 2000, NOW - 366 * DAY)]])
    expect(read(state, "spend365d")).toBe(2000)
    expect(attributeValue(state, "spend365d", ctx, NOW + 2 * DAY)).toBe(0)
    // 364 days since the last purchase exceeds 30, 90 and 180 → R 2; one purchase → F 1.
    expect(state.rfm).toMatchObject({ r: 2, f: 1, m: 2, segment: "hibernating" })
  })
})
