import { describe, expect, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import { SHIPPED_JOURNEYS } from "../../../engine/demo/DemoJourneys.ts"
import { type BrandOptions, type DemoMember, generateBrand } from "../../../engine/demo/SyntheticBrand.ts"
import { decodeEvent } from "../../../engine/ingest/Decode.ts"
import { addDays, dateKey } from "../../../engine/journeys/Machine/Calendar.ts"
import { loadJourneys } from "../../../engine/journeys/JourneyFile.ts"
import { localDateTime } from "../../../engine/member/LocalTime.ts"

const DAY = 86_400_000
/** 13:00 in Shanghai, 05:00 in London, 21:00 (the day before) in Los Angeles */
const SHANGHAI_AFTERNOON = Date.UTC(2026, 10, 23, 5, 0)
/** 03:00 in Shanghai: the date journeys' hour has not come there */
const SHANGHAI_NIGHT = Date.UTC(2026, 10, 22, 19, 0)

const shipped = await Effect.runPromise(loadJourneys(SHIPPED_JOURNEYS))
const optionsAt = (now: number, members: number, seed = "test-brand"): BrandOptions => ({
  members,
  seed,
  now,
  currency: shipped.program.currency,
  tiers: shipped.program.tiers.levels,
  subscribeTemplates: [...new Set([...shipped.templates.wechat.values()].filter((t) => t.kind === "subscribe").map((t) => t.templateId))],
  dateTriggers: shipped.journeys.flatMap((j) => ("date" in j.trigger ? [j.trigger.date] : []))
})

const brand = generateBrand(optionsAt(SHANGHAI_AFTERNOON, 4000))
const share = (members: ReadonlyArray<DemoMember>, f: (m: DemoMember) => boolean) => members.filter(f).length / members.length
const localToday = (now: number, tz: string) => {
  const l = localDateTime(now, tz)
  return { year: l.year, month: l.month, day: l.day }
}
const minuteOfDay = (now: number, tz: string) => {
  const l = localDateTime(now, tz)
  return l.hour * 60 + l.minute
}
const eventsOf = (m: DemoMember, type: string) => m.events.filter((e) => e.type === type)

describe("the demo's synthetic brand", () => {
  it("the same seed makes the same brand, another seed another one", () => {
    const again = generateBrand(optionsAt(SHANGHAI_AFTERNOON, 4000))
    expect(JSON.stringify(again)).toBe(JSON.stringify(brand))
    const other = generateBrand(optionsAt(SHANGHAI_AFTERNOON, 4000, "another seed"))
    expect(other.members.length).toBe(4000)
    expect(JSON.stringify(other.members.slice(0, 50))).not.toBe(JSON.stringify(brand.members.slice(0, 50)))
  })

  it("every event is one the engine accepts, in time order per member, none in the future, ids unique", () => {
    const ids = new Set<string>()
    for (const member of brand.members) {
      let last = -Infinity
      for (const event of member.events) {
        const decoded = decodeEvent(`demo.events.${event.type}`, new TextEncoder().encode(JSON.stringify(event)), {
          subjectPrefix: "demo.events",
          now: SHANGHAI_AFTERNOON,
          maxBytes: 65_536
        })
        if (Either.isLeft(decoded)) throw new Error(`${event.id}: ${decoded.left}`)
        expect(decoded.right.at).toBeGreaterThanOrEqual(last)
        expect(decoded.right.at).toBeLessThanOrEqual(SHANGHAI_AFTERNOON)
        last = decoded.right.at
        ids.add(event.id)
      }
    }
    expect(ids.size).toBe(brand.events)
    // a realistic history, and one the engine gets through in a demo: a few events per member
    expect(brand.events / brand.members.length).toBeGreaterThan(3)
    expect(brand.events / brand.members.length).toBeLessThan(8)
  })

  it("most members are 普卡 with little spend, a long tail reaches 黑卡", () => {
    const tiers = ["classic", "silver", "gold", "diamond", "black"].map((id) => brand.members.filter((m) => m.tier === id).length)
    const [classic = 0, silver = 0, gold = 0, diamond = 0, black = 0] = tiers
    expect(classic / brand.members.length).toBeGreaterThan(0.6)
    expect(silver).toBeGreaterThan(gold)
    expect(gold).toBeGreaterThan(diamond)
    expect(diamond).toBeGreaterThan(black)
    expect(black).toBeGreaterThan(0)
    const spends = brand.members.map((m) => m.spend365d).sort((a, b) => a - b)
    const median = spends[Math.floor(spends.length / 2)] ?? 0
    const mean = spends.reduce((sum, s) => sum + s, 0) / spends.length
    expect(mean).toBeGreaterThan(2 * median)
  })

  it("members live mostly in Shanghai, some in Taipei and Hong Kong, a few in London and Los Angeles, and read zh-CN, zh-TW or en", () => {
    const members = brand.members
    expect(share(members, (m) => m.timezone === "Asia/Shanghai")).toBeGreaterThan(0.6)
    for (const tz of ["Asia/Taipei", "Asia/Hong_Kong", "Europe/London", "America/Los_Angeles"]) {
      expect(share(members, (m) => m.timezone === tz)).toBeGreaterThan(0.005)
      expect(share(members, (m) => m.timezone === tz)).toBeLessThan(0.15)
    }
    expect(new Set(members.map((m) => m.locale))).toEqual(new Set(["zh-CN", "zh-TW", "en"]))
    expect(share(members, (m) => m.locale === "zh-CN")).toBeGreaterThan(0.6)
  })

  it("contact points are mostly there and consent mostly granted; some members opt out later", () => {
    const profiles = brand.members.map((m) => m.events[0]?.properties ?? {})
    const has = (key: string) => profiles.filter((p) => typeof p[key] === "string").length / profiles.length
    expect(has("phone")).toBeGreaterThan(0.85)
    expect(has("email")).toBeGreaterThan(0.7)
    expect(has("wechatOpenId")).toBeGreaterThan(0.3)
    expect(has("wechatOpenId")).toBeLessThan(0.9)
    const grants = profiles.flatMap((p) => Object.values((p["consent"] ?? {}) as Record<string, boolean>))
    expect(grants.filter((g) => g).length / grants.length).toBeGreaterThan(0.85)
    const optOuts = brand.members.flatMap((m) => eventsOf(m, "consent.updated"))
    expect(optOuts.length).toBeGreaterThan(0)
    expect(optOuts.every((e) => e.properties["granted"] === false)).toBe(true)
    expect(brand.members.some((m) => eventsOf(m, "wechat.subscribed").length > 0)).toBe(true)
  })

  it("regular and occasional buyers, and some drifting toward churn: last purchase 35–100 days ago", () => {
    const now = SHANGHAI_AFTERNOON
    const daysSince = (m: DemoMember) => (m.lastPurchaseAt === null ? null : (now - m.lastPurchaseAt) / DAY)
    const drifting = brand.members.filter((m) => m.segment === "drifting")
    expect(drifting.length / brand.members.length).toBeGreaterThan(0.05)
    expect(drifting.every((m) => (daysSince(m) ?? 0) >= 34 && (daysSince(m) ?? 0) <= 101)).toBe(true)
    const lapsed = share(brand.members, (m) => (daysSince(m) ?? 0) > 30)
    expect(lapsed).toBeGreaterThan(0.1)
    expect(lapsed).toBeLessThan(0.35)
    const regular = brand.members.filter((m) => m.segment === "regular")
    expect(regular.every((m) => (daysSince(m) ?? 99) < 30)).toBe(true)
    const purchasesOfRegulars = regular.reduce((sum, m) => sum + eventsOf(m, "purchase").length, 0) / regular.length
    expect(purchasesOfRegulars).toBeGreaterThan(4)
    const firstPurchase = Math.min(...brand.members.flatMap((m) => eventsOf(m, "purchase").map((e) => Date.parse(e.occurredAt))))
    expect((now - firstPurchase) / DAY).toBeGreaterThan(365)
    expect((now - firstPurchase) / DAY).toBeLessThan(420)
  })

  it("a few hundred gold-and-above members have their birthday today in their own time zone, past the journey's 09:00", () => {
    const big = generateBrand(optionsAt(SHANGHAI_AFTERNOON, 20_000))
    const birthdays = big.members.filter((m) => m.role === "birthday")
    expect(birthdays.length).toBe(400)
    for (const m of birthdays) {
      const today = localToday(SHANGHAI_AFTERNOON, m.timezone)
      expect(String(m.events[0]?.properties["birthday"]).slice(-5)).toBe(dateKey(today).slice(5))
      expect(minuteOfDay(SHANGHAI_AFTERNOON, m.timezone)).toBeGreaterThanOrEqual(9 * 60 + 15)
      expect(["gold", "diamond", "black"]).toContain(m.tier)
    }
    // nobody else has a birthday within a day of today
    const today = dateKey(localToday(SHANGHAI_AFTERNOON, "Asia/Shanghai")).slice(5)
    expect(big.members.filter((m) => m.role !== "birthday" && String(m.events[0]?.properties["birthday"] ?? "").endsWith(today))).toEqual([])
  })

  it("at 03:00 in Shanghai the birthday members live where the clock has passed 09:00, so the journey still fires today", () => {
    const night = generateBrand(optionsAt(SHANGHAI_NIGHT, 2000))
    const planted = night.members.filter((m) => m.role === "birthday" || m.role === "points-expiry" || m.role === "tier-review")
    expect(planted.length).toBeGreaterThan(0)
    for (const m of planted) {
      expect(m.timezone).not.toBe("Asia/Shanghai")
      expect(minuteOfDay(SHANGHAI_NIGHT, m.timezone)).toBeGreaterThanOrEqual(10 * 60 + 15)
      expect(minuteOfDay(SHANGHAI_NIGHT, m.timezone)).toBeLessThan(21 * 60)
    }
  })

  it("some balances expire exactly when the points reminder looks (14 days out), the rest at a year's end", () => {
    const expiring = brand.members.filter((m) => m.role === "points-expiry")
    expect(expiring.length).toBe(120)
    for (const m of expiring) {
      const [points] = eventsOf(m, "points.changed")
      expect(points?.properties["expiresAt"]).toBe(dateKey(addDays(localToday(SHANGHAI_AFTERNOON, m.timezone), 14)))
      expect(Number(points?.properties["balance"])).toBeGreaterThanOrEqual(100)
    }
    const others = brand.members.filter((m) => m.role !== "points-expiry").flatMap((m) => eventsOf(m, "points.changed"))
    expect(others.length).toBeGreaterThan(brand.members.length / 4)
    expect(others.every((e) => String(e.properties["expiresAt"]).endsWith("-12-31"))).toBe(true)
  })

  it("some members reached their tier 11 months ago and have since fallen below what keeps it", () => {
    const reviews = brand.members.filter((m) => m.role === "tier-review")
    expect(reviews.length).toBe(40)
    for (const m of reviews) {
      const level = shipped.program.tiers.levels.find((l) => l.id === m.tier)
      expect(["gold", "diamond", "black"]).toContain(m.tier)
      expect(m.spend365d).toBeLessThan(level?.keepSpend ?? level?.minSpend ?? 0)
      // the purchase that reached the tier: its anniversary is 30 days from today, member-local
      const biggest = [...eventsOf(m, "purchase")].sort((a, b) => Number(b.properties["amount"]) - Number(a.properties["amount"]))[0]
      const reached = localDateTime(Date.parse(biggest?.occurredAt ?? ""), m.timezone)
      const anniversary = addDays(localToday(SHANGHAI_AFTERNOON, m.timezone), 30)
      expect([reached.month, reached.day]).toEqual([anniversary.month, anniversary.day])
      expect(eventsOf(m, "refund").length).toBe(1)
    }
  })

  it("some members sign up today; the existing base arrives as a profile sync, so only today's sign-ups are welcomed", () => {
    const registered = brand.members.filter((m) => eventsOf(m, "member.registered").length > 0)
    expect(registered.length).toBe(80)
    for (const m of registered) {
      expect(m.segment).toBe("new")
      const at = Date.parse(eventsOf(m, "member.registered")[0]?.occurredAt ?? "")
      expect(SHANGHAI_AFTERNOON - at).toBeLessThan(3_600_000)
    }
    expect(brand.members.filter((m) => m.segment !== "new").every((m) => m.events[0]?.type === "member.updated")).toBe(true)
  })
})
