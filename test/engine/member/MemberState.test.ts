import { describe, expect, it } from "vitest"
import { applyEvents, clearOutbox, emptyState, refresh } from "../../../engine/member/MemberState.ts"
import { ctx, DAY, event, NOW, purchase } from "./fixtures.ts"

describe("applying events to a member", () => {
  it("each batch that changes something raises the version by exactly one", () => {
    const first = applyEvents(emptyState("m-1"), [event("member.registered", NOW - DAY), purchase("A", 6000, NOW)], ctx, NOW)
    expect(first.state.version).toBe(1)
    expect(first.changed).toBe(true)
    const second = applyEvents(first.state, [event("app.opened", NOW)], ctx, NOW)
    expect(second.state.version).toBe(2)
    const nothing = applyEvents(second.state, [], ctx, NOW)
    expect(nothing).toMatchObject({ changed: false, state: second.state })
  })

  it("does not change the state it was given", () => {
    const before = emptyState("m-1")
    const copy = structuredClone(before)
    applyEvents(before, [purchase("A", 6000, NOW)], ctx, NOW)
    expect(before).toEqual(copy)
  })

  it("remembers every event id for good, not just a recent window", () => {
    const events = Array.from({ length: 3000 }, (_, i) => event("page.viewed", NOW - (3000 - i) * 60_000, { i }))
    const state = applyEvents(emptyState("m-1"), events, ctx, NOW).state
    const replay = applyEvents(state, [events[0], events[1500], events[2999]].flatMap((e) => (e === undefined ? [] : [e])), ctx, NOW)
    expect(replay.changed).toBe(false)
    expect(replay.duplicates).toHaveLength(3)
    expect(state.history["page.viewed"]?.n).toBe(3000)
    // The whole state stays a small JSON value.
    expect(JSON.stringify(state).length).toBeLessThan(3000 * 15 + 10_000)
  })

  it("puts derived events in the outbox until they are published", () => {
    const result = applyEvents(emptyState("m-1"), [purchase("A", 6000, NOW)], ctx, NOW)
    expect(result.state.outbox.map((e) => e.type).sort()).toEqual(["rfm.changed", "tier.changed"])
    expect(result.state.outbox.every((e) => e.id.startsWith("mf-") && e.memberId === "m-1")).toBe(true)
    expect(result.derived.find((e) => e.type === "tier.changed")?.occurredAt).toBe(new Date(NOW).toISOString())
    const tierId = result.derived.find((e) => e.type === "tier.changed")?.id ?? ""
    const cleared = clearOutbox(result.state, [tierId])
    expect(cleared.outbox.map((e) => e.type)).toEqual(["rfm.changed"])
    expect(cleared.version).toBe(result.state.version)
  })

  it("refresh does nothing to a member who never had an event", () => {
    expect(refresh(emptyState("m-1"), ctx, NOW).changed).toBe(false)
  })

  it("last seen is the latest event time and registration the earliest", () => {
    const state = applyEvents(emptyState("m-1"), [
      event("app.opened", NOW),
      event("member.registered", NOW - 10 * DAY),
      event("app.opened", NOW - 20 * DAY),
      event("member.registered", NOW - 5 * DAY)
    ], ctx, NOW).state
    expect(state.lastSeenAt).toBe(NOW)
    expect(state.registeredAt).toBe(NOW - 10 * DAY)
    expect(state.firstSeenAt).toBe(NOW - 20 * DAY)
  })
})
