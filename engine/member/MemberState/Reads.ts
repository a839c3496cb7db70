import type { Program, TierLevel } from "../../../schemas/Program.ts"
import type { MemberContext, MemberState } from "../MemberState.ts"
import type { RfmInputs } from "../Rfm.ts"
import { levelIndex, nextLevel, spendToNext, startingLevel, YEAR_MS } from "../Tiers.ts"
import { isDated } from "./Compact.ts"

/** Facts read from a member's state at a given time: spend windows, purchase stats, attribute paths. */

/** Money is summed in major units; round to cents so 0.1 + 0.2 reads 0.3. */
export const money = (amount: number): number => Math.round(amount * 100) / 100

/** The i-th order's amount net of its refunds (refunds cap at the amount); 0 until its purchase arrives. */
export const netOf = (orders: MemberState["orders"], i: number): number =>
  !isDated(orders.at[i]) ? 0 : Math.max(0, (orders.amount[i] ?? 0) - (orders.refunded[i] ?? 0))

/** Net spend on orders dated in (from, to]. Loops, not array pipelines: this runs per member per batch. */
export const spendBetween = (state: MemberState, from: number, to: number): number => {
  const orders = state.orders
  let sum = 0
  for (let i = 0; i < orders.at.length; i++) {
    const at = orders.at[i]
    if (isDated(at) && at > from && at <= to) sum += netOf(orders, i)
  }
  return money(sum)
}

/** Net spend in the 365 days up to `now` (events dated a little after `now` count too). */
export const spend365d = (state: MemberState, now: number): number => spendBetween(state, now - YEAR_MS, Infinity)

export const lifetimeSpend = (state: MemberState): number => spendBetween(state, -Infinity, Infinity)

/** The tier basis as of `at`: only orders dated up to `at` count, so a review is the same whenever it runs. */
export const basisAt = (state: MemberState, program: Program, at: number): number =>
  program.tiers.basis === "lifetimeSpend"
    ? spendBetween(state, -Infinity, at)
    : spendBetween(state, at - YEAR_MS, at)

/** Basis now: includes orders dated slightly after `now` (the 5-minute future tolerance). */
export const basisNow = (state: MemberState, program: Program, now: number): number =>
  program.tiers.basis === "lifetimeSpend" ? lifetimeSpend(state) : spend365d(state, now)

export interface PurchaseStats {
  readonly count: number
  readonly total: number
  readonly lastAt: number | null
  readonly averageOrder: number
}

/** Lifetime: orders with net > 0 count; last purchase is the latest by event time. */
export const purchaseStats = (state: MemberState): PurchaseStats => {
  let count = 0
  let total = 0
  let lastAt: number | null = null
  const orders = state.orders
  for (let i = 0; i < orders.at.length; i++) {
    const at = orders.at[i]
    const net = netOf(orders, i)
    if (!isDated(at) || net <= 0) continue
    count++
    total += net
    lastAt = lastAt === null ? at : Math.max(lastAt, at)
  }
  return { count, total: money(total), lastAt, averageOrder: count === 0 ? 0 : money(total / count) }
}

export interface OrderFigures {
  readonly spend365d: number
  readonly lifetimeSpend: number
  readonly purchases: PurchaseStats
  readonly rfm: RfmInputs | null
}

/**
 * spend365d, lifetimeSpend and purchaseStats, and the RFM inputs (orders with net > 0 dated inside
 * the window; null when there is none), in one pass over the orders: each sum is taken over the same
 * orders in the same order as those functions take it, so the figures are the same.
 */
export const orderFigures = (state: MemberState, windowMs: number, now: number): OrderFigures => {
  const yearFrom = now - YEAR_MS
  const windowFrom = now - windowMs
  let spendYear = 0
  let spendLifetime = 0
  let count = 0
  let total = 0
  let lastAt: number | null = null
  let frequency = 0
  let monetary = 0
  let lastPurchaseAt = -Infinity
  const orders = state.orders
  for (let i = 0; i < orders.at.length; i++) {
    const at = orders.at[i]
    if (!isDated(at)) continue
    const net = netOf(orders, i)
    // the ranges of spend365d and lifetimeSpend, written as spendBetween tests them
    if (at > yearFrom && at <= Infinity) spendYear += net
    if (at > -Infinity && at <= Infinity) spendLifetime += net
    if (net <= 0) continue
    count++
    total += net
    lastAt = lastAt === null ? at : Math.max(lastAt, at)
    if (at <= windowFrom) continue
    frequency++
    monetary += net
    lastPurchaseAt = Math.max(lastPurchaseAt, at)
  }
  return {
    spend365d: money(spendYear),
    lifetimeSpend: money(spendLifetime),
    purchases: { count, total: money(total), lastAt, averageOrder: count === 0 ? 0 : money(total / count) },
    rfm: frequency === 0 ? null : { lastPurchaseAt, frequency, monetary: money(monetary) }
  }
}

/** basisNow from order figures taken at `now`. */
export const basisOf = (program: Program, figures: OrderFigures): number =>
  program.tiers.basis === "lifetimeSpend" ? figures.lifetimeSpend : figures.spend365d

/** The time the current tier was reached; the starting level dates from registration (or first event). */
export const tierSince = (state: MemberState): number | null =>
  state.tier?.since ?? state.registeredAt ?? state.firstSeenAt

