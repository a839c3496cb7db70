import type { DerivedEvent, MemberEvent } from "../../../schemas/Event.ts"
import type { Program } from "../../../schemas/Program.ts"
import type { Draft, MemberContext } from "../MemberState.ts"
import { startingLevel, upgradeTo } from "../Tiers.ts"
import { attributesChanged } from "./AttributesMemo.ts"
import { addOrder, insertAt, isDated, orderIndex, recentCount, recentWith, UNDATED, writable } from "./Compact.ts"
import { derive, shortHash } from "./Ids.ts"
import { basisOf, type OrderFigures, orderFigures } from "./Reads.ts"

/** What one event does to a member's state, by event time (events.md, "Standard types"). */

/** Event times kept per type for `{event, count, within}`; counts inside a window saturate here. */
export const TIMES_PER_TYPE = 500
/** Events per type whose scalar properties are kept for `{event, where}` over history. */
export const RECENT_PER_TYPE = 20

const ENGINE_SOURCE = "memberflow"
const CHANNELS = ["sms", "email", "wechat"] as const

const str = (value: unknown): string | undefined => (typeof value === "string" ? value : undefined)
const num = (value: unknown): number | undefined =>
  typeof value === "number" && Number.isFinite(value) ? value : undefined

/** Index at which `at` goes to keep `times` ascending (after equal times: arrival order among ties). */
const insertionPoint = (times: ReadonlyArray<number>, at: number): number => {
  let lo = 0
  let hi = times.length
  while (lo < hi) {
    const mid = (lo + hi) >> 1
    if ((times[mid] ?? 0) <= at) lo = mid + 1
    else hi = mid
  }
  return lo
}

const isScalar = (value: unknown): boolean =>
  value === null || typeof value === "string" || typeof value === "number" || typeof value === "boolean"

// for-in over own keys: Object.keys' keys in its order, without an array per event
const allScalar = (properties: Readonly<Record<string, unknown>>): boolean => {
  for (const key in properties) if (Object.hasOwn(properties, key) && !isScalar(properties[key])) return false
  return true
}

const scalarProperties = (properties: Readonly<Record<string, unknown>>): Readonly<Record<string, unknown>> => {
  // Only scalars (the usual event): the copy would be the same keys, order and values, so the
  // properties are kept as they are (nothing changes an event's properties). Not with a
  // "__proto__" key, which the copy below drops.
  if (allScalar(properties) && !Object.hasOwn(properties, "__proto__")) return properties
  const out: Record<string, unknown> = {}
  for (const key of Object.keys(properties)) {
    const value = properties[key]
    if (isScalar(value)) out[key] = value
  }
  return out
}

/** Every event, of any type, is kept in history: a count, recent times, recent scalar properties. */
export const recordHistory = (d: Draft, e: Pick<MemberEvent, "type" | "at" | "properties">): void =>
  recordHistoryOf(d, e.type, e.at, e.properties)

/** recordHistory without an event object (the engine's own events are recorded from their parts). */
export const recordHistoryOf = (d: Draft, type: string, at: number, properties: Readonly<Record<string, unknown>>): void => {
  const h = (d.history[type] ??= { n: 0, at: [], recent: "" })
  h.n += 1
  // `recent` belongs to the last of `at` (at most RECENT_PER_TYPE ≤ TIMES_PER_TYPE of them), and
  // both take the event at the same place: after the times equal to its own (arrival order).
  const count = recentCount(h.recent)
  const kept = h.at.length - count
  // Events mostly come in time order: the place is mostly the end.
  const i = insertionPoint(h.at, at)
  h.at = insertAt(h.at, i, at)
  if (h.at.length > TIMES_PER_TYPE) h.at.splice(0, h.at.length - TIMES_PER_TYPE)
  // Older than every kept event's properties when they are full: its own would be dropped at once.
  if (i < kept) return
  h.recent = recentWith(h.recent, count, i - kept, JSON.stringify(scalarProperties(properties)), RECENT_PER_TYPE)
}

