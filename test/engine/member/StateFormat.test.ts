import { readFileSync } from "node:fs"
import { join } from "node:path"
import { Schema } from "effect"
import { describe, expect, it } from "vitest"
import { countEvents } from "../../../engine/member/Conditions.ts"
import { applyEvents, clearOutbox, emptyState, type MemberState, MemberStateSchema, parseState, profileRow } from "../../../engine/member/MemberState.ts"
import { insertAt, isDated, KEY_WIDTH, keyIndex, NO_ENTRIES, NO_ITEMS, recentCount, recentEntries, recentWith } from "../../../engine/member/MemberState/Compact.ts"
import { RECENT_PER_TYPE, TIMES_PER_TYPE } from "../../../engine/member/MemberState/Facts.ts"
import { shortHash } from "../../../engine/member/MemberState/Ids.ts"
import { Condition } from "../../../schemas/Condition.ts"
import { ctx, DAY, event, NOW, purchase, refund } from "./fixtures.ts"
import { formerEvents } from "./formerFormat.ts"

/** Applies the events in batches as the engine does, publishing each batch's derived events. */
const build = (batches: ReadonlyArray<ReadonlyArray<(typeof formerEvents)[number]>>, from: MemberState = emptyState("m-1")): MemberState => {
  let state = from
  for (const batch of batches) {
    const result = applyEvents(state, batch, ctx, NOW)
    state = clearOutbox(result.state, result.state.outbox.map((e) => e.id))
  }
  return state
}
const formerBatches = [formerEvents.slice(0, 4), formerEvents.slice(4, 7), formerEvents.slice(7)]
const formerJson = readFileSync(join(import.meta.dirname, "formerFormat.json"), "utf8")

