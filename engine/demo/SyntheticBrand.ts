import type { TierLevel } from "../../schemas/Program.ts"
import { addDays, dateKey, type LocalDate } from "../journeys/Machine/Calendar.ts"
import { localDateTime, localInstant, offsetAt } from "../member/LocalTime.ts"
import { type BuyerSegment, planPurchases } from "./SyntheticBrand/Purchases.ts"
import {
  between,
  emailFor,
  intBetween,
  nameFor,
  openIdFor,
  pick,
  type Place,
  PLACES,
  type Random,
  randomOf,
  weighted
} from "./SyntheticBrand/People.ts"

/**
 * A synthetic brand for `memberflow demo`: members with 13 months of history as events with their
 * past `occurredAt`, shaped so that every shipped journey has someone to enter today:
 * - most members spend little, a few a lot (普卡 … 黑卡 follow from spend, computed by the engine);
 * - regular and occasional buyers, some drifting toward churn (last purchase 35–100 days ago) and
 *   some dormant, so churn-recall's inactivity trigger enters them;
 * - up to a few hundred gold-and-above members whose birthday is today in their own time zone, at
 *   an hour their local clock has passed the journey's `at`;
 * - points balances expiring exactly when points-expiry-reminder looks (its offset), tier
 *   anniversaries 30 days out with spend below what keeps the tier, and sign-ups today.
 * Existing members arrive as a profile sync (`member.updated`): a `member.registered` would welcome
 * every one of them again. Deterministic for a seed and `now`.
 */

const DAY = 86_400_000
const YEAR_DAYS = 365

export interface DemoEvent {
  readonly id: string
  readonly type: string
  readonly memberId: string
  readonly occurredAt: string
  readonly properties: Readonly<Record<string, unknown>>
}

export type Segment = BuyerSegment
/** What the member was planted for; null for the rest of the base. */
export type Role = "birthday" | "points-expiry" | "tier-review" | "new" | null

/** A date trigger of a journey, as the generator needs it (journeys.md, "Triggers"). */
export interface DateTriggerPlan {
  readonly attribute: string
  readonly offsetDays: number
  readonly at: string
}

export interface BrandOptions {
  readonly members: number
  readonly seed: string
  readonly now: number
  readonly currency: string
  /** the program's tiers, ascending */
  readonly tiers: ReadonlyArray<TierLevel>
  /** WeChat subscribe templates members of the mini program may have accepted */
  readonly subscribeTemplates: ReadonlyArray<string>
  /** the date triggers of the journeys the demo runs: birthday, points.expiresAt, tierSince */
  readonly dateTriggers: ReadonlyArray<DateTriggerPlan>
}

export interface DemoMember {
  readonly memberId: string
  readonly segment: Segment
  readonly role: Role
  readonly timezone: string
  readonly locale: string
  /** what the events add up to: spend over the last 365 days, net of refunds */
  readonly spend365d: number
  /** the tier that spend reaches as purchases come in (before any yearly review) */
  readonly tier: string
  readonly lastPurchaseAt: number | null
  readonly events: ReadonlyArray<DemoEvent>
}

export interface Brand {
  readonly members: ReadonlyArray<DemoMember>
  readonly events: number
}

/**
 * Members planted for the date and registration journeys: a share of the base, at least a few, at
 * most `cap` (a few hundred birthdays today, as a brand of any size has: enough for the birthday
 * experiment to show something).
 */
const ROLES: ReadonlyArray<{ readonly role: Exclude<Role, null>; readonly share: number; readonly cap: number }> = [
  { role: "birthday", share: 0.05, cap: 400 },
  { role: "points-expiry", share: 0.03, cap: Infinity },
  { role: "tier-review", share: 0.01, cap: Infinity },
  { role: "new", share: 0.02, cap: Infinity }
]
const ROLE_MINIMUM = 12

const SEGMENTS: ReadonlyArray<readonly [Segment, number]> = [
  ["prospect", 0.28],
  ["regular", 0.27],
  ["occasional", 0.24],
  ["drifting", 0.13],
  ["dormant", 0.08]
]

/** Tier shares of buyers; the spend inside a tier falls off from its floor (long tail). */
const TIER_SHARES = [0.72, 0.18, 0.07, 0.023, 0.007]
const VIP_SHARES = [0, 0, 0.7, 0.22, 0.08]

const TRIGGER_ATTRIBUTE: Record<"birthday" | "points-expiry" | "tier-review", string> = {
  birthday: "birthday",
  "points-expiry": "points.expiresAt",
  "tier-review": "tierSince"
}

const minutesOf = (hhmm: string): number => {
  const [h = "0", m = "0"] = hhmm.split(":")
  return Number(h) * 60 + Number(m)
}

const localToday = (now: number, timeZone: string): LocalDate => {
  const l = localDateTime(now, timeZone)
  return { year: l.year, month: l.month, day: l.day }
}

/**
 * A place whose clock has passed `at` today, with hours left before midnight: a date journey
 * enters its members at once instead of at a time after the demo.
 */
