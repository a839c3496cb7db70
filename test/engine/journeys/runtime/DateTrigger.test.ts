import { describe, expect, it } from "vitest"
import { considerEntry, emptySlot, handleEvent, handleTimer, handleTrigger, nextEntryTime, nextTick } from "../../../../engine/journeys/Machine.ts"
import { event, journeyWith, member, OPTIONS, purchase, registered, shipped, withEvents } from "./fixtures.ts"

const birthday = (audience = "") =>
  journeyWith(`trigger:\n  date: { attribute: birthday, at: "09:00" }\n${audience}\nreentry: { after: 300d }`, "  - { id: greet, send: { channel: sms, template: happy-birthday } }")

const at = (iso: string) => Date.parse(iso)

describe("birthday entry time, member-local", () => {
  it("in Asia/Shanghai (the program's time zone): 09:00 Shanghai on the birthday", () => {
    const m = member("m-sh", [registered("m-sh", at("2026-01-01T00:00:00+08:00"), { birthday: "1990-06-01" })])
    expect(nextEntryTime(birthday(), emptySlot, m, at("2026-05-20T12:00:00+08:00"))).toBe(at("2026-06-01T09:00:00+08:00"))
    // on the day, before 09:00: later today; after: due now (the same time, already past)
    expect(nextEntryTime(birthday(), emptySlot, m, at("2026-06-01T00:30:00+08:00"))).toBe(at("2026-06-01T09:00:00+08:00"))
    expect(considerEntry(birthday(), emptySlot, m, { kind: "date" }, at("2026-06-01T08:59:00+08:00"), OPTIONS).entered).toBeUndefined()
    const entered = considerEntry(birthday(), emptySlot, m, { kind: "date" }, at("2026-06-01T09:00:00+08:00"), OPTIONS)
    expect(entered.entered?.entryKey).toBe("date:2026-06-01")
    expect(nextEntryTime(birthday(), entered.slot, m, at("2026-06-01T09:00:00+08:00"))).toBe(at("2027-06-01T09:00:00+08:00"))
  })

  it("in America/New_York (the member's own time zone), across the date line from Shanghai", () => {
    const m = member("m-ny", [registered("m-ny", at("2026-01-01T00:00:00Z"), { birthday: "06-01", timezone: "America/New_York" })])
    // 10:00 on 1 June in Shanghai is still 22:00 on 31 May in New York
    const now = at("2026-06-01T10:00:00+08:00")
    expect(nextEntryTime(birthday(), emptySlot, m, now)).toBe(at("2026-06-01T09:00:00-04:00"))
    expect(considerEntry(birthday(), emptySlot, m, { kind: "date" }, now, OPTIONS).reason).toBe("not the day")
    expect(considerEntry(birthday(), emptySlot, m, { kind: "date" }, at("2026-06-01T09:00:00-04:00"), OPTIONS).entered).toBeDefined()
  })

  it("a member who becomes eligible later that day still enters that day, and not the next", () => {
    const j = birthday("audience: { attribute: purchase.count, gte: 1 }")
    let m = member("m-late", [registered("m-late", at("2026-01-01T00:00:00+08:00"), { birthday: "1990-06-01" })])
    const nine = at("2026-06-01T09:00:00+08:00")
    const tick = handleTrigger(j, emptySlot, { kind: "date" }, m, nine, OPTIONS)
    expect(tick.reason).toBe("not in the audience")
    // the scheduler moves on to next year, the day stays open to a later entry
    expect(nextEntryTime(j, tick.slot, m, nine)).toBe(at("2027-06-01T09:00:00+08:00"))
    const afternoon = at("2026-06-01T15:00:00+08:00")
    const p = purchase("m-late", 100, afternoon)
    m = withEvents(m, [p], afternoon)
    const later = handleEvent(j, tick.slot, p, m, afternoon, OPTIONS)
    expect(later.slot.entries).toBe(1)
    expect(later.actions.filter((a) => a.kind === "send")).toHaveLength(1)
    // another event that day does not enter again
    const again = event("m-late", "checkin", at("2026-06-01T18:00:00+08:00"))
    expect(handleEvent({ ...j, reentry: "always" }, later.slot, again, withEvents(m, [again], again.at), again.at, OPTIONS).slot.entries).toBe(1)
    // the next day is not the birthday
    const tomorrow = at("2026-06-02T10:00:00+08:00")
    const other = purchase("m-other", 100, tomorrow)
    const m2 = member("m-other", [registered("m-other", at("2026-01-01T00:00:00+08:00"), { birthday: "1990-06-01" }), other])
    expect(handleEvent(j, emptySlot, other, m2, tomorrow, OPTIONS).slot.entries).toBe(0)
  })

  it("a 29 February birthday comes round on 28 February in other years", () => {
    const m = member("m-leap", [registered("m-leap", at("2026-01-01T00:00:00+08:00"), { birthday: "2000-02-29" })])
    expect(nextEntryTime(birthday(), emptySlot, m, at("2027-01-10T00:00:00+08:00"))).toBe(at("2027-02-28T09:00:00+08:00"))
    expect(nextEntryTime(birthday(), emptySlot, m, at("2028-01-10T00:00:00+08:00"))).toBe(at("2028-02-29T09:00:00+08:00"))
  })

  it("offsetDays moves the entry day, e.g. 14 days before points expire", () => {
    const j = journeyWith('trigger:\n  date: { attribute: points.expiresAt, offsetDays: -14, at: "10:00" }', "  - { id: notice, send: { channel: sms, template: points } }")
    const m = member("m-pts", [event("m-pts", "points.changed", at("2026-05-01T10:00:00+08:00"), { delta: 500, balance: 500, expiresAt: "2026-07-15" })])
    expect(nextEntryTime(j, emptySlot, m, at("2026-06-01T12:00:00+08:00"))).toBe(at("2026-07-01T10:00:00+08:00"))
  })

  it("a member without the date attribute has no entry time", () => {
    const m = member("m-none", [registered("m-none", at("2026-01-01T00:00:00+08:00"))])
    expect(nextEntryTime(birthday(), emptySlot, m, at("2026-06-01T12:00:00+08:00"))).toBeNull()
  })
})