export const startTier = (d: Draft, program: Program): void => {
  d.tier = { id: startingLevel(program).id, since: null, reviewedAt: null, at: null }
}

/** A purchase whose orderId is already known from another event id. */
export const isDuplicateOrder = (d: Draft, e: MemberEvent): boolean => {
  if (e.type !== "purchase") return false
  const orderId = str(e.properties["orderId"])
  if (orderId === undefined) return false
  const i = orderIndex(d.orders, shortHash(orderId))
  return i !== -1 && isDated(d.orders.at[i])
}

/** A tier set from outside (tiers.source: external), last write by occurredAt wins. */
const setExternalTier = (d: Draft, program: Program, to: string, at: number): void => {
  if (program.tiers.source !== "external") return
  if (d.tier !== null && d.tier.at !== null && d.tier.at > at) return
  d.tier = { id: to, since: at, reviewedAt: null, at }
}

const setConsent = (d: Draft, channel: (typeof CHANNELS)[number], granted: boolean, at: number): void => {
  const current = d.consent[channel]
  if (current === null || current.at <= at) d.consent[channel] = { v: granted, at }
}

const applyAttributes = (d: Draft, e: MemberEvent, program: Program): void => {
  for (const key of Object.keys(e.properties)) {
    const value = e.properties[key]
    if (key === "consent" && typeof value === "object" && value !== null) {
      for (const channel of CHANNELS) {
        const granted = (value as Record<string, unknown>)[channel]
        if (typeof granted === "boolean") setConsent(d, channel, granted, e.at)
      }
    } else if (key === "tier") {
      const to = str(value)
      if (to !== undefined) setExternalTier(d, program, to, e.at)
    } else {
      const current = d.attributes[key]
      if (current === undefined || current.at <= e.at) {
        d.attributes[key] = { v: value, at: e.at }
        attributesChanged(d.attributes)
      }
    }
  }
}

/**
 * The order figures a purchase summed for its tier check, for the re-evaluation that follows in the
 * same write: the caller clears it before each event, so it holds only the last event's.
 */
export interface Figured {
  figures: OrderFigures | undefined
}

const applyPurchase = (d: Draft, e: MemberEvent, ctx: MemberContext, now: number, derived: Array<DerivedEvent>, figured: Figured | undefined): void => {
  const orderId = str(e.properties["orderId"])
  const amount = num(e.properties["amount"])
  if (orderId === undefined || amount === undefined) return
  const key = shortHash(orderId)
  const orders = d.orders
  // Known only from a refund so far (isDuplicateOrder let it through): the purchase dates it.
  const known = orderIndex(orders, key)
  if (known === -1) addOrder(orders, key, e.at, amount, 0)
  else {
    orders.at[known] = e.at
    orders.amount[known] = amount
  }
  const program = ctx.program
  const tier = d.tier
  if (program.tiers.source !== "computed" || tier === null) return
  const figures = orderFigures(d, program.rfm.window, now)
  if (figured !== undefined) figured.figures = figures
  const to = upgradeTo(program, tier.id, basisOf(program, figures))
  if (to === null) return
  // tierSince never moves back: a late purchase older than the current tier does not date it earlier.
  const since = Math.max(e.at, tier.since ?? e.at)
  derived.push(derive(d, "tier", "tier.changed", { from: tier.id, to: to.id, reason: "upgrade" }, { key: e.id, occurredAt: e.occurredAt }, "upgrade"))
  d.tier = { id: to.id, since, reviewedAt: null, at: null }
}

/** Refunds accumulate on the order (capped at its amount when read); one before its purchase waits there. */
const applyRefund = (d: Draft, e: MemberEvent): void => {
  const orderId = str(e.properties["orderId"])
  const amount = num(e.properties["amount"])
  if (orderId === undefined || amount === undefined) return
  const key = shortHash(orderId)
  const i = orderIndex(d.orders, key)
  if (i === -1) addOrder(d.orders, key, UNDATED, 0, amount)
  else d.orders.refunded[i] = (d.orders.refunded[i] ?? 0) + amount
}

