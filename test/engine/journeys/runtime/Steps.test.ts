import { describe, expect, it } from "vitest"
import {
  type Action,
  advance,
  emptySlot,
  type Enrollment,
  handleEvent,
  handleTimer,
  handleTrigger,
  type JourneySlot,
  type Member,
  onEvent,
  onTimer
} from "../../../../engine/journeys/Machine.ts"
import type { Journey } from "../../../../schemas/Journey.ts"
import { DAY, event, HOUR, journeyWith, member, MINUTE, NOW, OPTIONS, purchase, registered, withEvents } from "./fixtures.ts"

const onSignal = (steps: string, head = "") => journeyWith(`trigger:\n  event: { type: signal }\n${head}`, steps)

/** Enters `m` through a `signal` event and runs to the first wait. */
const enter = (j: Journey, m: Member, now = NOW, id?: string) => {
  const e = event(m.state.memberId, "signal", now, { plan: "gold" }, id)
  return handleEvent(j, emptySlot, e, withEvents(m, [e], now), now, OPTIONS)
}

const stepsOf = (actions: ReadonlyArray<Action>) => actions.flatMap((a) => (a.kind === "step" ? [`${a.stepId}:${a.outcome}`] : []))
const active = (slot: JourneySlot): Enrollment => slot.active ?? expect.unreachable("no active enrollment")

