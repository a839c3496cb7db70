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

/** What the time zone database says, straight from Intl: exact, and several µs a call. */
const partsAt = (ms: number, timeZone: string): LocalDateTime => {
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

export const localDateTime = (ms: number, timeZone: string): LocalDateTime => {
  const local = new Date(ms + offsetAt(ms, timeZone))
  return {
    year: local.getUTCFullYear(),
    month: local.getUTCMonth() + 1,
    day: local.getUTCDate(),
    hour: local.getUTCHours(),
    minute: local.getUTCMinutes(),
    second: local.getUTCSeconds()
  }
}

export const daysInMonth = (year: number, month: number): number => new Date(Date.UTC(year, month, 0)).getUTCDate()

/** The instant of a member-local wall time; a day past the month's end (29 Feb) clamps to its last day. */
export const localInstant = (year: number, month: number, day: number, timeZone: string, hour = 0, minute = 0): number => {
  const wall = Date.UTC(year, month - 1, Math.min(day, daysInMonth(year, month)), hour, minute)
  const first = wall - offsetAt(wall, timeZone)
  // A second pass settles instants near a DST change, where the offset at the guess differs.
  return wall - offsetAt(first, timeZone)
}

/** `YYYY-MM-DD` of an instant, member-local. */
export const localDateString = (ms: number, timeZone: string): string => {
  const l = localDateTime(ms, timeZone)
  return `${l.year}-${String(l.month).padStart(2, "0")}-${String(l.day).padStart(2, "0")}`
}
