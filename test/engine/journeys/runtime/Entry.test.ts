import { describe, expect, it } from "vitest"
import { considerEntry, emptySlot, handleEvent, handleTrigger, inGlobalControl, nextEntryTime, settle } from "../../../../engine/journeys/Machine.ts"
import { DAY, event, HOUR, journeyWith, member, NOW, OPTIONS, purchase, registered, withEvents } from "./fixtures.ts"

const onPurchase = (extra = "") => journeyWith(`trigger:\n  event: { type: purchase, where: { amount: { gte: 500 } } }\n${extra}`, "  - { id: hello, send: { channel: email, template: hi } }\n  - { id: pause, wait: 3d }")

describe("entry on an event trigger", () => {
  it("enters members whose event matches the type and where, and only them", () => {
    const j = onPurchase()
    const big = purchase("m-1", 800, NOW)
    const small = purchase("m-2", 100, NOW)
    const other = event("m-3", "checkin", NOW)
    expect(considerEntry(j, emptySlot, member("m-1", [big]), { kind: "event", event: big }, NOW, OPTIONS).entered?.triggerEventId).toBe(big.id)
    expect(considerEntry(j, emptySlot, member("m-2", [small]), { kind: "event", event: small }, NOW, OPTIONS).entered).toBeUndefined()
    expect(considerEntry(j, emptySlot, member("m-3", [other]), { kind: "event", event: other }, NOW, OPTIONS).entered).toBeUndefined()
  })

  it("lets only the audience in, reading the trigger event's properties", () => {
    const j = onPurchase("audience: { attribute: event.channel, eq: store }")
    const store = { ...purchase("m-1", 800, NOW), properties: { orderId: "a", amount: 800, currency: "CNY", channel: "store" } }
    const online = { ...purchase("m-2", 800, NOW), properties: { orderId: "b", amount: 800, currency: "CNY", channel: "online" } }
    expect(considerEntry(j, emptySlot, member("m-1", [store]), { kind: "event", event: store }, NOW, OPTIONS).entered).toBeDefined()
    const refused = considerEntry(j, emptySlot, member("m-2", [online]), { kind: "event", event: online }, NOW, OPTIONS)
    expect(refused.entered).toBeUndefined()
    expect(refused.reason).toBe("not in the audience")
  })

  it("paused and draft journeys take no new entries", () => {
    const e = purchase("m-1", 800, NOW)
    const m = member("m-1", [e])
    for (const status of ["paused", "draft"] as const) {
      const j = { ...onPurchase(), status }
      const result = considerEntry(j, emptySlot, m, { kind: "event", event: e }, NOW, OPTIONS)
      expect(result.entered).toBeUndefined()
      expect(result.reason).toBe(status)
    }
  })

  it("a member is inside at most once and the enrollment id comes from the trigger event", () => {
    const j = { ...onPurchase(), reentry: "afterExit" as const }
    const first = purchase("m-1", 800, NOW)
    const m = member("m-1", [first])
    const a = considerEntry(j, emptySlot, m, { kind: "event", event: first }, NOW, OPTIONS)
    const again = considerEntry(j, emptySlot, m, { kind: "event", event: first }, NOW, OPTIONS)
    expect(a.entered?.id).toBe(again.entered?.id)
    const second = purchase("m-1", 900, NOW + HOUR)
    const b = considerEntry(j, a.slot, withEvents(m, [second], NOW + HOUR), { kind: "event", event: second }, NOW + HOUR, OPTIONS)
    expect(b.entered).toBeUndefined()
    expect(b.reason).toBe("already inside")
  })
})

