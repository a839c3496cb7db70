import { Schema } from "effect"
import { describe, expect, it } from "vitest"
import { maskEmail, maskOpenId, maskPhone } from "../../../engine/member/Mask.ts"
import {
  applyEvents,
  attributeValue,
  emptyState,
  MemberStateSchema,
  profileRow,
  publicProfile
} from "../../../engine/member/MemberState.ts"
import { ctx, DAY, event, NOW, purchase } from "./fixtures.ts"

const registered = event("member.registered", NOW - 30 * DAY, {
  name: "林莉莉",
  email: "lily@example.com",
  phone: "+8613812345678",
  wechatOpenId: "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o",
  birthday: "1990-08-15",
  locale: "zh-TW",
  city: "上海",
  consent: { sms: true, email: true, wechat: true }
})

describe("profile attributes", () => {
  it("a member.updated that arrives late does not overwrite a newer one", () => {
    const newer = event("member.updated", NOW - DAY, { city: "杭州", locale: "en" })
    const older = event("member.updated", NOW - 10 * DAY, { city: "北京", birthday: "1990-08-16" })
    const state = applyEvents(emptyState("m-1"), [registered, newer, older], ctx, NOW).state
    expect(attributeValue(state, "city", ctx, NOW)).toBe("杭州")
    expect(attributeValue(state, "locale", ctx, NOW)).toBe("en")
    // An attribute the newer update did not carry still takes the older value.
    expect(attributeValue(state, "birthday", ctx, NOW)).toBe("1990-08-16")
    expect(attributeValue(state, "registeredAt", ctx, NOW)).toBe(registered.at)
    expect(attributeValue(state, "timezone", ctx, NOW)).toBe("Asia/Shanghai")
  })

  it("an opt-out stops consent on its channel, `all` on every channel, and a stale opt-in does not undo it", () => {
    const optOut = event("consent.updated", NOW - DAY, { channel: "sms", granted: false })
    const staleOptIn = event("consent.updated", NOW - 2 * DAY, { channel: "sms", granted: true })
    const state = applyEvents(emptyState("m-1"), [registered, optOut, staleOptIn], ctx, NOW).state
    expect(attributeValue(state, "consent.sms", ctx, NOW)).toBe(false)
    expect(attributeValue(state, "consent.email", ctx, NOW)).toBe(true)
    const all = applyEvents(state, [event("consent.updated", NOW, { channel: "all", granted: false })], ctx, NOW).state
    expect(profileRow(all, ctx, NOW)).toMatchObject({ consent_sms: 0, consent_email: 0, consent_wechat: 0 })
  })

  it("the row's attributes follow a change made in place to the engine's own state, and stay as they were when a late update loses", () => {
    // The engine applies events to the state it holds (`owned`): the same state and attributes
    // objects before and after, so the row's remembered attributes JSON must be forgotten on change.
    const state = applyEvents(emptyState("m-1"), [registered], ctx, NOW, { owned: true }).state
    const attributes = state.attributes
    const city = (row: { attributes: string }) => (JSON.parse(row.attributes) as { city?: string }).city
    expect(city(profileRow(state, ctx, NOW))).toBe("上海")
    expect(city(profileRow(state, ctx, NOW))).toBe("上海")
    const moved = applyEvents(state, [event("member.updated", NOW - DAY, { city: "杭州" })], ctx, NOW, { owned: true }).state
    expect(moved).toBe(state)
    expect(moved.attributes).toBe(attributes)
    expect(city(profileRow(moved, ctx, NOW))).toBe("杭州")
    // Older than the change above: it loses, and the row says what it said.
    applyEvents(moved, [event("member.updated", NOW - 5 * DAY, { city: "北京" })], ctx, NOW, { owned: true })
    expect(city(profileRow(moved, ctx, NOW))).toBe("杭州")
    // A new attribute shows at once too.
    applyEvents(moved, [event("member.updated", NOW, { nickname: "Lily" })], ctx, NOW, { owned: true })
    expect((JSON.parse(profileRow(moved, ctx, NOW).attributes) as { nickname?: string }).nickname).toBe("Lily")
  })

  it("points keep the latest balance by event time and the next expiry", () => {
    const state = applyEvents(emptyState("m-1"), [
      event("points.changed", NOW - DAY, { delta: 100, balance: 600, expiresAt: "2026-12-31" }),
      event("points.changed", NOW - 2 * DAY, { delta: 500, balance: 500 })
    ], ctx, NOW).state
    expect(attributeValue(state, "points.balance", ctx, NOW)).toBe(600)
    expect(attributeValue(state, "points.expiresAt", ctx, NOW)).toBe("2026-12-31")
    expect(profileRow(state, ctx, NOW)).toMatchObject({ points_balance: 600, points_expires_at: "2026-12-31 00:00:00.000" })
  })
})