export const memberTimeZone = (state: MemberState, program: Program): string => {
  const tz = state.attributes["timezone"]?.v
  return typeof tz === "string" && tz !== "" ? tz : program.timezone
}

export const memberLocale = (state: MemberState, program: Program): string => {
  const locale = state.attributes["locale"]?.v
  return typeof locale === "string" && locale !== "" ? locale : program.locale
}

export const freeAttributes = (state: MemberState): Record<string, unknown> => {
  const out: Record<string, unknown> = {}
  const attributes = state.attributes
  for (const key of Object.keys(attributes)) out[key] = attributes[key]!.v
  return out
}

export const consentOf = (state: MemberState, channel: "sms" | "email" | "wechat"): boolean =>
  state.consent[channel]?.v ?? false

/** Whether `tag` is among currentTags, without building them. */
export const hasTag = (state: MemberState, tag: string): boolean =>
  Object.hasOwn(state.ruleTags, tag) || (Object.hasOwn(state.manualTags, tag) && Boolean(state.manualTags[tag]?.on))

/** Current tags: rule tags ∪ manual tags that are on. */
export const currentTags = (state: MemberState): ReadonlyArray<string> => {
  // the union without a Set: a manual tag is added unless a rule tag has it (the sort fixes the order)
  const tags = Object.keys(state.ruleTags)
  const manualTags = state.manualTags
  for (const tag of Object.keys(manualTags)) if (manualTags[tag]!.on && !Object.hasOwn(state.ruleTags, tag)) tags.push(tag)
  return tags.sort()
}

export interface TierView {
  readonly id: string
  readonly level: TierLevel | null
  readonly since: number | null
  readonly basis: number
  readonly next: TierLevel | null
  readonly spendToNext: number | null
}

export const tierView = (state: MemberState, program: Program, now: number): TierView =>
  tierViewAt(state, program, basisNow(state, program, now))

/** tierView with the basis already computed (basisNow). */
export const tierViewAt = (state: MemberState, program: Program, basis: number): TierView => {
  const id = state.tier?.id ?? startingLevel(program).id
  return {
    id,
    level: program.tiers.levels[levelIndex(program, id)] ?? null,
    since: tierSince(state),
    basis,
    next: nextLevel(program, id),
    spendToNext: spendToNext(program, id, basis)
  }
}

/** A dotted path into a plain value (`address.city`). */
export const pathValue = (root: unknown, path: ReadonlyArray<string>): unknown => {
  let value = root
  for (const key of path) {
    if (typeof value !== "object" || value === null || !Object.hasOwn(value, key)) return undefined
    value = (value as Readonly<Record<string, unknown>>)[key]
  }
  return value
}

/**
 * The value of a condition path (journeys.md, "Conditions"). Times (`purchase.lastAt`,
 * `registeredAt`, `tierSince`) are epoch ms; `birthday` and `points.expiresAt` are the date
 * strings as received; missing values are `null`. Any other path is a free attribute.
 */
export const attributeValue = (state: MemberState, path: string, ctx: MemberContext, now: number): unknown =>
  attributeValueWith(state, path, ctx, now, undefined)

/** attributeValue, reading order figures from `figures` (orderFigures at `now`, made on first use) when given. */
export const attributeValueWith = (state: MemberState, path: string, ctx: MemberContext, now: number, figures: (() => OrderFigures) | undefined): unknown => {
  const program = ctx.program
  switch (path) {
    case "tier":
      return state.tier?.id ?? startingLevel(program).id
    // What tierView would answer, computing only the part asked for.
    case "tier.next":
      return nextLevel(program, state.tier?.id ?? startingLevel(program).id)?.id ?? null
    case "tier.spendToNext":
      return spendToNext(program, state.tier?.id ?? startingLevel(program).id, figures === undefined ? basisNow(state, program, now) : basisOf(program, figures()))
    case "tierSince":
      return tierSince(state)
    case "rfm.r":
      return state.rfm.r
    case "rfm.f":
      return state.rfm.f
    case "rfm.m":
      return state.rfm.m
    case "rfm.segment":
      return state.rfm.segment
    case "purchase.count":
      return (figures?.().purchases ?? purchaseStats(state)).count
    case "purchase.total":
      return (figures?.().purchases ?? purchaseStats(state)).total
    case "purchase.lastAt":
      return (figures?.().purchases ?? purchaseStats(state)).lastAt
    case "purchase.averageOrder":
      return (figures?.().purchases ?? purchaseStats(state)).averageOrder
    case "spend365d":
      return figures?.().spend365d ?? spend365d(state, now)
    case "points.balance":
      return state.points.balance?.v ?? null
    case "points.expiresAt":
      return state.points.expiresAt?.v ?? null
    case "registeredAt":
      return state.registeredAt
    case "lastSeenAt":
      return state.lastSeenAt
    case "timezone":
      return memberTimeZone(state, program)
    case "locale":
      return memberLocale(state, program)
    case "tags":
      return currentTags(state)
    case "consent.sms":
      return consentOf(state, "sms")
    case "consent.email":
      return consentOf(state, "email")
    case "consent.wechat":
      return consentOf(state, "wechat")
    default: {
      if (!path.includes(".")) {
        const value = state.attributes[path]?.v
        return value === undefined ? null : value
      }
      const [head, ...rest] = path.split(".")
      const value = head === undefined ? undefined : pathValue(state.attributes[head]?.v, rest)
      return value === undefined ? null : value
    }
  }
}