const placeAfter = (random: Random, at: string, now: number): Place | null => {
  const from = minutesOf(at) + 15
  const open = PLACES.filter((place) => {
    const l = localDateTime(now, place.timezone)
    const minute = l.hour * 60 + l.minute
    return minute >= from && minute < 21 * 60
  })
  return open.length === 0 ? null : weighted(random, open.map((place) => [place, place.share] as const))
}

/** `tiers` index by weights (levels beyond the program's are dropped). */
const tierIndex = (random: Random, shares: ReadonlyArray<number>, levels: number): number =>
  weighted(random, shares.slice(0, levels).map((share, i) => [i, share] as const).filter(([, s]) => s > 0))

/** Spend over a year for a tier: from its floor, falling off toward the next tier's. */
const spendIn = (random: Random, tiers: ReadonlyArray<TierLevel>, index: number): number => {
  const floor = tiers[index]?.minSpend ?? 0
  const ceiling = tiers[index + 1]?.minSpend ?? floor * 2.5 + 10_000
  const mean = index === 0 ? Math.min(1_100, ceiling / 4) : (ceiling - floor) * 0.3
  const spend = floor + Math.max(80, -mean * Math.log(1 - random()))
  return Math.round(Math.min(spend, ceiling - 1))
}

/** Points expire at a year's end at least a month away (never on a day a journey looks at). */
const safeExpiry = (today: LocalDate): string => {
  const daysLeft = (Date.UTC(today.year, 11, 31) - Date.UTC(today.year, today.month - 1, today.day)) / DAY
  return `${daysLeft >= 30 ? today.year : today.year + 1}-12-31`
}

const iso = (at: number): string => new Date(at).toISOString()

/** A birthday whose month-day is not within a day of today (only planted members have theirs today). */
const ordinaryBirthday = (random: Random, today: LocalDate): string => {
  for (;;) {
    const year = intBetween(random, 1960, 2005)
    const date = addDays({ year, month: 1, day: 1 }, intBetween(random, 0, 364))
    const distance = Math.abs(Date.UTC(2001, date.month - 1, date.day) - Date.UTC(2001, today.month - 1, today.day)) / DAY
    if (Math.min(distance, YEAR_DAYS - distance) <= 1) continue
    const text = dateKey(date)
    return random() < 0.2 ? text.slice(5) : text
  }
}

interface Draft {
  readonly memberId: string
  readonly events: Array<Omit<DemoEvent, "id" | "memberId">>
}

const push = (draft: Draft, type: string, at: number, properties: Record<string, unknown>): void => {
  draft.events.push({ type, occurredAt: iso(at), properties })
}

/** The roles of the base, by a seeded shuffle of member numbers. */
const assignRoles = (random: Random, members: number, available: ReadonlySet<Exclude<Role, null>>): Array<Role> => {
  const order = Array.from({ length: members }, (_, i) => i)
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1))
    const swap = order[i] as number
    order[i] = order[j] as number
    order[j] = swap
  }
  const roles: Array<Role> = Array.from({ length: members }, () => null)
  let next = 0
  for (const { role, share, cap } of ROLES) {
    if (!available.has(role)) continue
    const count = Math.min(Math.max(ROLE_MINIMUM, Math.round(members * share)), cap, Math.floor(members / 8))
    for (let k = 0; k < count && next < order.length; k++) roles[order[next++] as number] = role
  }
  return roles
}

