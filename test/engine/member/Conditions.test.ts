import { Schema } from "effect"
import { describe, expect, it } from "vitest"
import { evaluate, matchesWhere } from "../../../engine/member/Conditions.ts"
import { applyEvents, emptyState } from "../../../engine/member/MemberState.ts"
import { Condition } from "../../../schemas/Condition.ts"
import { ctx, DAY, event, NOW, purchase } from "./fixtures.ts"

const when = (yaml: unknown) => Schema.decodeUnknownSync(Condition)(yaml)

const state = applyEvents(emptyState("m-1"), [
  event("member.registered", NOW - 200 * DAY, { city: "上海", birthday: "1990-08-15", consent: { wechat: true } }),
  purchase("A", 25000, NOW - 40 * DAY),
  purchase("B", 300, NOW - 3 * DAY),
  event("review.posted", NOW - 100 * DAY, { stars: 5 }),
  event("consent.updated", NOW - 2 * DAY, { channel: "sms", granted: false }),
  event("page.viewed", NOW - DAY, { page: "/sale", campaign: "618" }),
  event("page.viewed", NOW - 20 * DAY, { page: "/home" }),
  event("tags.updated", NOW - DAY, { add: ["vip"] })
], ctx, NOW).state
const ec = { now: NOW, ctx }
const holds = (yaml: unknown, extra: Partial<Parameters<typeof evaluate>[2]> = {}) => evaluate(when(yaml), state, { ...ec, ...extra })

describe("conditions on a member", () => {
  it("compare attributes with every operator", () => {
    expect(holds({ attribute: "tier", in: ["gold", "diamond", "black"] })).toBe(true)
    expect(holds({ attribute: "tier", notIn: ["gold"] })).toBe(false)
    expect(holds({ attribute: "city", eq: "上海" })).toBe(true)
    expect(holds({ attribute: "city", ne: "上海" })).toBe(false)
    expect(holds({ attribute: "purchase.total", gte: 25300, lte: 25300 })).toBe(true)
    expect(holds({ attribute: "purchase.averageOrder", gt: 12000, lt: 13000 })).toBe(true)
    expect(holds({ attribute: "spend365d", gt: 30000 })).toBe(false)
    expect(holds({ attribute: "tier.next", eq: "diamond" })).toBe(true)
    expect(holds({ attribute: "tier.spendToNext", eq: 24700 })).toBe(true)
    expect(holds({ attribute: "rfm.segment", eq: "potential_loyalists" })).toBe(true)
    expect(holds({ attribute: "birthday", contains: "08-15" })).toBe(true)
    expect(holds({ attribute: "nickname", exists: false })).toBe(true)
    expect(holds({ attribute: "city", exists: true })).toBe(true)
    expect(holds({ attribute: "tags", contains: "vip" })).toBe(true)
  })

  it("compares times with dates", () => {
    expect(holds({ attribute: "purchase.lastAt", gte: "2026-05-01T00:00:00+08:00" })).toBe(true)
    expect(holds({ attribute: "registeredAt", gt: "2026-01-01" })).toBe(false)
  })

  it("combines with all, any and not, and reads tags and consent", () => {
    expect(holds({ all: [{ tag: "vip" }, { consent: "wechat" }] })).toBe(true)
    expect(holds({ any: [{ consent: "sms" }, { consent: "email" }] })).toBe(false)
    expect(holds({ consent: "any" })).toBe(true)
    expect(holds({ not: { tag: "lapsed" } })).toBe(true)
  })

  it("counts the event history, any event type, by event time", () => {
    expect(holds({ event: "purchase" })).toBe(true)
    expect(holds({ event: "purchase", count: { gte: 2 }, within: "30d" })).toBe(false)
    expect(holds({ event: "purchase", count: { eq: 2 }, within: "60d" })).toBe(true)
    expect(holds({ event: ["review.posted", "checkin"], count: { lt: 1 }, within: "90d" })).toBe(true)
    expect(holds({ event: "page.viewed", count: { eq: 2 } })).toBe(true)
    expect(holds({ event: "page.viewed", where: { page: "/sale" }, within: "7d" })).toBe(true)
    expect(holds({ event: "page.viewed", where: { page: ["/home", "/cart"] }, within: "7d" })).toBe(false)
    expect(holds({ event: "purchase", where: { amount: { gte: 1000 } } })).toBe(true)
    expect(holds({ event: "consent.updated", where: { granted: false } })).toBe(true)
  })

  it("counts only events after the journey entry with since: entry", () => {
    expect(holds({ event: "purchase", since: "entry" }, { enteredAt: NOW - 5 * DAY })).toBe(true)
    expect(holds({ event: "purchase", since: "entry" }, { enteredAt: NOW - 2 * DAY })).toBe(false)
  })

  it("reads the triggering event's properties", () => {
    const trigger = event("purchase", NOW, { orderId: "Z", amount: 880, channel: "store" })
    expect(holds({ attribute: "event.amount", gte: 500 }, { triggerEvent: trigger })).toBe(true)
    expect(holds({ attribute: "event.channel", eq: "online" }, { triggerEvent: trigger })).toBe(false)
    expect(holds({ attribute: "event.amount", exists: true })).toBe(false)
  })

  it("where matches dotted paths, lists and operators", () => {
    expect(matchesWhere({ item: { sku: "A1", qty: 2 } }, { "item.sku": "A1", "item.qty": { gt: 1 } })).toBe(true)
    expect(matchesWhere({ channel: "sms" }, { channel: ["email", "wechat"] })).toBe(false)
  })
})