describe("running steps", () => {
  it("send, tag and emit run in order until a wait, which asks for a timer", () => {
    const j = onSignal(`  - { id: hello, send: { channel: sms, template: hi, fallback: [email] } }
  - { id: mark, tag: { add: [greeted], remove: [cold] } }
  - { id: grant, emit: { type: reward.granted, properties: { amount: 500 } } }
  - { id: pause, wait: 3d }
  - { id: bye, send: { channel: email, template: bye } }`)
    const r = enter(j, member("m-1", []))
    expect(stepsOf(r.actions)).toEqual(["hello:queued", "mark:tagged", "grant:emitted", "pause:waiting"])
    expect(r.actions.find((a) => a.kind === "send")).toMatchObject({ channel: "sms", fallback: ["email"], template: "hi", suppressed: null, stepId: "hello" })
    expect(r.actions.find((a) => a.kind === "tag")).toMatchObject({ add: ["greeted"], remove: ["cold"] })
    expect(r.actions.find((a) => a.kind === "emit")).toMatchObject({ type: "reward.granted", properties: { amount: 500 } })
    expect(r.actions.find((a) => a.kind === "timer")).toMatchObject({ due: NOW + 3 * DAY })
    const e = active(r.slot)
    expect(e.wait).toEqual({ kind: "timer", stepId: "pause", due: NOW + 3 * DAY })
  })

  it("a duration wait resumes at its due time, not before, and falling off the end completes", () => {
    const j = onSignal("  - { id: pause, wait: 2h }\n  - { id: bye, send: { channel: email, template: bye } }")
    const m = member("m-1", [])
    const r = enter(j, m)
    const early = handleTimer(j, r.slot, NOW + 2 * HOUR, m, NOW + HOUR, OPTIONS)
    expect(early.actions).toEqual([])
    const stale = handleTimer(j, r.slot, NOW + 5 * HOUR, m, NOW + 5 * HOUR, OPTIONS)
    expect(stale.actions).toEqual([])
    const done = handleTimer(j, r.slot, NOW + 2 * HOUR, m, NOW + 2 * HOUR, OPTIONS)
    expect(stepsOf(done.actions)).toEqual(["pause:elapsed", "bye:queued"])
    expect(done.slot.active).toBeNull()
    expect(done.slot.last).toMatchObject({ status: "completed", exitReason: "end", exitedAt: NOW + 2 * HOUR })
    expect(done.actions.at(-1)?.kind).toBe("ended")
  })

  it("wait until HH:MM waits for the next member-local time", () => {
    const j = onSignal('  - { id: morning, wait: { until: "10:00" } }\n  - { id: hi, send: { channel: sms, template: hi } }')
    // NOW is noon in Shanghai: tomorrow at 10:00
    expect(active(enter(j, member("m-1", [])).slot).wait?.due).toBe(Date.parse("2026-06-02T10:00:00+08:00"))
    // midnight UTC is 20:00 the day before in New York: 10:00 New York time the next day
    const ny = member("m-2", [registered("m-2", NOW, { timezone: "America/New_York" })])
    expect(active(enter(j, ny).slot).wait?.due).toBe(Date.parse("2026-06-01T10:00:00-04:00"))
  })

  it("a wait for an event resumes at onEvent when it comes, at onTimeout when it does not", () => {
    const j = onSignal(`  - id: listen
    wait: { event: purchase, where: { amount: { gte: 100 } }, timeout: 2d, onEvent: thanks, onTimeout: nudge }
  - { id: thanks, send: { channel: email, template: thanks } }
  - { id: done, exit: true }
  - { id: nudge, send: { channel: sms, template: nudge } }`)
    const m = member("m-1", [])
    const r = enter(j, m)
    expect(active(r.slot).wait).toMatchObject({ kind: "event", event: "purchase", due: NOW + 2 * DAY })
    const small = purchase("m-1", 50, NOW + HOUR)
    const ignored = handleEvent(j, r.slot, small, withEvents(m, [small], NOW + HOUR), NOW + HOUR, OPTIONS)
    expect(active(ignored.slot).stepId).toBe("listen")
    const big = purchase("m-1", 150, NOW + 2 * HOUR)
    const bought = handleEvent(j, ignored.slot, big, withEvents(m, [small, big], NOW + 2 * HOUR), NOW + 2 * HOUR, OPTIONS)
    expect(stepsOf(bought.actions)).toEqual(["listen:event", "thanks:queued", "done:exit"])
    expect(bought.slot.last?.status).toBe("completed")
    // the timeout of the wait already left is stale
    expect(handleTimer(j, bought.slot, NOW + 2 * DAY, m, NOW + 2 * DAY, OPTIONS).actions).toEqual([])
    const timedOut = handleTimer(j, r.slot, NOW + 2 * DAY, m, NOW + 2 * DAY, OPTIONS)
    expect(stepsOf(timedOut.actions)).toEqual(["listen:timeout", "nudge:queued"])
  })

  it("a branch takes the first arm whose condition holds, else the else arm", () => {
    const j = onSignal(`  - id: route
    branch:
      - { when: { attribute: event.plan, eq: gold }, goto: gold }
      - { when: { tag: vip }, goto: vip }
      - { else: true, goto: plain }
  - { id: gold, send: { channel: sms, template: gold } }
  - { id: stop, exit: true }
  - { id: vip, send: { channel: sms, template: vip } }
  - { id: plain, send: { channel: sms, template: plain } }`)
    expect(stepsOf(enter(j, member("m-1", [])).actions)).toEqual(["route:goto:gold", "gold:queued", "stop:exit"])
    const other = member("m-2", [])
    const e = event("m-2", "signal", NOW, { plan: "silver" })
    const r = handleEvent(j, emptySlot, e, withEvents(other, [e], NOW), NOW, OPTIONS)
    expect(stepsOf(r.actions)).toEqual(["route:goto:plain", "plain:queued"])
  })

  it("a step whose when is false is skipped", () => {
    const j = onSignal(`  - { id: only-buyers, when: { event: purchase }, send: { channel: sms, template: a } }
  - { id: everyone, send: { channel: sms, template: b } }`)
    expect(stepsOf(enter(j, member("m-1", [])).actions)).toEqual(["only-buyers:skipped", "everyone:queued"])
    expect(stepsOf(enter(j, member("m-2", [purchase("m-2", 10, NOW - DAY)])).actions)).toEqual(["only-buyers:queued", "everyone:queued"])
  })

  it("a split sends each member down one arm, the same one every time, by weight", () => {
    const j = onSignal(`  - id: ab
    split:
      - { weight: 30, goto: a }
      - { weight: 70, goto: b }
  - { id: a, send: { channel: sms, template: a } }
  - { id: end-a, exit: true }
  - { id: b, send: { channel: sms, template: b } }`)
    const armOf = (id: string) => stepsOf(enter(j, member(id, []), NOW, `sig-${id}`).actions)[0]
    const arms = Array.from({ length: 2000 }, (_, i) => armOf(`s-${i}`))
    const a = arms.filter((x) => x === "ab:goto:a").length
    expect(a / arms.length).toBeGreaterThan(0.27)
    expect(a / arms.length).toBeLessThan(0.33)
    expect(armOf("s-7")).toBe(arms[7])
  })

  it("goto loops get a new message id per visit, and a run is bounded", () => {
    const j = onSignal(`  - { id: ping, send: { channel: sms, template: ping } }
  - { id: rest, wait: 1d }
  - { id: again, goto: ping }`)
    const m = member("m-1", [])
    const r = enter(j, m)
    const t = handleTimer(j, r.slot, NOW + DAY, m, NOW + DAY, OPTIONS)
    const ids = [...r.actions, ...t.actions].flatMap((a) => (a.kind === "send" ? [a.messageId] : []))
    expect(ids).toHaveLength(2)
    expect(new Set(ids).size).toBe(2)
    expect(active(t.slot).visits).toMatchObject({ ping: 2, rest: 2, again: 1 })
    // a wait-less loop (which validation refuses) cannot spin forever
    const spin = onSignal("  - { id: a, goto: b }\n  - { id: b, goto: a }")
    expect(enter(spin, m).slot.last).toMatchObject({ status: "exited", exitReason: "loop-guard" })
  })

  it("advance leaves a waiting enrollment alone", () => {
    const j = onSignal("  - { id: pause, wait: 1d }\n  - { id: hi, send: { channel: sms, template: hi } }")
    const m = member("m-1", [])
    const e = active(enter(j, m).slot)
    expect(advance(j, e, m, NOW + 2 * DAY)).toEqual({ enrollment: e, actions: [] })
    expect(onTimer(j, e, e.wait?.due ?? 0, m, NOW + 2 * DAY).enrollment.status).toBe("completed")
  })
})