const memberOf = (index: number, role: Role, options: BrandOptions): DemoMember => {
  const { now, tiers } = options
  const memberId = `m${String(index + 1).padStart(6, "0")}`
  const random = randomOf(`${options.seed}:${memberId}`)
  const trigger = role === null || role === "new" ? undefined : options.dateTriggers.find((t) => t.attribute === TRIGGER_ATTRIBUTE[role])
  // A planted member lives where the journey's hour has come today; without one they are ordinary.
  const planted = trigger === undefined ? null : placeAfter(random, trigger.at, now)
  const actualRole: Role = role === "new" || planted !== null ? role : null
  const place = planted ?? weighted(random, PLACES.map((p) => [p, p.share] as const))
  const timezone = place.timezone
  const locale = weighted(random, place.locales)
  const today = localToday(now, timezone)
  /** the attribute's date that makes today the journey's entry day */
  const entryDate = trigger === undefined ? today : addDays(today, -trigger.offsetDays)
  const segment: Segment =
    actualRole === "new"
      ? "new"
      : actualRole === "birthday"
        ? pick(random, ["regular", "occasional"] as const)
        : actualRole === "tier-review"
          ? "regular"
          : weighted(random, SEGMENTS)
  const draft: Draft = { memberId, events: [] }
  const offset = offsetAt(now, timezone)

  // who they are and how to reach them
  const name = nameFor(random, locale)
  const phone = random() < 0.95 ? place.phone(random) : undefined
  const email = random() < 0.85 || phone === undefined ? emailFor(random, memberId, name, locale) : undefined
  const wechatOpenId = random() < place.wechat ? openIdFor(random) : undefined
  const consent: Record<string, boolean> = {}
  if (phone !== undefined) consent["sms"] = random() < 0.9
  if (email !== undefined) consent["email"] = random() < 0.9
  if (wechatOpenId !== undefined) consent["wechat"] = random() < 0.95
  const birthday =
    actualRole === "birthday"
      ? `${entryDate.month === 2 && entryDate.day === 29 ? 1996 : intBetween(random, 1965, 2003)}-${dateKey(entryDate).slice(5)}`
      : random() < 0.9
        ? ordinaryBirthday(random, localToday(now, "Asia/Shanghai"))
        : undefined
  const profile: Record<string, unknown> = {
    name,
    ...(phone === undefined ? {} : { phone }),
    ...(email === undefined ? {} : { email }),
    ...(wechatOpenId === undefined ? {} : { wechatOpenId }),
    ...(birthday === undefined ? {} : { birthday }),
    timezone,
    locale,
    consent
  }

  // history
  const tierAt = actualRole === "birthday" ? tierIndex(random, VIP_SHARES, tiers.length) : tierIndex(random, TIER_SHARES, tiers.length)
  const purchases = planPurchases(random, {
    memberId,
    segment,
    now,
    offset,
    currency: options.currency,
    spend: spendIn(random, tiers, tierAt),
    tiers,
    refundRate: actualRole === "birthday" ? 0 : 0.03,
    ...(actualRole === "tier-review"
      ? { review: { index: tierIndex(random, [0, 0, 0.75, 0.2, 0.05], tiers.length), since: localInstant(entryDate.year - 1, entryDate.month, entryDate.day, timezone, 12, 0) } }
      : {})
  })
  const registeredAt =
    segment === "new"
      ? now - Math.round(between(random, 60_000, 30 * 60_000))
      : Math.min(now - Math.round(between(random, 20, 1800) * DAY), (purchases.first ?? now) - Math.round(between(random, 1, 200) * DAY))
  if (segment === "new") push(draft, "member.registered", registeredAt, profile)
  else push(draft, "member.updated", registeredAt, { ...profile, memberSince: iso(registeredAt).slice(0, 10) })
  for (const event of purchases.events) push(draft, event.type, event.at, event.properties)

  // points: planted balances expire on the day the reminder looks; the rest at a year's end
  const hasPoints = actualRole === "points-expiry" || (purchases.total > 0 ? random() < 0.65 : random() < 0.25)
  if (hasPoints) {
    const balance = actualRole === "points-expiry"
      ? intBetween(random, 200, 8000)
      : purchases.total > 0 ? Math.round(purchases.total * between(random, 0.2, 1)) : intBetween(random, 100, 500)
    const expiresAt = actualRole === "points-expiry" ? dateKey(entryDate) : safeExpiry(today)
    const at = Math.min(now - 60_000, Math.max(purchases.last ?? registeredAt, registeredAt) + 60_000)
    push(draft, "points.changed", at, { delta: balance, balance, reason: "balance-sync", expiresAt })
  }

  // WeChat mini-program users accept a subscribe message now and then: a credit for that template
  if (wechatOpenId !== undefined && consent["wechat"] === true && options.subscribeTemplates.length > 0 && random() < 0.5) {
    const at = Math.max(registeredAt + 60_000, now - Math.round(between(random, 1, 60) * DAY))
    push(draft, "wechat.subscribed", Math.min(at, now - 60_000), { templateId: pick(random, options.subscribeTemplates), count: intBetween(random, 1, 3) })
  }

  // some opt out later: of everything, or of SMS alone (planted members stay reachable)
  if (actualRole === null && segment !== "new") {
    const u = random()
    const channel = u < 0.03 ? "all" : u < 0.06 ? "sms" : null
    if (channel !== null) push(draft, "consent.updated", Math.round(between(random, registeredAt, now - 60_000)), { channel, granted: false })
  }

  const events = draft.events
    .map((event, k) => ({ event, k, at: Date.parse(event.occurredAt) }))
    .sort((a, b) => a.at - b.at || a.k - b.k)
    .map(({ event }, k): DemoEvent => ({ id: `${memberId}-${String(k + 1).padStart(3, "0")}`, memberId, ...event }))
  return {
    memberId,
    segment,
    role: actualRole,
    timezone,
    locale,
    spend365d: purchases.spend365d,
    tier: tiers[purchases.tierIndex]?.id ?? tiers[0]?.id ?? "",
    lastPurchaseAt: purchases.last,
    events
  }
}

/** The brand: N members, each with their events in time order. */
export const generateBrand = (options: BrandOptions): Brand => {
  const attributes = new Set(options.dateTriggers.map((t) => t.attribute))
  const available = new Set<Exclude<Role, null>>(["new"])
  for (const role of ["birthday", "points-expiry", "tier-review"] as const) if (attributes.has(TRIGGER_ATTRIBUTE[role])) available.add(role)
  const roles = assignRoles(randomOf(`${options.seed}:roles`), options.members, available)
  const members = roles.map((role, i) => memberOf(i, role, options))
  return { members, events: members.reduce((sum, m) => sum + m.events.length, 0) }
}
