import { describe, expect, it } from "vitest"
import {
  applyEvents,
  attributeValue,
  emptyState,
  type MemberState,
  memberTagRows,
  refresh
} from "../../../engine/member/MemberState.ts"
import type { DerivedEvent } from "../../../schemas/Event.ts"
import { ctx, DAY, event, NOW, purchase } from "./fixtures.ts"

const tags = (state: MemberState, now = NOW) => attributeValue(state, "tags", ctx, now)
const tagEvents = (derived: ReadonlyArray<DerivedEvent>) =>
  derived.filter((e) => e.type.startsWith("tag.")).map((e) => ({ type: e.type, ...e.properties }))

describe("rule tags", () => {
  it("a big spender with no check-in in 90 days is tagged, loses it on a check-in, and regains it 90 days later", () => {
    const spent = applyEvents(emptyState("m-1"), [purchase("A", 10000, NOW - DAY)], ctx, NOW)
    expect(spent.state.rfm.m).toBe(4)
    expect(tags(spent.state)).toEqual(["high-value-low-engagement"])
    expect(tagEvents(spent.derived)).toEqual([
      { type: "tag.added", tag: "high-value-low-engagement", source: "high-value-low-engagement" }
    ])

    const checkedIn = applyEvents(spent.state, [event("checkin", NOW, { store: "SH-01" })], ctx, NOW)
    expect(tags(checkedIn.state)).toEqual([])
    expect(tagEvents(checkedIn.derived)).toEqual([
      { type: "tag.removed", tag: "high-value-low-engagement", source: "high-value-low-engagement" }
    ])

    expect(tagEvents(refresh(checkedIn.state, ctx, NOW + 89 * DAY).derived)).toEqual([])
    const later = refresh(checkedIn.state, ctx, NOW + 91 * DAY)
    expect(tags(later.state, NOW + 91 * DAY)).toEqual(["high-value-low-engagement"])
    expect(tagEvents(later.derived)).toEqual([
      { type: "tag.added", tag: "high-value-low-engagement", source: "high-value-low-engagement" }
    ])
  })

  it("a late check-in dated months ago does not count inside the 90-day window", () => {
    const state = applyEvents(emptyState("m-1"), [purchase("A", 10000, NOW - DAY), event("checkin", NOW - 120 * DAY)], ctx, NOW).state
    expect(tags(state)).toEqual(["high-value-low-engagement"])
  })

  it("frequent small baskets are tagged and untagged when a big order lifts the average", () => {
    const small = [1, 2, 3, 4, 5].map((i) => purchase(`S${i}`, 100, NOW - i * DAY))
    const frequent = applyEvents(emptyState("m-1"), small, ctx, NOW)
    expect(frequent.state.rfm.f).toBe(4)
    expect(tags(frequent.state)).toEqual(["frequent-low-basket"])
    const big = applyEvents(frequent.state, [purchase("B", 5000, NOW)], ctx, NOW)
    expect(tags(big.state)).toEqual([])
    expect(tagEvents(big.derived)).toEqual([{ type: "tag.removed", tag: "frequent-low-basket", source: "frequent-low-basket" }])
  })
})

describe("manual tags", () => {
  it("tags.updated adds and removes tags, last write by event time wins", () => {
    const added = applyEvents(emptyState("m-1"), [event("tags.updated", NOW - DAY, { add: ["vip", "kol"] })], ctx, NOW)
    expect(tags(added.state)).toEqual(["kol", "vip"])
    expect(tagEvents(added.derived)).toEqual([
      { type: "tag.added", tag: "vip", source: "manual" },
      { type: "tag.added", tag: "kol", source: "manual" }
    ])
    const stale = applyEvents(added.state, [event("tags.updated", NOW - 2 * DAY, { remove: ["vip"] })], ctx, NOW)
    expect(tags(stale.state)).toEqual(["kol", "vip"])
    expect(tagEvents(stale.derived)).toEqual([])
    const removed = applyEvents(stale.state, [event("tags.updated", NOW, { remove: ["vip"] })], ctx, NOW)
    expect(tags(removed.state)).toEqual(["kol"])
    expect(memberTagRows(removed.derived)).toEqual([
      { event_id: removed.derived[0]?.id, member_id: "m-1", tag: "vip", op: "remove", at: "2026-06-01 04:00:00.000", source: "manual" }
    ])
  })

  it("the engine's own tag events coming back are history, not tag changes", () => {
    const added = applyEvents(emptyState("m-1"), [event("tags.updated", NOW - DAY, { add: ["vip"] })], ctx, NOW)
    const own = added.derived[0]
    const back = event("tag.removed", NOW, { tag: "vip" }, { id: `${own?.id}-x`, source: "memberflow" })
    const result = applyEvents(added.state, [back], ctx, NOW)
    expect(tags(result.state)).toEqual(["vip"])
    expect(result.state.history["tag.removed"]?.n).toBe(1)
  })
})
