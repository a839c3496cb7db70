import type { DateAttribute, DateTrigger, Journey } from "../../../schemas/Journey.ts"
import { civilFromDays, daysFromCivil, daysInMonth, localDateTime, localInstant, plainYear } from "../../member/LocalTime.ts"
import { attributeValue, memberTimeZone, tierSince } from "../../member/MemberState/Reads.ts"
import type { Member } from "./Types.ts"

/**
 * Member-local calendar math for `date` triggers and `wait: {until}`. The member's own `timezone`
 * attribute, else the program's.
 */

export interface LocalDate {
  readonly year: number
  readonly month: number
  readonly day: number
}

export const dateKey = (d: LocalDate): string =>
  `${d.year}-${String(d.month).padStart(2, "0")}-${String(d.day).padStart(2, "0")}`

/** Days a Date can be away from 1970-01-01. */
const MAX_DAYS = 100_000_000

/** Calendar arithmetic on a local date (no time zone involved). */
export const addDays = (d: LocalDate, days: number): LocalDate => {
  const day = d.day + days
  // Day numbers instead of a Date: the same date wherever Date.UTC reads the year plainly.
  if (plainYear(d.year, d.month) && Number.isInteger(day)) {
    const n = daysFromCivil(d.year, d.month, day)
    if (Math.abs(n) <= MAX_DAYS) return civilFromDays(n)
  }
  const t = new Date(Date.UTC(d.year, d.month - 1, day))
  return { year: t.getUTCFullYear(), month: t.getUTCMonth() + 1, day: t.getUTCDate() }
}

export const timeZoneOf = (member: Member): string => memberTimeZone(member.state, member.ctx.program)

// The local date-time itself (read-only, and remembered by localDateTime): no copy per question.
export const today = (member: Member, now: number): LocalDate => localDateTime(now, timeZoneOf(member))

const clock = (hhmm: string): { readonly hour: number; readonly minute: number } => {
  const [h = "0", m = "0"] = hhmm.split(":")
  return { hour: Number(h), minute: Number(m) }
}

/** The next member-local `HH:MM` strictly after `now` (today if still ahead, else tomorrow). */
export const nextLocalTime = (member: Member, hhmm: string, now: number): number => {
  const tz = timeZoneOf(member)
  const { hour, minute } = clock(hhmm)
  const d = today(member, now)
  const todayAt = localInstant(d.year, d.month, d.day, tz, hour, minute)
  if (todayAt > now) return todayAt
  const t = addDays(d, 1)
  return localInstant(t.year, t.month, t.day, tz, hour, minute)
}

interface MonthDay {
  readonly month: number
  readonly day: number
}

const MONTH_DAYS_KEPT = 4096
const monthDays = new Map<string, MonthDay | null>()

const parseMonthDay = (value: string): MonthDay | null => {
  const match = /^(?:\d{4}-)?(\d{2})-(\d{2})/.exec(value)
  if (match === null) return null
  const month = Number(match[1])
  const day = Number(match[2])
  return month >= 1 && month <= 12 && day >= 1 && day <= 31 ? { month, day } : null
}

/**
 * The month and day of a date attribute: `birthday` (`MM-DD` or `YYYY-MM-DD`) and
 * `points.expiresAt` (a date string) as written; `tierSince` and `registeredAt` (instants) on the
 * member-local calendar. null when the member has none.
 */
/** attributeValue of a date attribute (what it answers for these four), without its general switch. */
const dateAttributeValue = (member: Member, attribute: DateAttribute, now: number): unknown => {
  const state = member.state
  switch (attribute) {
    case "birthday": {
      const value = state.attributes["birthday"]?.v
      return value === undefined ? null : value
    }
    case "tierSince":
      return tierSince(state)
    case "points.expiresAt":
      return state.points.expiresAt?.v ?? null
    case "registeredAt":
      return state.registeredAt
    default:
      return attributeValue(state, attribute, member.ctx, now)
  }
}

export const monthDayOf = (trigger: typeof DateTrigger.Type, member: Member, now: number): MonthDay | null => {
  const value = dateAttributeValue(member, trigger.attribute, now)
  if (typeof value === "number") {
    const l = localDateTime(value, timeZoneOf(member))
    return { month: l.month, day: l.day }
  }
  if (typeof value !== "string") return null
  // Every date trigger reads it on every event; many members share a birthday or an expiry date.
  // Only date-sized strings are kept (an expiresAt need only start with a date).
  if (value.length > 32) return parseMonthDay(value)
  const known = monthDays.get(value)
  if (known !== undefined) return known
  const parsed = parseMonthDay(value)
  if (monthDays.size >= MONTH_DAYS_KEPT) monthDays.clear()
  monthDays.set(value, parsed)
  return parsed
}

/** The day the month-day comes round in `year`: 29 February is 28 February in other years. */
const anniversary = (year: number, month: number, day: number): LocalDate => ({ year, month, day: Math.min(day, daysInMonth(year, month)) })

const sameDate = (a: LocalDate, b: LocalDate): boolean => a.year === b.year && a.month === b.month && a.day === b.day

export interface DateOccurrence {
  /** member-local YYYY-MM-DD of the entry day */
  readonly key: string
  /** the entry instant: `at` on that day, member-local */
  readonly at: number
}

const occurrenceOn = (trigger: typeof DateTrigger.Type, member: Member, d: LocalDate): DateOccurrence => {
  const { hour, minute } = clock(trigger.at)
  return { key: dateKey(d), at: localInstant(d.year, d.month, d.day, timeZoneOf(member), hour, minute) }
}

/** Today's entry, if today (member-local) is an entry day: the month-day plus offsetDays. */
export const occurrenceToday = (journey: Journey, member: Member, now: number): DateOccurrence | null => {
  if (!("date" in journey.trigger)) return null
  const trigger = journey.trigger.date
  const md = monthDayOf(trigger, member, now)
  if (md === null) return null
  const t = today(member, now)
  const base = addDays(t, -trigger.offsetDays)
  return sameDate(base, anniversary(base.year, md.month, md.day)) ? occurrenceOn(trigger, member, t) : null
}

/** The first entry day on or after today (member-local) whose date is not in `skip`. */
export const nextOccurrence = (journey: Journey, member: Member, now: number, skip: ReadonlyArray<string | null>): DateOccurrence | null => {
  if (!("date" in journey.trigger)) return null
  const trigger = journey.trigger.date
  const md = monthDayOf(trigger, member, now)
  if (md === null) return null
  const t = dateKey(today(member, now))
  // the offset may move the entry day into another year: start early enough to see it
  const spread = Math.ceil(Math.abs(trigger.offsetDays) / 365) + 1
  const year = today(member, now).year
  for (let y = year - spread; y <= year + spread + 1; y++) {
    const base = anniversary(y, md.month, md.day)
    const entry = addDays(base, trigger.offsetDays)
    const key = dateKey(entry)
    if (key >= t && !skip.includes(key)) return occurrenceOn(trigger, member, entry)
  }
  return null
}
