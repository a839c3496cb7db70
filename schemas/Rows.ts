/**
 * Rows of the analyst tables (clickhouse.md), as written with JSONEachRow.
 * Times are `YYYY-MM-DD hh:mm:ss.sss` UTC strings (DateTime64(3, 'UTC')); see `chTime`.
 */

const DAY_MS = 86_400_000
/** 9999-12-31 23:59:59.999: the last instant with a four-digit year. */
const LAST_FOUR_DIGIT_YEAR = 253_402_300_799_999
// `YYYY-MM-DD ` by day number, direct-mapped: a batch's times fall on few days.
const DATE_SLOTS = 512
const slotDays = new Float64Array(DATE_SLOTS).fill(-1)
const slotDates: Array<string> = new Array<string>(DATE_SLOTS).fill("")
let lastMs = Number.NaN
let lastText = ""

const digit = (n: number): number => 48 + n

export const chTime = (ms: number): string => {
  if (ms === lastMs) return lastText
  if (!Number.isInteger(ms) || ms < 0 || ms > LAST_FOUR_DIGIT_YEAR) {
    const iso = new Date(ms).toISOString()
    // 2026-05-01T10:00:00.000Z → 2026-05-01 10:00:00.000 (years 0–9999; slicing beats two replaces)
    return `${iso.slice(0, 10)} ${iso.slice(11, 23)}`
  }
  // The date from Date once per day, the time of day by arithmetic, the text made in one piece:
  // the same characters as toISOString gives, without the intermediate strings.
  const day = Math.floor(ms / DAY_MS)
  const slot = day % DATE_SLOTS
  if (slotDays[slot] !== day) {
    slotDays[slot] = day
    slotDates[slot] = new Date(day * DAY_MS).toISOString().slice(0, 10)
  }
  const date = slotDates[slot]!
  let rest = ms - day * DAY_MS
  const hour = Math.floor(rest / 3_600_000)
  rest -= hour * 3_600_000
  const minute = Math.floor(rest / 60_000)
  rest -= minute * 60_000
  const second = Math.floor(rest / 1000)
  const milli = rest - second * 1000
  lastMs = ms
  lastText = String.fromCharCode(
    date.charCodeAt(0), date.charCodeAt(1), date.charCodeAt(2), date.charCodeAt(3), 45,
    date.charCodeAt(5), date.charCodeAt(6), 45, date.charCodeAt(8), date.charCodeAt(9), 32,
    digit(Math.floor(hour / 10)), digit(hour % 10), 58,
    digit(Math.floor(minute / 10)), digit(minute % 10), 58,
    digit(Math.floor(second / 10)), digit(second % 10), 46,
    digit(Math.floor(milli / 100)), digit(Math.floor(milli / 10) % 10), digit(milli % 10)
  )
  return lastText
}

export interface EventRow {
  readonly event_id: string
  readonly type: string
  readonly member_id: string
  readonly occurred_at: string
  readonly received_at: string
  readonly source: string
  readonly properties: string
  readonly amount: number | null
}

export interface RejectedEventRow {
  readonly rejection_id: string
  readonly received_at: string
  readonly subject: string
  readonly raw: string
  readonly reason: string
}

export interface MemberProfileRow {
  readonly member_id: string
  readonly version: number
  readonly updated_at: string
  readonly tier: string
  readonly tier_since: string | null
  readonly birthday: string
  readonly timezone: string
  readonly locale: string
  readonly consent_sms: number
  readonly consent_email: number
  readonly consent_wechat: number
  readonly registered_at: string | null
  readonly last_seen_at: string | null
  readonly last_purchase_at: string | null
  readonly purchase_count: number
  readonly purchase_total: number
  readonly spend_365d: number
  /** Purchases (net > 0) and net spend inside the RFM window: the F and M the scores rank. */
  readonly rfm_frequency: number
  readonly rfm_monetary: number
  readonly rfm_r: number
  readonly rfm_f: number
  readonly rfm_m: number
  readonly rfm_segment: string
  readonly tags: ReadonlyArray<string>
  readonly points_balance: number
  readonly points_expires_at: string | null
  /** Masked contact points and free attributes, JSON. Never a contact point in clear. */
  readonly attributes: string
}

export interface MemberTagRow {
  readonly event_id: string
  readonly member_id: string
  readonly tag: string
  readonly op: "add" | "remove"
  readonly at: string
  readonly source: string
}

/** journey_enrollments: one row per entry, latest state wins (ReplacingMergeTree on `version`). */
export interface JourneyEnrollmentRow {
  readonly enrollment_id: string
  readonly journey_id: string
  readonly journey_version: string
  readonly member_id: string
  readonly variant: string
  readonly entered_at: string
  readonly trigger_event_id: string
  readonly status: "active" | "completed" | "exited"
  readonly exited_at: string | null
  readonly exit_reason: string
  readonly version: number
}

export interface JourneyStepRow {
  readonly enrollment_id: string
  readonly journey_id: string
  readonly step_id: string
  readonly at: string
  readonly outcome: string
}

/** messages: one row per message, latest state wins. Contact points never appear here. */
export interface MessageRow {
  readonly message_id: string
  readonly enrollment_id: string
  readonly journey_id: string
  readonly variant: string
  readonly step_id: string
  readonly member_id: string
  readonly channel: string
  readonly template: string
  readonly status: "queued" | "sent" | "delivered" | "failed" | "suppressed"
  readonly reason: string
  readonly provider_message_id: string
  readonly created_at: string
  readonly updated_at: string
}

export interface ConversionRow {
  readonly journey_id: string
  readonly enrollment_id: string
  readonly variant: string
  readonly member_id: string
  readonly event_id: string
  readonly converted_at: string
  readonly value: number
}
