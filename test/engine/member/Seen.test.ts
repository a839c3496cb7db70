import { describe, expect, it } from "vitest"
import { applyEvents, clearOutbox, emptyState, type MemberState, parseState, profileRow } from "../../../engine/member/MemberState.ts"
import { hasSeen, KEY_WIDTH, orderIndex, SEEN_KEYS, seenKeys } from "../../../engine/member/MemberState/Compact.ts"
import { shortHash } from "../../../engine/member/MemberState/Ids.ts"
import { ctx, DAY, event, NOW, purchase, refund } from "./fixtures.ts"

const view = (i: number) => event("page.viewed", NOW - 1_000_000 + i, { page: `/p/${i}` }, { id: `view-${i}` })

/** Applied as the engine does, each batch's derived events published. */
const apply = (state: MemberState, batch: ReadonlyArray<ReturnType<typeof event>>) => {
  const result = applyEvents(state, batch, ctx, NOW)
  return { result, state: clearOutbox(result.state, result.state.outbox.map((e) => e.id)) }
}

describe("the applied event ids a member state keeps", () => {
  it("keeps the latest SEEN_KEYS in `seen` and the older ones in `seenBefore`, and knows every one of them again, one event at a time or in a batch", () => {
    let state = emptyState("m-1")
    for (let i = 0; i < 1_000; i++) state = apply(state, [view(i)]).state
    expect(state.seen.length).toBeLessThanOrEqual(SEEN_KEYS * KEY_WIDTH)
    expect(state.seen.length % KEY_WIDTH).toBe(0)
    expect(state.seenBefore!.length % KEY_WIDTH).toBe(0)
    const keys = seenKeys(state)
    expect(new Set(keys).size).toBe(keys.length)
    // Every event's id, and the engine's own events' (a new member's tag, say), each once.
    for (let i = 0; i < 1_000; i++) expect(hasSeen(state, shortHash(`view-${i}`))).toBe(true)
    expect(keys.length).toBeGreaterThanOrEqual(1_000)
    expect(hasSeen(state, shortHash("view-1000"))).toBe(false)
    // Re-delivered, oldest and newest, alone (searched) and in a large batch (a set of them): duplicates.
    for (const i of [0, 500, 999]) expect(apply(state, [view(i)]).result.duplicates.map((e) => e.id)).toEqual([`view-${i}`])
    const batch = [...Array.from({ length: 20 }, (_, k) => view(k * 50)), view(1_000)]
    const mixed = apply(state, batch)
    expect(mixed.result.duplicates).toHaveLength(20)
    expect(mixed.result.applied.map((e) => e.id)).toEqual(["view-1000"])
    // Read back from its JSON as it was.
    expect(parseState(JSON.stringify(state))).toEqual(state)
  })

  it("a state stored with every id in `seen` (before 2026-12-06, evening) moves them to `seenBefore` at its next event and still knows them", () => {
    let built = emptyState("m-1")
    for (let i = 0; i < 300; i++) built = apply(built, [view(i)]).state
    const keys = seenKeys(built)
    const { seenBefore: _, ...former } = { ...built, seen: keys.join("") }
    const read = parseState(JSON.stringify(former))
    expect(read.seenBefore).toBeUndefined()
    const next = apply(read, [view(300)]).state
    expect(next.seenBefore).toBe(keys.join(""))
    expect(seenKeys(next)).toEqual([...keys, ...next.seen.match(new RegExp(`.{${KEY_WIDTH}}`, "g"))!])
    expect(apply(next, [view(3)]).result.duplicates.map((e) => e.id)).toEqual(["view-3"])
  })

  it("keeps the latest orders' keys in `orders.k` and the older ones in `orders.kBefore`: refunds, duplicates and late purchases find the right order", () => {
    const at = (i: number) => NOW - 300 * DAY + i * 60_000
    let state = emptyState("m-1")
    // An order known only from its refund so far, then 299 purchases.
    state = apply(state, [refund("O-late", 30, at(0), "r-late")]).state
    for (let i = 1; i < 300; i++) state = apply(state, [purchase(`O-${i}`, 100, at(i), `p-${i}`)]).state
    const orders = state.orders
    expect(orders.kBefore!.length / KEY_WIDTH + orders.k.length / KEY_WIDTH).toBe(300)
    expect(orders.k.length).toBeLessThanOrEqual(SEEN_KEYS * KEY_WIDTH)
    expect(orders.amount).toHaveLength(300)
    for (let i = 1; i < 300; i += 37) expect(orderIndex(orders, shortHash(`O-${i}`))).toBe(i)
    expect(orderIndex(orders, shortHash("O-unknown"))).toBe(-1)
    // Refunds of an old and a recent order, the same order again under another event id, and the
    // purchase of the order refunded first.
    const later = apply(state, [
      refund("O-2", 40, at(400), "r-2"),
      refund("O-290", 25, at(401), "r-290"),
      purchase("O-5", 100, at(402), "p-5-again"),
      purchase("O-late", 80, at(403), "p-late")
    ])
    expect(later.result.duplicates.map((e) => e.id)).toEqual(["p-5-again"])
    const o = later.state.orders
    expect(o.refunded[2]).toBe(40)
    expect(o.refunded[290]).toBe(25)
    expect(o.at[0]).toBe(at(403))
    expect(o.amount[0]).toBe(80)
    expect(profileRow(later.state, ctx, NOW)).toMatchObject({ purchase_count: 300, purchase_total: 299 * 100 - 40 - 25 + (80 - 30) })
    expect(parseState(JSON.stringify(later.state))).toEqual(later.state)
  })
})
