import type { TierLevel } from "../../../schemas/Program.ts"
import { between, intBetween, type Random } from "./People.ts"

/**
 * A member's purchases over the last ~13 months: when (by buying rhythm), how much (a year's spend
 * shared out), the odd refund, and what that makes of their tier. The tier rule is the engine's
 * (an upgrade as soon as spend over 365 days reaches a level), replayed here only to describe the
 * brand; the engine computes the real thing.
 */

const DAY = 86_400_000
const WINDOW_DAYS = 365
const HISTORY_DAYS = 395

export type BuyerSegment = "new" | "prospect" | "regular" | "occasional" | "drifting" | "dormant"

export interface PurchasePlan {
  readonly memberId: string
  readonly segment: BuyerSegment
  readonly now: number
  /** the member's time zone offset now (ms): purchases happen in local shop hours */
  readonly offset: number
  readonly currency: string
  /** what the year's purchases should add up to */
  readonly spend: number
  readonly tiers: ReadonlyArray<TierLevel>
  /** the share of purchases returned later (none for members planted at a tier) */
  readonly refundRate: number
  /**
   * A tier reached at `since` (level `index`), then partly refunded so that spend is below what
   * keeps the tier when its anniversary review comes.
   */
  readonly review?: { readonly index: number; readonly since: number }
}

export interface PlannedEvent {
  readonly type: "purchase" | "refund"
  readonly at: number
  readonly properties: Record<string, unknown>
}

export interface Purchases {
  readonly events: ReadonlyArray<PlannedEvent>
  readonly first: number | null
  readonly last: number | null
  /** every purchase's amount */
  readonly total: number
  /** net spend over the last 365 days */
  readonly spend365d: number
  readonly tierIndex: number
}

/** A moment `daysAgo` days back, moved into local shop hours (10:00–21:00), never in the future. */
const shopTime = (random: Random, now: number, offset: number, daysAgo: number): number => {
  const local = now - daysAgo * DAY + offset
  const dayStart = local - (((local % DAY) + DAY) % DAY)
  const at = dayStart + Math.round(between(random, 10, 21) * 3_600_000) - offset
  return at < now - 60_000 ? at : now - Math.round(between(random, 2, 60) * 60_000)
}

/** Days ago of each purchase, most recent first, by buying rhythm. */
const rhythm = (random: Random, segment: BuyerSegment): Array<number> => {
  const back = (first: number, cadence: () => number, limit: number): Array<number> => {
    const days = [first]
    for (let d = first + cadence(); d < HISTORY_DAYS && days.length < limit; d += cadence()) days.push(d)
    return days
  }
  switch (segment) {
    case "regular": {
      const cadence = between(random, 35, 75)
      return back(between(random, 0.3, 28), () => cadence * between(random, 0.7, 1.3), 24)
    }
    case "occasional": {
      const last = between(random, 0.5, 28)
      return [last, ...Array.from({ length: intBetween(random, 1, 3) }, () => between(random, last + 10, HISTORY_DAYS))]
    }
    case "drifting":
      return back(between(random, 35, 100), () => between(random, 20, 60), intBetween(random, 2, 7))
    case "dormant": {
      const last = between(random, 101, 390)
      return [last, ...Array.from({ length: intBetween(random, 0, 2) }, () => between(random, last + 15, HISTORY_DAYS + 15))]
    }
    default:
      return []
  }
}

const qualifying = (tiers: ReadonlyArray<TierLevel>, basis: number): number => {
  let best = 0
  tiers.forEach((level, i) => {
    if (level.minSpend <= basis) best = i
  })
  return best
}