describe("the stored member state", () => {
  it("a state stored in the former format reads as the state the engine now builds from the same events", () => {
    const upgraded = parseState(formerJson)
    expect(upgraded).toEqual(build(formerBatches))
    expect(Schema.decodeUnknownSync(MemberStateSchema)(upgraded)).toEqual(upgraded)
    expect(profileRow(upgraded, ctx, NOW)).toEqual(profileRow(build(formerBatches), ctx, NOW))
    // what the upgrade turned into the compact parts
    expect(upgraded.seen.length % KEY_WIDTH).toBe(0)
    expect(formerEvents.every((e) => keyIndex(upgraded.seen, shortHash(e.id)) !== -1)).toBe(true)
    expect(upgraded.orders.at).toHaveLength(3)
    expect(recentEntries(upgraded.history["page.viewed"]!.recent)).toHaveLength(RECENT_PER_TYPE)
    expect(upgraded.history["page.viewed"]!.recent.split("\n").every((line) => typeof JSON.parse(line) === "object")).toBe(true)
  })

  it("an upgraded state goes on as if it had never been stored in the former format", () => {
    const later = [
      formerEvents[3]!, // a re-delivery from before the upgrade: a duplicate
      purchase("O-2", 900, NOW - 60 * DAY, "f-p2-again"), // the same order under another event id: a duplicate
      refund("O-1", 200.5, NOW - DAY, "f-ref-1"),
      purchase("O-4", 300, NOW - DAY, "f-p4"),
      event("page.viewed", NOW - 40 * DAY, { page: "/old" }, { id: "f-view-old" })
    ]
    const fromFormer = applyEvents(parseState(formerJson), later, ctx, NOW)
    const fromNew = applyEvents(build(formerBatches), later, ctx, NOW)
    expect(fromFormer.duplicates.map((e) => e.id)).toEqual(["f-p2", "f-p2-again"])
    expect(fromFormer.state).toEqual(fromNew.state)
    expect(profileRow(fromFormer.state, ctx, NOW)).toMatchObject({ purchase_count: 4, purchase_total: 1000 + 600 + 5000 + 300 })
  })

  it("an order known only from its refund is undated: null in the stored JSON, not a time in memory, and its purchase dates it", () => {
    const refunded = build([[purchase("O-1", 100, NOW - 3 * DAY, "u-p1"), refund("O-2", 40, NOW - 2 * DAY, "u-r2")]])
    const stored = JSON.parse(JSON.stringify(refunded)) as { orders: { at: Array<number | null> } }
    expect(stored.orders.at).toEqual([NOW - 3 * DAY, null])
    const read = parseState(JSON.stringify(refunded))
    expect(read.orders.at.map(isDated)).toEqual([true, false])
    expect(read).toEqual(refunded)
    // Nothing counts it until its purchase, which then counts net of the refund, once.
    expect(profileRow(read, ctx, NOW)).toMatchObject({ purchase_count: 1, purchase_total: 100 })
    const dated = applyEvents(read, [purchase("O-2", 300, NOW - DAY, "u-p2"), purchase("O-2", 300, NOW - DAY, "u-p2-again")], ctx, NOW)
    expect(dated.duplicates.map((e) => e.id)).toEqual(["u-p2-again"])
    expect(dated.state.orders.at).toEqual([NOW - 3 * DAY, NOW - DAY])
    expect(profileRow(dated.state, ctx, NOW)).toMatchObject({ purchase_count: 2, purchase_total: 100 + 260 })
  })

  it("a state in the current format reads back unchanged", () => {
    const state = build(formerBatches)
    expect(parseState(JSON.stringify(state))).toEqual(state)
  })

  it("an event id is seen only where a whole hash stands, not across two", () => {
    const state = build([[event("page.viewed", NOW, {}, { id: "a" }), event("page.viewed", NOW, {}, { id: "b" })]])
    const straddling = state.seen.slice(KEY_WIDTH / 2, KEY_WIDTH / 2 + KEY_WIDTH)
    expect(keyIndex(state.seen, straddling)).toBe(-1)
    expect(keyIndex(state.seen, shortHash("b"))).toBe(1)
    expect(keyIndex(state.seen + straddling, straddling)).toBe(2)
  })

  it("the kept properties stay with their events' times, whatever order the events come in, past the number kept", () => {
    // page views with a number in their properties, in a shuffled order, more than are kept
    const n = RECENT_PER_TYPE * 3
    const order = Array.from({ length: n }, (_, i) => (i * 37) % n)
    const views = order.map((i) => event("page.viewed", NOW - (n - i) * 3_600_000, { i, even: i % 2 === 0 }, { id: `v-${i}` }))
    // one at a time and all at once give the same state
    const oneByOne = build(views.map((view) => [view]))
    const atOnce = build([views])
    expect(oneByOne.history).toEqual(atOnce.history)
    const h = atOnce.history["page.viewed"]!
    expect(h.at).toEqual([...h.at].sort((a, b) => a - b))
    // the properties kept are the latest events', each at its own time's place
    const kept = recentEntries(h.recent).map((json) => JSON.parse(json) as { i: number })
    expect(kept.map((p) => p.i)).toEqual(Array.from({ length: RECENT_PER_TYPE }, (_, k) => n - RECENT_PER_TYPE + k))
    kept.forEach((_, k) => expect(h.at[h.at.length - RECENT_PER_TYPE + k]).toBe(NOW - (RECENT_PER_TYPE - k) * 3_600_000))
    // and `where` counts them by their own times: the even ones of the last 10 hours (51 to 59)
    const where = Schema.decodeUnknownSync(Condition)({ event: "page.viewed", where: { even: true }, within: "10h" })
    expect(countEvents(where as never, atOnce, { now: NOW, ctx })).toBe(4)
  })

  it("event times beyond the number kept drop the oldest, and properties stay aligned", () => {
    const views = Array.from({ length: TIMES_PER_TYPE + 5 }, (_, i) => event("checkin", NOW - (TIMES_PER_TYPE + 5 - i) * 60_000, { i }, { id: `c-${i}` }))
    const h = build([views]).history["checkin"]!
    expect(h.n).toBe(TIMES_PER_TYPE + 5)
    expect(h.at).toHaveLength(TIMES_PER_TYPE)
    expect(h.at[0]).toBe(NOW - TIMES_PER_TYPE * 60_000)
    expect(JSON.parse(recentEntries(h.recent).at(-1)!)).toEqual({ i: TIMES_PER_TYPE + 4 })
    expect(recentEntries(h.recent)).toHaveLength(RECENT_PER_TYPE)
  })

  it("keeps each event type's recent properties one line each in one string: inserted in place, the oldest dropped beyond the number kept", () => {
    expect(recentWith("", 0, 0, '{"a":1}', 3)).toBe('{"a":1}')
    expect(recentWith('{"a":1}', 1, 1, '{"a":2}', 3)).toBe('{"a":1}\n{"a":2}')
    expect(recentWith('{"a":1}\n{"a":3}', 2, 1, '{"a":2}', 3)).toBe('{"a":1}\n{"a":2}\n{"a":3}')
    expect(recentWith('{"a":2}\n{"a":3}', 2, 0, '{"a":1}', 3)).toBe('{"a":1}\n{"a":2}\n{"a":3}')
    expect(recentWith('{"a":1}\n{"a":2}\n{"a":3}', 3, 3, '{"a":4}', 3)).toBe('{"a":2}\n{"a":3}\n{"a":4}')
    expect(recentWith('{"a":1}\n{"a":3}\n{"a":4}', 3, 1, '{"a":2}', 3)).toBe('{"a":2}\n{"a":3}\n{"a":4}')
    expect(recentCount("")).toBe(0)
    expect(recentCount('{"a":1}\n{"a":2}\n{"a":3}')).toBe(3)
    expect(recentEntries("")).toEqual([])
  })

  it("a property with line breaks in it is kept whole, and counted by `where`", () => {
    const notes = ["first\nline", "second\r\nline", "third"].map((note, i) => event("note.added", NOW - (3 - i) * 60_000, { note, i }, { id: `n-${i}` }))
    const h = build([notes]).history["note.added"]!
    expect(recentEntries(h.recent).map((json) => JSON.parse(json) as { note: string })).toEqual(notes.map((e) => e.properties))
    const where = Schema.decodeUnknownSync(Condition)({ event: "note.added", where: { note: "second\r\nline" } })
    expect(countEvents(where as never, build([notes]), { now: NOW, ctx })).toBe(1)
  })

  it("states at rest share one empty list and one empty record, and each gets its own once something is written there", () => {
    const a = emptyState("m-a")
    const b = emptyState("m-b")
    expect(a.ruleTags).toBe(NO_ENTRIES)
    expect(b.outbox).toBe(NO_ITEMS)
    // Changed in place (owned), as the engine does: a manual tag and a purchase for one member only.
    const tagged = applyEvents(a, [event("tags.updated", NOW - DAY, { add: ["vip"] }, { memberId: "m-a" })], ctx, NOW, { owned: true }).state
    expect(Object.keys(tagged.manualTags)).toEqual(["vip"])
    expect(tagged.outbox.length).toBeGreaterThan(0)
    expect(b.manualTags).toEqual({})
    expect(NO_ENTRIES).toEqual({})
    expect(NO_ITEMS).toEqual([])
    // Emptied again, and parsed from JSON: the shared ones.
    const cleared = clearOutbox(tagged, tagged.outbox.map((e) => e.id))
    expect(cleared.outbox).toBe(NO_ITEMS)
    const parsed = parseState(JSON.stringify(cleared))
    expect(parsed.ruleTags).toBe(NO_ENTRIES)
    expect(parsed.journeys).toBe(NO_ENTRIES)
    expect(parsed.entryTimers).toBe(NO_ENTRIES)
    expect(parsed.rows).toBe(NO_ITEMS)
    expect(parsed.manualTags).not.toBe(NO_ENTRIES)
  })

  it("grows short arrays to exactly their length, and inserts in place", () => {
    expect(insertAt([1, 3], 1, 2)).toEqual([1, 2, 3])
    expect(insertAt([1, 2], 2, 3)).toEqual([1, 2, 3])
    expect(insertAt([], 0, "a")).toEqual(["a"])
    const long = Array.from({ length: 100 }, (_, i) => i * 2)
    expect(insertAt(long, 1, 1)).toBe(long)
    expect(long.slice(0, 3)).toEqual([0, 1, 2])
  })
})