describe("exits and goals", () => {
  const j = onSignal(`  - { id: hello, send: { channel: sms, template: hi } }
  - { id: pause, wait: 10d }
  - { id: bye, send: { channel: sms, template: bye } }`, `exit:
  - { event: consent.updated, where: { granted: false } }
goal: { event: purchase, within: 14d }
reentry: afterExit`)

  it("an exit event ends the enrollment at once, mid-wait, and its timer is then stale", () => {
    const m = member("m-1", [])
    const r = enter(j, m)
    const granted = event("m-1", "consent.updated", NOW + DAY, { channel: "sms", granted: true })
    expect(handleEvent(j, r.slot, granted, m, NOW + DAY, OPTIONS).slot.active).not.toBeNull()
    const optOut = event("m-1", "consent.updated", NOW + DAY, { channel: "sms", granted: false })
    const out = handleEvent(j, r.slot, optOut, m, NOW + DAY, OPTIONS)
    expect(out.slot.active).toBeNull()
    expect(out.slot.last).toMatchObject({ status: "exited", exitReason: "event:consent.updated", exitedAt: NOW + DAY })
    expect(out.slot.lastExitAt).toBe(NOW + DAY)
    expect(handleTimer(j, out.slot, NOW + 10 * DAY, m, NOW + 10 * DAY, OPTIONS).actions).toEqual([])
  })

  it("a goal event inside the window converts once, with the purchase amount, even after the enrollment ended", () => {
    const m = member("m-1", [])
    const r = enter(j, m)
    const optOut = event("m-1", "consent.updated", NOW + DAY, { channel: "all", granted: false })
    const out = handleEvent(j, r.slot, optOut, m, NOW + DAY, OPTIONS)
    const p1 = purchase("m-1", 388, NOW + 13 * DAY)
    const c1 = handleEvent(j, out.slot, p1, m, NOW + 13 * DAY, OPTIONS)
    expect(c1.actions.filter((a) => a.kind === "conversion")).toEqual([
      { kind: "conversion", enrollmentId: r.slot.active?.id, variant: "default", eventId: p1.id, value: 388, at: NOW + 13 * DAY }
    ])
    const p2 = purchase("m-1", 100, NOW + 13.5 * DAY)
    expect(handleEvent(j, c1.slot, p2, m, NOW + 13.5 * DAY, OPTIONS).actions.filter((a) => a.kind === "conversion")).toEqual([])
  })

  it("a goal event after the window does not convert", () => {
    const m = member("m-1", [])
    const r = enter(j, m)
    const late = purchase("m-1", 388, NOW + 15 * DAY)
    const e = active(r.slot)
    expect(onEvent(j, e, late, m, NOW + 15 * DAY).enrollment.converted).toBeNull()
    const inside = purchase("m-1", 388, NOW + 14 * DAY)
    expect(onEvent(j, e, inside, m, NOW + 14 * DAY).enrollment.converted).toMatchObject({ eventId: inside.id })
  })
})

describe("a journey with no time-based trigger", () => {
  it("has nothing for the scheduler to do", () => {
    const j = onSignal("  - { id: hi, send: { channel: sms, template: hi } }")
    expect(handleTrigger(j, emptySlot, { kind: "date" }, member("m-1", []), NOW + MINUTE, OPTIONS).slot).toEqual(emptySlot)
  })
})