describe("re-entry", () => {
  const run = (reentry: string) => {
    const j = onPurchase(`reentry: ${reentry}`)
    const e1 = purchase("m-1", 800, NOW)
    let m = member("m-1", [e1])
    const first = handleEvent(j, emptySlot, e1, m, NOW, OPTIONS)
    return { j, first, m, next: (at: number, exitFirst: boolean) => {
      let slot = first.slot
      if (exitFirst && slot.active !== null) slot = settle(slot, { ...slot.active, status: "exited", exitedAt: at - 1, exitReason: "test", wait: null, stepId: null })
      const e = purchase("m-1", 900, at)
      m = withEvents(m, [e], at)
      return handleEvent(j, slot, e, m, at, OPTIONS)
    } }
  }
  it("never: only one entry ever", () => {
    expect(run("never").next(NOW + 10 * DAY, true).slot.entries).toBe(1)
  })
  it("afterExit: again once the previous enrollment ended, not while inside", () => {
    expect(run("afterExit").next(NOW + DAY, false).slot.entries).toBe(1)
    expect(run("afterExit").next(NOW + DAY, true).slot.entries).toBe(2)
  })
  it("always: a new trigger ends the enrollment inside and starts a new one", () => {
    const { first, next } = run("always")
    const second = next(NOW + DAY, false)
    expect(second.slot.entries).toBe(2)
    expect(second.slot.last?.id).toBe(first.slot.active?.id)
    expect(second.slot.last?.exitReason).toBe("reentered")
    expect(second.actions.map((a) => a.kind)).toContain("enrolled")
  })
  it("{after}: only when that long has passed since the last entry", () => {
    expect(run("{ after: 5d }").next(NOW + 4 * DAY, true).slot.entries).toBe(1)
    expect(run("{ after: 5d }").next(NOW + 5 * DAY, true).slot.entries).toBe(2)
  })
})

describe("entry on a segment trigger", () => {
  const j = journeyWith("trigger:\n  segment: { enters: { attribute: purchase.total, gte: 1000 } }\nreentry: afterExit", "  - { id: hi, send: { channel: email, template: hi } }")
  it("enters when the member starts matching, not while they keep matching, and again after leaving the segment", () => {
    const e1 = purchase("m-1", 600, NOW)
    let m = member("m-1", [e1])
    let slot = handleEvent(j, emptySlot, e1, m, NOW, OPTIONS).slot
    expect(slot.entries).toBe(0)
    const e2 = purchase("m-1", 600, NOW + HOUR)
    m = withEvents(m, [e2], NOW + HOUR)
    slot = handleEvent(j, slot, e2, m, NOW + HOUR, OPTIONS).slot
    expect(slot.entries).toBe(1)
    expect(slot.last?.status).toBe("completed")
    const e3 = purchase("m-1", 600, NOW + 2 * HOUR)
    m = withEvents(m, [e3], NOW + 2 * HOUR)
    slot = handleEvent(j, slot, e3, m, NOW + 2 * HOUR, OPTIONS).slot
    expect(slot.entries).toBe(1)
    // a full refund of every order takes them out of the segment: re-armed
    const refunds = [e1, e2, e3].map((e, i) => event("m-1", "refund", NOW + (3 + i) * HOUR, { orderId: e.properties["orderId"], amount: 600 }))
    m = withEvents(m, refunds, NOW + 6 * HOUR)
    slot = handleTrigger(j, slot, { kind: "change" }, m, NOW + 6 * HOUR, OPTIONS).slot
    expect(slot.segmentMatched).toBe(false)
    const e4 = purchase("m-1", 1200, NOW + 7 * HOUR)
    m = withEvents(m, [e4], NOW + 7 * HOUR)
    expect(handleEvent(j, slot, e4, m, NOW + 7 * HOUR, OPTIONS).slot.entries).toBe(2)
  })
})

