import { describe, expect, it } from "@effect/vitest"
import { countInPeriod, decide, quietUntil, type Reach, type SentMark } from "../../channels/SendPolicy.ts"
import type { Channel, Policies } from "../../schemas/Program.ts"

const HOUR = 3_600_000
const DAY = 24 * HOUR
const SHANGHAI = "Asia/Shanghai"
/** 2026-05-20 12:00 in Shanghai (04:00 UTC). */
const NOON = Date.parse("2026-05-20T04:00:00Z")

const policies = (overrides: Partial<Policies> = {}): Policies => ({ globalControl: 0, frequencyCaps: [], ...overrides })

const reach = (contacts: ReadonlyArray<Channel>, consent: ReadonlyArray<Channel> = contacts, credit = true): Reach => ({
  contact: (channel) => (contacts.includes(channel) ? `contact-${channel}` : null),
  consent: (channel) => consent.includes(channel),
  wechatCredit: () => credit
})

const request = (channels: ReadonlyArray<Channel>, marketing = true, now = NOON) => ({ channels, marketing, timeZone: SHANGHAI, now })

describe("the send policy", () => {
  it("uses the step's channel when the member can be reached on it, else the first fallback that can", () => {
    expect(decide(request(["wechat", "sms", "email"]), reach(["sms", "email"]), policies(), [])).toEqual({ kind: "queued", channels: ["sms", "email"], notBefore: null })
    expect(decide(request(["wechat", "sms"]), reach(["wechat", "sms"], ["sms"]), policies(), [])).toEqual({ kind: "queued", channels: ["sms"], notBefore: null })
  })

  it("suppresses with the reason for each channel when no channel is left", () => {
    const decision = decide(request(["wechat", "sms"]), reach(["sms"], []), policies(), [])
    expect(decision).toEqual({ kind: "suppressed", channel: "wechat", reason: "no_reachable_channel (wechat: no contact point; sms: no consent)" })
  })

  it("a WeChat subscribe message needs a credit; without one the next channel is used", () => {
    expect(decide(request(["wechat", "email"]), reach(["wechat", "email"], ["wechat", "email"], false), policies(), [])).toEqual({
      kind: "queued",
      channels: ["email"],
      notBefore: null
    })
  })

  it("transactional journeys need a contact point but not marketing consent, and ignore caps and quiet hours", () => {
    const strict = policies({ frequencyCaps: [{ channel: "any", max: 1, per: DAY }], quietHours: { from: "00:00", to: "23:59", channels: ["sms"], then: "drop" } })
    const sent: Array<SentMark> = [{ at: NOON - HOUR, ch: "sms" }]
    expect(decide(request(["sms"], false), reach(["sms"], []), strict, sent)).toEqual({ kind: "queued", channels: ["sms"], notBefore: null })
  })

  it("a day in a cap is the member's calendar day: a message last night before midnight does not count today", () => {
    const cap = policies({ frequencyCaps: [{ channel: "any", max: 1, per: DAY }] })
    // 23:30 Shanghai yesterday = 15:30 UTC two days before NOON's UTC date… 12.5 h before NOON
    const lastNight: Array<SentMark> = [{ at: NOON - 12.5 * HOUR, ch: "sms" }]
    expect(decide(request(["sms"]), reach(["sms"]), cap, lastNight).kind).toBe("queued")
    const thisMorning: Array<SentMark> = [{ at: NOON - 3 * HOUR, ch: "email" }]
    expect(decide(request(["sms"]), reach(["sms"]), cap, thisMorning)).toEqual({ kind: "suppressed", channel: "sms", reason: "frequency_cap" })
  })

  it("longer cap periods roll: 3 in 7 days counts the last 168 hours", () => {
    const cap = policies({ frequencyCaps: [{ channel: "any", max: 3, per: 7 * DAY }] })
    const sent: Array<SentMark> = [
      { at: NOON - 7 * DAY - HOUR, ch: "sms" },
      { at: NOON - 6 * DAY, ch: "sms" },
      { at: NOON - 2 * DAY, ch: "email" }
    ]
    expect(countInPeriod(sent, "any", 7 * DAY, SHANGHAI, NOON)).toBe(2)
    expect(decide(request(["sms"]), reach(["sms"]), cap, sent).kind).toBe("queued")
    expect(decide(request(["sms"]), reach(["sms"]), cap, [...sent, { at: NOON - HOUR, ch: "wechat" }]).kind).toBe("suppressed")
  })

  it("a channel at its own cap gives way to the next reachable channel", () => {
    const cap = policies({ frequencyCaps: [{ channel: "sms", max: 1, per: DAY }] })
    const sent: Array<SentMark> = [{ at: NOON - HOUR, ch: "sms" }]
    expect(decide(request(["sms", "email"]), reach(["sms", "email"]), cap, sent)).toEqual({ kind: "queued", channels: ["email"], notBefore: null })
    expect(decide(request(["sms"]), reach(["sms"]), cap, sent)).toEqual({ kind: "suppressed", channel: "sms", reason: "frequency_cap" })
  })

  it("quiet hours across midnight defer to their end, member-local, or drop", () => {
    const quiet = { from: "21:00", to: "09:00", channels: ["sms" as const], then: "defer" as const }
    const late = Date.parse("2026-05-20T15:30:00Z") // 23:30 in Shanghai
    const end = Date.parse("2026-05-21T01:00:00Z") // 09:00 the next morning in Shanghai
    expect(quietUntil(quiet, SHANGHAI, late)).toBe(end)
    expect(quietUntil(quiet, SHANGHAI, Date.parse("2026-05-20T22:00:00Z"))).toBe(end) // 06:00 Shanghai
    expect(quietUntil(quiet, SHANGHAI, NOON)).toBeNull()
    expect(decide(request(["sms"], true, late), reach(["sms"]), policies({ quietHours: quiet }), [])).toEqual({ kind: "queued", channels: ["sms"], notBefore: end })
    expect(decide(request(["sms"], true, late), reach(["sms"]), policies({ quietHours: { ...quiet, then: "drop" } }), [])).toEqual({
      kind: "suppressed",
      channel: "sms",
      reason: "quiet_hours"
    })
    // email is not among the quiet channels
    expect(decide(request(["email"], true, late), reach(["email"]), policies({ quietHours: quiet }), [])).toEqual({ kind: "queued", channels: ["email"], notBefore: null })
  })

  it("the end of quiet hours on the last day of a month is the first of the next", () => {
    const quiet = { from: "21:00", to: "09:00", channels: ["sms" as const], then: "defer" as const }
    expect(quietUntil(quiet, SHANGHAI, Date.parse("2026-05-31T14:00:00Z"))).toBe(Date.parse("2026-06-01T01:00:00Z"))
  })
})
