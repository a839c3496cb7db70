import { daysInMonth, localDateTime, localInstant } from "../../member/LocalTime.ts"

/**
 * When a `schedule` trigger's cron fires. Expressions were validated by JourneyFile/Cron.ts (five
 * fields, `*`, `a-b`, `/n`, lists, JAN–DEC and SUN–SAT); this expands them to sets and walks
 * local days. As in standard cron, when both day-of-month and day-of-week are restricted a day
 * matching either fires.
 */

const MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
const DAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]

const valueOf = (text: string, names: ReadonlyArray<string> | undefined, base: number): number => {
  if (/^\d+$/.test(text)) return Number(text)
  const index = names?.indexOf(text.toUpperCase()) ?? -1
  return index < 0 ? Number.NaN : index + base
}

const expand = (field: string, min: number, max: number, names?: ReadonlyArray<string>, base = 0): Set<number> => {
  const out = new Set<number>()
  for (const item of field.split(",")) {
    const [range = "*", stepText] = item.split("/")
    const step = stepText === undefined ? 1 : Number(stepText)
    let from = min
    let to = max
    if (range !== "*") {
      const [a = "", b] = range.split("-")
      from = valueOf(a, names, base)
      to = b === undefined ? (stepText === undefined ? from : max) : valueOf(b, names, base)
    }
    for (let v = from; v <= to; v += step) out.add(v)
  }
  return out
}

interface Cron {
  readonly minutes: ReadonlyArray<number>
  readonly hours: ReadonlyArray<number>
  readonly days: Set<number>
  readonly months: Set<number>
  readonly weekdays: Set<number>
  readonly anyDay: boolean
  readonly anyWeekday: boolean
}

const parse = (expression: string): Cron => {
  const [minute = "*", hour = "*", day = "*", month = "*", weekday = "*"] = expression.trim().split(/\s+/)
  const weekdays = expand(weekday, 0, 7, DAYS)
  if (weekdays.has(7)) weekdays.add(0)
  return {
    minutes: [...expand(minute, 0, 59)].sort((a, b) => a - b),
    hours: [...expand(hour, 0, 23)].sort((a, b) => a - b),
    days: expand(day, 1, 31),
    months: expand(month, 1, 12, MONTHS, 1),
    weekdays,
    anyDay: day.startsWith("*"),
    anyWeekday: weekday.startsWith("*")
  }
}

const dayMatches = (cron: Cron, year: number, month: number, day: number): boolean => {
  if (!cron.months.has(month)) return false
  const weekday = new Date(Date.UTC(year, month - 1, day)).getUTCDay()
  const byDay = cron.days.has(day)
  const byWeekday = cron.weekdays.has(weekday)
  if (cron.anyDay && cron.anyWeekday) return true
  if (cron.anyDay) return byWeekday
  if (cron.anyWeekday) return byDay
  return byDay || byWeekday
}

/** The first tick of `expression` in `timeZone` strictly after `after` (epoch ms); null if none within 5 years. */
export const nextTick = (expression: string, timeZone: string, after: number): number | null => {
  const cron = parse(expression)
  const start = localDateTime(after, timeZone)
  let { year, month, day } = start
  for (let i = 0; i < 366 * 5; i++) {
    if (dayMatches(cron, year, month, day)) {
      for (const hour of cron.hours) {
        for (const minute of cron.minutes) {
          const at = localInstant(year, month, day, timeZone, hour, minute)
          // a wall time skipped by a DST change lands elsewhere on the clock: it is not a tick
          const wall = localDateTime(at, timeZone)
          if (at > after && wall.hour === hour && wall.minute === minute) return at
        }
      }
    }
    day += 1
    if (day > daysInMonth(year, month)) {
      day = 1
      month += 1
      if (month > 12) {
        month = 1
        year += 1
      }
    }
  }
  return null
}