describe("masking contact points", () => {
  it("shows 3 + 4 digits of the national number, one letter of the mailbox, 4 characters of the openid", () => {
    expect(maskPhone("+8613812345678")).toBe("138****5678")
    expect(maskPhone("+12025550123")).toBe("202****0123")
    expect(maskPhone("+85291234567")).toBe("9****67")
    expect(maskEmail("lily@example.com")).toBe("l***@example.com")
    expect(maskOpenId("oUpF8uMuAJO_M2pxb1Q9zNjWeS6o")).toBe("oUpF***")
  })

  it("no contact point reaches the profile row or the admin API in clear", () => {
    const state = applyEvents(emptyState("m-1"), [registered, purchase("A", 6000, NOW - DAY)], ctx, NOW).state
    const row = profileRow(state, ctx, NOW)
    const answer = JSON.stringify(publicProfile(state, ctx, NOW))
    for (const text of [JSON.stringify(row), answer]) {
      expect(text).not.toContain("13812345678")
      expect(text).not.toContain("lily@")
      expect(text).not.toContain("oUpF8uMuAJO")
    }
    expect(JSON.parse(row.attributes)).toEqual({
      name: "林莉莉",
      email: "l***@example.com",
      phone: "138****5678",
      wechatOpenId: "oUpF***",
      birthday: "1990-08-15",
      locale: "zh-TW",
      city: "上海"
    })
  })
})

describe("the profile others read", () => {
  const state = applyEvents(emptyState("m-1"), [registered, purchase("A", 6000, NOW - DAY), event("tags.updated", NOW, { add: ["vip"] })], ctx, NOW).state

  it("the member_profiles row carries the latest version and the computed facts", () => {
    expect(profileRow(state, ctx, NOW)).toEqual({
      member_id: "m-1",
      version: 1,
      updated_at: "2026-06-01 04:00:00.000",
      tier: "silver",
      tier_since: "2026-05-31 04:00:00.000",
      birthday: "1990-08-15",
      timezone: "Asia/Shanghai",
      locale: "zh-TW",
      consent_sms: 1,
      consent_email: 1,
      consent_wechat: 1,
      registered_at: "2026-05-02 04:00:00.000",
      last_seen_at: "2026-06-01 04:00:00.000",
      last_purchase_at: "2026-05-31 04:00:00.000",
      purchase_count: 1,
      purchase_total: 6000,
      spend_365d: 6000,
      rfm_frequency: 1,
      rfm_monetary: 6000,
      rfm_r: 5,
      rfm_f: 1,
      rfm_m: 3,
      rfm_segment: "new_customers",
      tags: ["vip"],
      points_balance: 0,
      points_expires_at: null,
      attributes: expect.any(String)
    })
  })

  it("the admin answer shows the tier with the next level and the spend still needed", () => {
    expect(publicProfile(state, ctx, NOW)).toMatchObject({
      memberId: "m-1",
      tier: { id: "silver", name: "銀卡", next: { id: "gold", name: "金卡", minSpend: 20000 }, spendToNext: 14000 },
      rfm: { r: 5, f: 1, m: 3, segment: "new_customers" },
      purchase: { count: 1, total: 6000, averageOrder: 6000 },
      tags: ["vip"],
      attributes: { phone: "138****5678" }
    })
  })

  it("the stored JSON reads back through the state schema", () => {
    const decoded = Schema.decodeUnknownSync(MemberStateSchema)(JSON.parse(JSON.stringify(state)))
    expect(decoded).toEqual(state)
    expect(() => Schema.decodeUnknownSync(MemberStateSchema)({ memberId: "m-1" })).toThrow()
  })
})
