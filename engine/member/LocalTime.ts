/** Member-local calendar arithmetic over IANA time zones, with no library beyond Intl. */

const formatters = new Map<string, Intl.DateTimeFormat>()

const formatterFor = (timeZone: string): Intl.DateTimeFormat => {
  const cached = formatters.get(timeZone)
  if (cached !== undefined) return cached
  let formatter: Intl.DateTimeFormat
  try {
    formatter = new Intl.DateTimeFormat("en-US", {
      timeZone,
      hourCycle: "h23",
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
      hour: "2-digit",
      minute: "2-digit",
      second: "2-digit"
    })
  } catch {
    // Time zones are validated at the boundary; an unknown one here falls back to UTC rather than stop the engine.
    formatter = formatterFor("UTC")
  }
  formatters.set(timeZone, formatter)
  return formatter
}

export interface LocalDateTime {
  readonly year: number
  readonly month: number
  readonly day: number
  readonly hour: number
  readonly minute: number
  readonly second: number
}

// What format() gives for these options, in the usual case: it is formatToParts joined, so its
// fields are the parts' values. Anything else (a year before 1000, another ICU's punctuation) is
// read from formatToParts, which costs nearly three times as much.
const FORMATTED = /^(\d{2})\/(\d{2})\/(\d{4}), (\d{2}):(\d{2}):(\d{2})$/

/** What the time zone database says, straight from Intl: exact, and a few µs a call. */
const partsAt = (ms: number, timeZone: string): LocalDateTime => {
  const formatted = FORMATTED.exec(formatterFor(timeZone).format(new Date(ms)))
  if (formatted !== null) {
    return {
      year: Number(formatted[3]),
      month: Number(formatted[1]),
      day: Number(formatted[2]),
      hour: Number(formatted[4]),
      minute: Number(formatted[5]),
      second: Number(formatted[6])
    }
  }
  const parts: Record<string, number> = {}
  for (const part of formatterFor(timeZone).formatToParts(new Date(ms))) {
    if (part.type !== "literal") parts[part.type] = Number(part.value)
  }
  return {
    year: parts["year"] ?? 1970,
    month: parts["month"] ?? 1,
    day: parts["day"] ?? 1,
    hour: parts["hour"] ?? 0,
    minute: parts["minute"] ?? 0,
    second: parts["second"] ?? 0
  }
}

const exactOffset = (ms: number, timeZone: string): number => {
  const l = partsAt(ms, timeZone)
  const asUtc = Date.UTC(l.year, l.month - 1, l.day, l.hour, l.minute, l.second)
  return asUtc - (ms - (((ms % 1000) + 1000) % 1000))
}

/**
 * Offsets by time zone and quarter hour of UTC. Intl was the largest single cost of running journeys
 * (every date trigger asks for the member's local day); an offset is the same for a whole quarter
 * hour except where a transition falls inside it, which the check at both ends catches (such a
 * quarter hour is answered by Intl each time).
 */
const QUARTER_HOUR = 15 * 60_000
const offsets = new Map<string, Map<number, number>>()

/** Local wall time minus UTC at the instant `ms`, in ms. */
export const offsetAt = (ms: number, timeZone: string): number => {
  const quarter = Math.floor(ms / QUARTER_HOUR)
  let zone = offsets.get(timeZone)
  if (zone === undefined) {
    zone = new Map()
    offsets.set(timeZone, zone)
  }
  let offset = zone.get(quarter)
  if (offset === undefined) {
    const start = exactOffset(quarter * QUARTER_HOUR, timeZone)
    offset = exactOffset((quarter + 1) * QUARTER_HOUR - 1000, timeZone) === start ? start : Number.NaN
    if (zone.size >= 100_000) zone.clear()
    zone.set(quarter, offset)
  }
  return Number.isNaN(offset) ? exactOffset(ms, timeZone) : offset
}

const DAY_MS = 86_400_000
/** The largest time value a Date holds. */
const MAX_TIME = 8.64e15

export interface CivilDate {
  readonly year: number
  readonly month: number
  readonly day: number
}

/**
 * The proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant's `civil_from_days`):
 * what Date's getUTC* give, without a Date, for any day a Date holds.
 */
export const civilFromDays = (days: number): CivilDate => {
  const z = days + 719_468
  const era = Math.floor(z / 146_097)
  const doe = z - era * 146_097
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36_524) - Math.floor(doe / 146_096)) / 365)
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100))
  const mp = Math.floor((5 * doy + 2) / 153)
  const month = mp < 10 ? mp + 3 : mp - 9
  return { year: yoe + era * 400 + (month <= 2 ? 1 : 0), month, day: doy - Math.floor((153 * mp + 2) / 5) + 1 }
}

