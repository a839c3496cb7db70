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

export const localDateTime = (ms: number, timeZone: string): LocalDateTime => {
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

/** Local wall time minus UTC at the instant `ms`, in ms. */
export const offsetAt = (ms: number, timeZone: string): number => {
  const l = localDateTime(ms, timeZone)
  const asUtc = Date.UTC(l.year, l.month - 1, l.day, l.hour, l.minute, l.second)
  return asUtc - (ms - (((ms % 1000) + 1000) % 1000))
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
