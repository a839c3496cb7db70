import type { MemberProfileRow } from "../../../schemas/Rows.ts"
import { chTime } from "../../../schemas/Rows.ts"
import { maskAttributes } from "../Mask.ts"
import type { MemberContext, MemberState } from "../MemberState.ts"
import {
  basisOf,
  consentOf,
  currentTags,
  freeAttributes,
  memberLocale,
  memberTimeZone,
  orderFigures,
  purchaseStats,
  spend365d,
  tierView,
  tierViewAt
} from "./Reads.ts"
import { rememberAttributesJson, rememberedAttributesJson } from "./AttributesMemo.ts"

/** The member as others see it: the analyst row and the admin API answer. Contact points masked. */

const chTimeOrNull = (ms: number | null): string | null => (ms === null ? null : chTime(ms))
const isoOrNull = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString())

/** `points.expiresAt` is a date (`YYYY-MM-DD…`); read as UTC midnight when it has no time. */
const dateMs = (date: string | null): number | null => {
  if (date === null) return null
  const ms = Date.parse(date)
  return Number.isNaN(ms) ? null : ms
}

const stringAttribute = (state: MemberState, key: string): string => {
  const value = state.attributes[key]?.v
  return typeof value === "string" ? value : ""
}

const isPlain = (value: unknown): boolean =>
  value === null || typeof value === "string" || typeof value === "number" || typeof value === "boolean"

/**
 * The masked attributes' JSON, remembered while the attributes are unchanged (MemberState/AttributesMemo.ts)
 * for a member whose attribute values are all plain scalars.
 */
const attributesJson = (state: MemberState): string => {
  const attributes = state.attributes
  const known = rememberedAttributesJson(attributes)
  if (known !== undefined) return known
  const json = JSON.stringify(maskAttributes(freeAttributes(state)))
  let plain = true
  for (const key in attributes) if (!isPlain(attributes[key]?.v)) plain = false
  if (plain) rememberAttributesJson(attributes, json)
  return json
}

/** The member_profiles row (clickhouse.md); `version` is the ReplacingMergeTree version. */
export const profileRow = (state: MemberState, ctx: MemberContext, now: number): MemberProfileRow => {
  const program = ctx.program
  // One pass over the orders for every figure the row has (the tier basis among them).
  const figures = orderFigures(state, program.rfm.window, now)
  const tier = tierViewAt(state, program, basisOf(program, figures))
  const purchases = figures.purchases
  const rfm = figures.rfm
  return {
    member_id: state.memberId,
    version: state.version,
    updated_at: chTime(state.updatedAt ?? now),
    tier: tier.id,
    tier_since: chTimeOrNull(tier.since),
    birthday: stringAttribute(state, "birthday"),
    timezone: memberTimeZone(state, program),
    locale: memberLocale(state, program),
    consent_sms: consentOf(state, "sms") ? 1 : 0,
    consent_email: consentOf(state, "email") ? 1 : 0,
    consent_wechat: consentOf(state, "wechat") ? 1 : 0,
    registered_at: chTimeOrNull(state.registeredAt),
    last_seen_at: chTimeOrNull(state.lastSeenAt),
    last_purchase_at: chTimeOrNull(purchases.lastAt),
    purchase_count: purchases.count,
    purchase_total: purchases.total,
    spend_365d: figures.spend365d,
    rfm_frequency: rfm?.frequency ?? 0,
    rfm_monetary: rfm?.monetary ?? 0,
    rfm_r: state.rfm.r,
    rfm_f: state.rfm.f,
    rfm_m: state.rfm.m,
    rfm_segment: state.rfm.segment,
    tags: currentTags(state),
    points_balance: state.points.balance?.v ?? 0,
    points_expires_at: chTimeOrNull(dateMs(state.points.expiresAt?.v ?? null)),
    attributes: attributesJson(state)
  }
}

/** GET /members/:id: profile, tags, RFM, tier with the next level and the spend still needed. */
export const publicProfile = (state: MemberState, ctx: MemberContext, now: number): object => {
  const program = ctx.program
  const tier = tierView(state, program, now)
  const purchases = purchaseStats(state)
  return {
    memberId: state.memberId,
    version: state.version,
    attributes: maskAttributes(freeAttributes(state)),
    timezone: memberTimeZone(state, program),
    locale: memberLocale(state, program),
    consent: { sms: consentOf(state, "sms"), email: consentOf(state, "email"), wechat: consentOf(state, "wechat") },
    registeredAt: isoOrNull(state.registeredAt),
    lastSeenAt: isoOrNull(state.lastSeenAt),
    tier: {
      id: tier.id,
      name: tier.level?.name ?? tier.id,
      since: isoOrNull(tier.since),
      basis: program.tiers.basis,
      basisSpend: tier.basis,
      next: tier.next === null ? null : { id: tier.next.id, name: tier.next.name, minSpend: tier.next.minSpend },
      spendToNext: tier.spendToNext
    },
    rfm: { r: state.rfm.r, f: state.rfm.f, m: state.rfm.m, segment: state.rfm.segment },
    purchase: {
      count: purchases.count,
      total: purchases.total,
      lastAt: isoOrNull(purchases.lastAt),
      averageOrder: purchases.averageOrder
    },
    spend365d: spend365d(state, now),
    points: { balance: state.points.balance?.v ?? 0, expiresAt: state.points.expiresAt?.v ?? null },
    tags: currentTags(state)
  }
}