/** Days since 1970-01-01 of a proleptic Gregorian date (`days_from_civil`); month 1–12, any day. */
export const daysFromCivil = (year: number, month: number, day: number): number => {
  const y = month <= 2 ? year - 1 : year
  const era = Math.floor(y / 400)
  const yoe = y - era * 400
  const doy = Math.floor((153 * (month > 2 ? month - 3 : month + 9) + 2) / 5) + day - 1
  return era * 146_097 + yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy - 719_468
}

/**
 * Date.UTC reads years 0–99 as 1900–1999; within these bounds (and whole numbers) the arithmetic
 * above gives exactly what Date.UTC does, outside them Date.UTC itself answers.
 */
export const plainYear = (year: number, month: number): boolean =>
  Number.isInteger(year) && year >= 100 && year <= 200_000 && Number.isInteger(month) && month >= 1 && month <= 12

// The last two answers: a write asks for the member's `now` and for one other instant (a tier
// date) again and again. The answers are read-only, so they can be handed out more than once.
let recentMs = Number.NaN
let recentZone = ""
let recentAnswer: LocalDateTime | undefined
let olderMs = Number.NaN
let olderZone = ""
let olderAnswer: LocalDateTime | undefined

export const localDateTime = (ms: number, timeZone: string): LocalDateTime => {
  if (ms === recentMs && timeZone === recentZone && recentAnswer !== undefined) return recentAnswer
  if (ms === olderMs && timeZone === olderZone && olderAnswer !== undefined) return olderAnswer
  const answer = computeLocalDateTime(ms, timeZone)
  olderMs = recentMs
  olderZone = recentZone
  olderAnswer = recentAnswer
  recentMs = ms
  recentZone = timeZone
  recentAnswer = answer
  return answer
}

const computeLocalDateTime = (ms: number, timeZone: string): LocalDateTime => {
  const t = ms + offsetAt(ms, timeZone)
  // Integer arithmetic instead of a Date: the same fields (Date truncates a fraction, so those go there).
  if (!Number.isInteger(t) || t > MAX_TIME || t < -MAX_TIME) {
    const local = new Date(t)
    return {
      year: local.getUTCFullYear(),
      month: local.getUTCMonth() + 1,
      day: local.getUTCDate(),
      hour: local.getUTCHours(),
      minute: local.getUTCMinutes(),
      second: local.getUTCSeconds()
    }
  }
  const days = Math.floor(t / DAY_MS)
  const inDay = t - days * DAY_MS
  const date = civilFromDays(days)
  return {
    year: date.year,
    month: date.month,
    day: date.day,
    hour: Math.floor(inDay / 3_600_000),
    minute: Math.floor((inDay % 3_600_000) / 60_000),
    second: Math.floor((inDay % 60_000) / 1000)
  }
}

const MONTH_DAYS = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]

const isLeap = (year: number): boolean => year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0)

export const daysInMonth = (year: number, month: number): number =>
  plainYear(year, month)
    ? month === 2 && isLeap(year) ? 29 : (MONTH_DAYS[month - 1] ?? 0)
    : new Date(Date.UTC(year, month, 0)).getUTCDate()

/** The instant of a member-local wall time; a day past the month's end (29 Feb) clamps to its last day. */
export const localInstant = (year: number, month: number, day: number, timeZone: string, hour = 0, minute = 0): number => {
  const clamped = Math.min(day, daysInMonth(year, month))
  const arithmetic = plainYear(year, month) && Number.isInteger(clamped) && Number.isInteger(hour) && Number.isInteger(minute)
    ? daysFromCivil(year, month, clamped) * DAY_MS + hour * 3_600_000 + minute * 60_000
    : Number.NaN
  const wall = Math.abs(arithmetic) <= MAX_TIME ? arithmetic : Date.UTC(year, month - 1, clamped, hour, minute)
  const first = wall - offsetAt(wall, timeZone)
  // A second pass settles instants near a DST change, where the offset at the guess differs.
  return wall - offsetAt(first, timeZone)
}

/** `YYYY-MM-DD` of an instant, member-local. */
export const localDateString = (ms: number, timeZone: string): string => {
  const l = localDateTime(ms, timeZone)
  return `${l.year}-${String(l.month).padStart(2, "0")}-${String(l.day).padStart(2, "0")}`
}