/** Replays the events: net spend in the window and the tier upgrades it earns on the way. */
const settle = (events: ReadonlyArray<PlannedEvent>, tiers: ReadonlyArray<TierLevel>, now: number) => {
  const orders = new Map<string, { at: number; amount: number; refunded: number }>()
  const basis = () => {
    let sum = 0
    for (const order of orders.values()) if (order.at > now - WINDOW_DAYS * DAY) sum += Math.max(0, order.amount - order.refunded)
    return Math.round(sum * 100) / 100
  }
  let tierIndex = 0
  for (const event of [...events].sort((a, b) => a.at - b.at)) {
    const orderId = String(event.properties["orderId"])
    const amount = Number(event.properties["amount"])
    if (event.type === "purchase") {
      orders.set(orderId, { at: event.at, amount, refunded: orders.get(orderId)?.refunded ?? 0 })
      tierIndex = Math.max(tierIndex, qualifying(tiers, basis()))
    } else {
      const order = orders.get(orderId)
      if (order !== undefined) order.refunded += amount
    }
  }
  return { spend365d: basis(), tierIndex }
}

export const planPurchases = (random: Random, plan: PurchasePlan): Purchases => {
  const { now, offset, memberId } = plan
  const events: Array<PlannedEvent> = []
  let n = 0
  const buy = (at: number, amount: number): string => {
    const orderId = `${memberId}-o${++n}`
    const channel = random() < 0.6 ? "store" : "online"
    events.push({ type: "purchase", at, properties: { orderId, amount: Math.max(19, Math.round(amount)), currency: plan.currency, channel } })
    return orderId
  }
  const refund = (orderId: string, at: number, amount: number) => {
    events.push({ type: "refund", at, properties: { orderId, amount: Math.max(1, Math.round(amount)) } })
  }

  const review = plan.review
  const level = review === undefined ? undefined : plan.tiers[review.index]
  if (review !== undefined && level !== undefined && review.since > now - (WINDOW_DAYS - 5) * DAY) {
    const daysSince = (now - review.since) / DAY
    const before = review.since - Math.round(between(random, 3, 20) * DAY)
    const small = before > now - (WINDOW_DAYS - 1) * DAY ? Math.round(between(random, 200, 1500)) : 0
    if (small > 0) buy(before, small)
    const crossing = level.minSpend - small + Math.round(between(random, 200, 2500))
    const big = buy(review.since, crossing)
    let after = 0
    const count = intBetween(random, 3, 5)
    for (let k = 0; k < count; k++) {
      const amount = Math.round(between(random, 200, 900))
      after += Math.max(19, amount)
      buy(shopTime(random, now, offset, k === 0 ? between(random, 1, 25) : between(random, 25, Math.max(26, daysSince - 20))), amount)
    }
    // below what keeps the tier at its review, by a margin a reminder can close
    const keep = level.keepSpend ?? level.minSpend
    const target = keep - Math.round(between(random, 2000, 7000))
    const back = Math.min(crossing, Math.max(1, small + crossing + after - target))
    refund(big, review.since + Math.round(between(random, 10, 40) * DAY), back)
  } else {
    const days = rhythm(random, plan.segment)
    const inWindow = days.filter((d) => d < WINDOW_DAYS - 1)
    const weights = inWindow.map(() => between(random, 0.4, 1.6))
    const totalWeight = weights.reduce((sum, w) => sum + w, 0)
    let w = 0
    for (const d of days) {
      const at = shopTime(random, now, offset, d)
      const amount = d < WINDOW_DAYS - 1 ? (plan.spend * (weights[w++] ?? 1)) / totalWeight : between(random, 99, 1200)
      const orderId = buy(at, amount)
      // the odd return, within two weeks, whole or in part
      const refundAt = at + Math.round(between(random, 1, 14) * DAY)
      if (random() < plan.refundRate && refundAt < now - 3_600_000) {
        refund(orderId, refundAt, random() < 0.5 ? Math.max(19, Math.round(amount)) : amount * between(random, 0.2, 0.8))
      }
    }
  }
  const purchases = events.filter((e) => e.type === "purchase")
  const times = purchases.map((e) => e.at)
  return {
    events,
    first: times.length === 0 ? null : Math.min(...times),
    last: times.length === 0 ? null : Math.max(...times),
    total: purchases.reduce((sum, e) => sum + Number(e.properties["amount"]), 0),
    ...settle(events, plan.tiers, now)
  }
}
