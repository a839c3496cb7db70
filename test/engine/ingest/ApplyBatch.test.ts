import { describe, expect, it } from "vitest"
import { BatchBuilder, type States } from "../../../engine/ingest/ApplyBatch.ts"
import { type JourneySet, TIMER_EVENT } from "../../../engine/journeys/Apply.ts"
import { emptyState, type MemberState } from "../../../engine/member/MemberState.ts"
import { currentTags } from "../../../engine/member/MemberState/Reads.ts"
import { ctx, event, journey } from "../journeys/runtime/fixtures.ts"

const WAIT = journey(`id: after-wait
name: 等待之後 (test)
status: active
category: transactional
trigger: { event: { type: test.go } }
steps:
  - { id: pause, wait: 3s }
  - { id: done, tag: { add: [waited] } }
`)

const set: JourneySet = {
  current: [{ journey: WAIT, version: "v1" }],
  versions: new Map([["v1", WAIT]]),
  templates: { email: new Map(), sms: new Map(), wechat: new Map() },
  brand: { name: "test", unsubscribeBase: "http://127.0.0.1/unsubscribe", unsubscribeKey: null },
  winners: new Map()
}

const store = (): States & { readonly get: (memberId: string) => MemberState } => {
  const states = new Map<string, MemberState>()
  return {
    take: (memberId) => states.get(memberId) ?? emptyState(memberId),
    put: (memberId, _partition, state) => void states.set(memberId, state),
    leave: () => undefined,
    get: (memberId) => states.get(memberId) ?? emptyState(memberId)
  }
}

/** Applies events one batch each, as ingestion does: each at its arrival. */
const apply = (states: States, item: { readonly event: ReturnType<typeof event>; readonly arrival: number }) => {
  const batch = new BatchBuilder(states, ctx, set, "TEST")
  batch.event(item.event, 0, item.arrival)
  return batch.finish()
}

describe("applying a batch", () => {
  const T = Date.parse("2026-06-01T04:00:00Z")

  const waiting = () => {
    const states = store()
    const applied = apply(states, { event: event("m1", "test.go", T), arrival: T })
    const request = applied.outgoing.map((o) => o.event).find((e) => e.type === "journey.timer.request")
    const due = Number(request?.properties["due"])
    expect(due).toBe(T + 3000)
    return { states, enrollmentId: String(request?.properties["enrollmentId"]), due }
  }

  const fired = (enrollmentId: string, due: number, at: number) =>
    event("m1", TIMER_EVENT, at, { journeyId: "after-wait", enrollmentId, due }, `fired-${due}`)

  it("a fired timer that reached the stream a little before its due time (another clock) still ends the wait", () => {
    const { states, enrollmentId, due } = waiting()
    // stamped by the NATS server 5 ms before the due time the firing engine judged by its clock
    apply(states, { event: fired(enrollmentId, due, due - 5), arrival: due - 5 })
    expect(currentTags(states.get("m1"))).toContain("waited")
  })

  it("a timer event for another due time changes nothing", () => {
    const { states, enrollmentId, due } = waiting()
    apply(states, { event: fired(enrollmentId, due + 60_000, due + 60_000), arrival: due + 60_000 })
    expect(currentTags(states.get("m1"))).not.toContain("waited")
  })
})

const TWO_WAITS = journey(`id: after-wait
name: 兩次等待 (test)
status: active
category: transactional
trigger: { event: { type: test.go } }
steps:
  - { id: pause, wait: 3s }
  - { id: again, wait: 3s }
  - { id: done, tag: { add: [waited] } }
`)

describe("profile rows", () => {
  const T = Date.parse("2026-06-01T04:00:00Z")
  const twoWaits: JourneySet = { ...set, current: [{ journey: TWO_WAITS, version: "v2" }], versions: new Map([["v2", TWO_WAITS]]) }
  const applyIn = (states: States, e: ReturnType<typeof event>, arrival: number) => {
    const batch = new BatchBuilder(states, ctx, twoWaits, "TEST")
    batch.event(e, 0, arrival)
    return batch.finish()
  }
  const timerOf = (applied: ReturnType<BatchBuilder["finish"]>) => {
    const request = applied.outgoing.map((o) => o.event).find((e) => e.type === "journey.timer.request")
    return { enrollmentId: String(request?.properties["enrollmentId"]), due: Number(request?.properties["due"]) }
  }

  it("a fired timer that only moves the journey on writes the state but no member_profiles row; one whose step changes the profile writes it", () => {
    const states = store()
    const entered = applyIn(states, event("m2", "test.go", T), T)
    expect(entered.profileRows).toHaveLength(1)
    const first = timerOf(entered)
    const versionBefore = states.get("m2").version

    const waitedOnce = applyIn(states, event("m2", TIMER_EVENT, first.due, { journeyId: "after-wait", ...first }, "fired-1"), first.due)
    expect(states.get("m2").version).toBeGreaterThan(versionBefore)
    expect(waitedOnce.profileRows).toEqual([])
    expect(waitedOnce.journeyRows.length).toBeGreaterThan(0)
    const second = timerOf(waitedOnce)
    expect(second.due).toBe(first.due + 3000)

    // The tag step changes the profile (its tags): the row is written.
    const tagged = applyIn(states, event("m2", TIMER_EVENT, second.due, { journeyId: "after-wait", ...second }, "fired-2"), second.due)
    expect(currentTags(states.get("m2"))).toContain("waited")
    expect(tagged.profileRows).toHaveLength(1)
    expect(tagged.profileRows[0]?.tags).toContain("waited")
  })
})

describe("a state written while a pass over every member is under way", () => {
  const T = Date.parse("2026-06-01T04:00:00Z")
  const unchanged = (state: MemberState) => ({ state, changed: false, applied: [], duplicates: [], derived: [] })

  it("says which marker its member is past when the batch writes it, and nothing is written for a stamp alone", () => {
    const states = store()
    const first = new BatchBuilder(states, ctx, set, "TEST")
    first.event(event("m3", "page.viewed", T), 0, T)
    first.finish()
    expect(states.get("m3").passed).toBeUndefined()
    const writtenBefore = states.get("m3")

    // Passed over at the marker at sequence 40 with no change, and nothing else of it in the batch: not written.
    const passOnly = new BatchBuilder(states, ctx, set, "TEST")
    passOnly.change("m3", 0, T + 1000, unchanged)
    passOnly.stamp("m3", 0, T + 1000, 40)
    expect(passOnly.finish().profileRows).toEqual([])
    expect(states.get("m3")).toBe(writtenBefore)

    // An event of it after the markers: the state written says it is past the latest of them.
    const eventPast = (markers: ReadonlyArray<number>, at: number) => {
      const batch = new BatchBuilder(states, ctx, set, "TEST")
      for (const seq of markers) batch.stamp("m3", 0, at - 1000, seq)
      batch.event(event("m3", "page.viewed", at), 0, at)
      batch.finish()
      return states.get("m3").passed
    }
    expect(eventPast([40], T + 2000)).toBe(40)
    expect(eventPast([55, 41], T + 4000)).toBe(55)
    // An older marker never takes it back.
    expect(eventPast([41], T + 6000)).toBe(55)
  })
})
