import { describe, expect, it } from "vitest"
import { applyEvents, clearOutbox, emptyState, type MemberState, parseState } from "../../../engine/member/MemberState.ts"
import { hasSeen, KEY_WIDTH, SEEN_KEYS, seenKeys } from "../../../engine/member/MemberState/Compact.ts"
import { shortHash } from "../../../engine/member/MemberState/Ids.ts"
import { ctx, event, NOW } from "./fixtures.ts"

const view = (i: number) => event("page.viewed", NOW - 1_000_000 + i, { page: `/p/${i}` }, { id: `view-${i}` })

/** Applied as the engine does, each batch's derived events published. */
const apply = (state: MemberState, batch: ReadonlyArray<ReturnType<typeof view>>) => {
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
})