describe("entry on an inactivity trigger", () => {
  const j = journeyWith("trigger:\n  inactivity: { event: purchase, for: 30d }\nreentry: afterExit", "  - { id: hi, send: { channel: email, template: hi } }")
  it("enters once per lapse, from the last such event's time, re-armed by the next one", () => {
    const p = purchase("m-1", 100, NOW)
    let m = member("m-1", [p])
    expect(nextEntryTime(j, emptySlot, m, NOW)).toBe(NOW + 30 * DAY)
    expect(considerEntry(j, emptySlot, m, { kind: "inactivity" }, NOW + 29 * DAY, OPTIONS).reason).toBe("not lapsed yet")
    const lapse = handleTrigger(j, emptySlot, { kind: "inactivity" }, m, NOW + 30 * DAY, OPTIONS)
    expect(lapse.slot.entries).toBe(1)
    expect(nextEntryTime(j, lapse.slot, m, NOW + 30 * DAY)).toBeNull()
    expect(handleTrigger(j, lapse.slot, { kind: "inactivity" }, m, NOW + 40 * DAY, OPTIONS).slot.entries).toBe(1)
    const again = purchase("m-1", 100, NOW + 50 * DAY)
    m = withEvents(m, [again], NOW + 50 * DAY)
    expect(nextEntryTime(j, lapse.slot, m, NOW + 50 * DAY)).toBe(NOW + 80 * DAY)
    expect(handleTrigger(j, lapse.slot, { kind: "inactivity" }, m, NOW + 80 * DAY, OPTIONS).slot.entries).toBe(2)
  })
  it("a member who never did the event does not enter", () => {
    const m = member("m-2", [registered("m-2", NOW)])
    expect(nextEntryTime(j, emptySlot, m, NOW)).toBeNull()
    expect(considerEntry(j, emptySlot, m, { kind: "inactivity" }, NOW + 90 * DAY, OPTIONS).entered).toBeUndefined()
  })
})

describe("entry on a schedule trigger", () => {
  const j = journeyWith('trigger:\n  schedule: { cron: "0 10 * * 1", timezone: Asia/Shanghai }\naudience: { attribute: city, eq: Taipei }\nreentry: afterExit', "  - { id: hi, send: { channel: email, template: hi } }")
  it("each tick enters the audience once, keyed by the tick", () => {
    const tick = nextEntryTime(j, emptySlot, member("m-1", []), NOW)
    expect(tick).toBe(Date.parse("2026-06-08T10:00:00+08:00"))
    const inside = member("m-1", [registered("m-1", NOW, { city: "Taipei" })])
    const outside = member("m-2", [registered("m-2", NOW, { city: "Tokyo" })])
    const t = tick ?? 0
    const a = handleTrigger(j, emptySlot, { kind: "schedule", tick: t }, inside, t, OPTIONS)
    expect(a.slot.entries).toBe(1)
    expect(a.slot.last?.entryKey).toBe(`tick:${t}`)
    expect(handleTrigger(j, a.slot, { kind: "schedule", tick: t }, inside, t, OPTIONS).reason).toBe("tick seen")
    expect(handleTrigger(j, emptySlot, { kind: "schedule", tick: t }, outside, t, OPTIONS).slot.entries).toBe(0)
    expect(nextEntryTime(j, a.slot, inside, t)).toBe(t + 7 * DAY)
  })
})

describe("global control", () => {
  const members = Array.from({ length: 400 }, (_, i) => `gc-${i}`)
  const held = members.filter((id) => inGlobalControl(id, 5))
  it("holds about the configured percent of members", () => {
    expect(held.length).toBeGreaterThan(5)
    expect(held.length).toBeLessThan(40)
  })
  it("keeps members out of marketing journeys but not transactional ones", () => {
    const id = held[0] ?? ""
    const e = purchase(id, 800, NOW)
    const m = member(id, [e])
    const transactional = onPurchase()
    const marketing = { ...transactional, category: "marketing" as const }
    const options = { version: "v1", globalControl: 5 }
    expect(considerEntry(marketing, emptySlot, m, { kind: "event", event: e }, NOW, options).reason).toBe("global control")
    expect(considerEntry(transactional, emptySlot, m, { kind: "event", event: e }, NOW, options).entered).toBeDefined()
    const free = members.find((x) => !inGlobalControl(x, 5)) ?? ""
    const f = purchase(free, 800, NOW)
    expect(considerEntry(marketing, emptySlot, member(free, [f]), { kind: "event", event: f }, NOW, options).entered).toBeDefined()
  })
  it("defaults to the program's globalControl policy", () => {
    const id = members.find((x) => inGlobalControl(x, 5)) ?? ""
    const e = purchase(id, 800, NOW)
    const marketing = { ...onPurchase(), category: "marketing" as const }
    expect(considerEntry(marketing, emptySlot, member(id, [e]), { kind: "event", event: e }, NOW, { version: "v1" }).reason).toBe("global control")
  })
})
