import { describe, expect, it } from "vitest"
import { localDateTime, localInstant, offsetAt } from "../../../engine/member/LocalTime.ts"

/** The member's wall clock, as Intl gives it: what the cached offsets must agree with. */
const formats = new Map<string, Intl.DateTimeFormat>()
const intlWall = (ms: number, timeZone: string) => {
  const format =
    formats.get(timeZone) ??
    new Intl.DateTimeFormat("en-US", { timeZone, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" })
  formats.set(timeZone, format)
  const parts = format.formatToParts(new Date(ms))
  const get = (type: string) => Number(parts.find((p) => p.type === type)?.value)
  return { year: get("year"), month: get("month"), day: get("day"), hour: get("hour"), minute: get("minute"), second: get("second") }
}

const ZONES = ["Asia/Shanghai", "Asia/Taipei", "UTC", "America/New_York", "Europe/London", "Australia/Lord_Howe", "Asia/Kathmandu", "America/St_Johns", "Pacific/Chatham", "America/Sao_Paulo"]

describe("member-local time", () => {
  it("agrees with Intl at every instant tried, DST changes and odd offsets included", () => {
    const instants: Array<number> = []
    // every 97 minutes 13 seconds across 2026, and around each quarter hour of the months with DST changes
    for (let ms = Date.UTC(2026, 0, 1); ms < Date.UTC(2027, 0, 1); ms += 5_833_000) instants.push(ms)
    for (const month of [2, 3, 9, 10]) {
      for (let quarter = 0; quarter < 4 * 24 * 31; quarter++) {
        for (const delta of [-1000, 0, 1000]) instants.push(Date.UTC(2026, month, 1) + quarter * 900_000 + delta)
      }
    }
    const wrong: Array<string> = []
    for (const zone of ZONES) {
      for (const ms of instants) {
        const ours = JSON.stringify(localDateTime(ms, zone))
        if (ours !== JSON.stringify(intlWall(ms, zone))) wrong.push(`${zone} ${new Date(ms).toISOString()}: ${ours}`)
      }
    }
    expect(instants.length * ZONES.length).toBeGreaterThan(300_000)
    expect(wrong).toEqual([])
  })

  it("finds the instant of a local wall time, on either side of a DST change", () => {
    // New York springs forward at 02:00 on 2026-03-08: 01:30 is EST, 03:30 EDT
    expect(new Date(localInstant(2026, 3, 8, "America/New_York", 1, 30)).toISOString()).toBe("2026-03-08T06:30:00.000Z")
    expect(new Date(localInstant(2026, 3, 8, "America/New_York", 3, 30)).toISOString()).toBe("2026-03-08T07:30:00.000Z")
    expect(new Date(localInstant(2026, 5, 17, "Asia/Shanghai")).toISOString()).toBe("2026-05-16T16:00:00.000Z")
    expect(offsetAt(Date.UTC(2026, 6, 1), "Asia/Kathmandu")).toBe(5.75 * 3_600_000)
  })
})