const applyPoints = (d: Draft, e: MemberEvent): void => {
  const balance = num(e.properties["balance"])
  if (balance !== undefined && (d.points.balance === null || d.points.balance.at <= e.at)) {
    d.points.balance = { v: balance, at: e.at }
  }
  if ("expiresAt" in e.properties && (d.points.expiresAt === null || d.points.expiresAt.at <= e.at)) {
    d.points.expiresAt = { v: str(e.properties["expiresAt"]) ?? null, at: e.at }
  }
}

/** Manual tags, last write by occurredAt wins per tag; a journey may name itself in `properties.source`. */
const applyManualTags = (d: Draft, e: MemberEvent, derived: Array<DerivedEvent>): void => {
  const source = str(e.properties["source"]) ?? "manual"
  const list = (value: unknown): ReadonlyArray<string> =>
    Array.isArray(value) ? value.filter((t): t is string => typeof t === "string") : []
  const set = (tag: string, on: boolean): void => {
    const current = d.manualTags[tag]
    if (current !== undefined && current.at > e.at) return
    d.manualTags = writable(d.manualTags)
    d.manualTags[tag] = { on, at: e.at, source }
    if ((current?.on ?? false) !== on) {
      const type = on ? "tag.added" : "tag.removed"
      derived.push(derive(d, "tag", type, { tag, source }, { key: e.id, occurredAt: e.occurredAt }, `${type}:${tag}`))
    }
  }
  for (const tag of list(e.properties["add"])) set(tag, true)
  for (const tag of list(e.properties["remove"])) set(tag, false)
}

export const applyFacts = (
  d: Draft,
  e: MemberEvent,
  ctx: MemberContext,
  now: number,
  derived: Array<DerivedEvent>,
  figured?: Figured
): void => {
  const program = ctx.program
  if (d.tier === null) startTier(d, program)
  const fromEngine = e.source === ENGINE_SOURCE
  // First/last seen are the member's own behaviour, not what the engine concluded about them.
  if (!fromEngine) {
    d.firstSeenAt = d.firstSeenAt === null ? e.at : Math.min(d.firstSeenAt, e.at)
    d.lastSeenAt = d.lastSeenAt === null ? e.at : Math.max(d.lastSeenAt, e.at)
  }
  recordHistory(d, e)
  switch (e.type) {
    case "member.registered":
      d.registeredAt = d.registeredAt === null ? e.at : Math.min(d.registeredAt, e.at)
      applyAttributes(d, e, program)
      return
    case "member.updated":
      applyAttributes(d, e, program)
      return
    case "consent.updated": {
      const channel = e.properties["channel"]
      const granted = e.properties["granted"]
      if (typeof granted !== "boolean") return
      for (const c of CHANNELS) if (channel === c || channel === "all") setConsent(d, c, granted, e.at)
      return
    }
    case "purchase":
      return applyPurchase(d, e, ctx, now, derived, figured)
    case "refund":
      return applyRefund(d, e)
    case "points.changed":
      return applyPoints(d, e)
    case "tier.changed": {
      // The engine's own tier.changed coming back is history only.
      const to = str(e.properties["to"])
      if (!fromEngine && to !== undefined) setExternalTier(d, program, to, e.at)
      return
    }
    case "tags.updated":
      return applyManualTags(d, e, derived)
    case "wechat.subscribed": {
      // The member accepted a subscribe message in the mini program: credits to send that template.
      const templateId = str(e.properties["templateId"])
      const count = e.properties["count"] === undefined ? 1 : Number(e.properties["count"])
      if (templateId === undefined || !Number.isInteger(count) || count < 1) return
      d.credits = { ...(d.credits ?? {}), [templateId]: (d.credits?.[templateId] ?? 0) + count }
      return
    }
    default:
      // tag.added / tag.removed / rfm.changed (our own, coming back) and free-form events: history only.
      return
  }
}