describe("cron ticks", () => {
  it("every Monday at 10:00 in the trigger's time zone", () => {
    expect(nextTick("0 10 * * 1", "Asia/Shanghai", at("2026-06-01T10:00:00+08:00"))).toBe(at("2026-06-08T10:00:00+08:00"))
    expect(nextTick("0 10 * * MON", "Asia/Shanghai", at("2026-06-01T09:59:00+08:00"))).toBe(at("2026-06-01T10:00:00+08:00"))
  })
  it("steps, ranges and lists", () => {
    expect(nextTick("*/15 9-10 * * *", "UTC", at("2026-06-01T10:50:00Z"))).toBe(at("2026-06-02T09:00:00Z"))
    expect(nextTick("5,35 * * JAN,JUN *", "UTC", at("2026-06-30T23:40:00Z"))).toBe(at("2027-01-01T00:05:00Z"))
  })
  it("a day-of-month and a day-of-week both restricted fire on either", () => {
    // 1 June 2026 is a Monday: the next Friday (5 June) comes before the 15th
    expect(nextTick("0 8 15 * 5", "UTC", at("2026-06-01T12:00:00Z"))).toBe(at("2026-06-05T08:00:00Z"))
  })
  it("a wall time a DST change skips is not a tick", () => {
    expect(nextTick("30 2 * * *", "America/New_York", at("2026-03-08T00:00:00-05:00"))).toBe(at("2026-03-09T02:30:00-04:00"))
  })
})

describe("the shipped birthday journey", () => {
  it("greets a gold member on the birthday, grants the reward, and checks back three days later", () => {
    const j = shipped("birthday-reward")
    const nine = at("2026-06-01T09:00:00+08:00")
    let m = member("m-gold", [
      registered("m-gold", at("2026-01-01T00:00:00+08:00"), { birthday: "1990-06-01" }),
      purchase("m-gold", 25_000, at("2026-03-01T12:00:00+08:00"))
    ], nine)
    const options = { version: "v1", globalControl: 0 }
    const r = handleTrigger(j, emptySlot, { kind: "date" }, m, nine, options)
    const kinds = r.actions.map((a) => (a.kind === "step" ? `${a.stepId}:${a.outcome}` : a.kind))
    expect(kinds.slice(0, 1)).toEqual(["enrolled"])
    expect(kinds).toContain("grant:emitted")
    expect(kinds.at(-1)).toBe("timer")
    const due = nine + 3 * 86_400_000
    const p = purchase("m-gold", 300, nine + 86_400_000)
    m = withEvents(m, [p], p.at)
    const bought = handleEvent(j, r.slot, p, m, p.at, options)
    expect(bought.actions.filter((a) => a.kind === "conversion")).toHaveLength(1)
    const after = handleTimer(j, bought.slot, due, m, due, options)
    expect(after.actions.flatMap((a) => (a.kind === "step" ? [`${a.stepId}:${a.outcome}`] : []))).toEqual(["pause:elapsed", "check:goto:done", "done:exit"])
    expect(after.slot.last?.status).toBe("completed")
  })
})
