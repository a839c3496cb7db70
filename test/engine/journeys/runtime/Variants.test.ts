import { describe, expect, it } from "vitest"
import { CONTROL, emptySlot, handleEvent, handleTrigger, inGlobalControl, variantOf } from "../../../../engine/journeys/Machine.ts"
import { DEFAULT_VARIANT } from "../../../../schemas/Journey.ts"
import { event, journeyWith, member, NOW, OPTIONS, registered, shipped } from "./fixtures.ts"

const ids = Array.from({ length: 20_000 }, (_, i) => `member-${i}`)

describe("variant assignment", () => {
  const birthday = shipped("birthday-reward")

  it("splits members by the experiment's control and weights, within 2% per arm over 20,000 members", () => {
    const counts = new Map<string, number>()
    for (const id of ids) {
      const v = variantOf(birthday, id)
      counts.set(v, (counts.get(v) ?? 0) + 1)
    }
    expect([...counts.keys()].sort()).toEqual(["control", "gift", "points"])
    expect(Math.abs((counts.get("control") ?? 0) / ids.length - 0.1)).toBeLessThan(0.02)
    expect(Math.abs((counts.get("points") ?? 0) / ids.length - 0.45)).toBeLessThan(0.02)
    expect(Math.abs((counts.get("gift") ?? 0) / ids.length - 0.45)).toBeLessThan(0.02)
  })

  it("is sticky: the same member gets the same variant every time", () => {
    for (const id of ids.slice(0, 200)) expect(variantOf(birthday, id)).toBe(variantOf(birthday, id))
  })

  it("is independent across journeys (a hash of journey id and member id)", () => {
    const other = { ...birthday, id: "birthday-reward-2" }
    const differ = ids.slice(0, 1000).filter((id) => variantOf(birthday, id) !== variantOf(other, id)).length
    expect(differ).toBeGreaterThan(300)
  })

  it("a journey with no experiment gives everyone the default variant", () => {
    expect(variantOf(shipped("welcome-series"), "member-1")).toBe(DEFAULT_VARIANT)
  })

  it("a declared winner goes to every non-control entrant", () => {
    const winners = ids.slice(0, 500).map((id) => variantOf(birthday, id, "gift"))
    expect(new Set(winners)).toEqual(new Set(["gift", CONTROL]))
  })
})

describe("global control group", () => {
  it("holds the configured percent of members, within 1%", () => {
    const held = ids.filter((id) => inGlobalControl(id, 5)).length
    expect(Math.abs(held / ids.length - 0.05)).toBeLessThan(0.01)
    expect(ids.filter((id) => inGlobalControl(id, 0))).toEqual([])
  })
})

describe("the control group", () => {
  const j = journeyWith(`trigger:\n  event: { type: signal }
experiment:
  control: 50
  variants:
    - { id: plain, weight: 50 }
    - { id: bold, weight: 50 }`, `  - id: hello
    send: { channel: sms, template: plain, variant: { bold: { template: bold } } }
  - { id: grant, emit: { type: reward.granted } }`)

  const run = (id: string) => {
    const m = member(id, [])
    const e = event(id, "signal", NOW, {}, `signal-${id}`)
    return handleEvent(j, emptySlot, e, m, NOW, OPTIONS)
  }

  it("is enrolled and receives only suppressed sends; variants get their own template", () => {
    const byVariant = new Map<string, ReturnType<typeof run>>()
    for (const id of ids.slice(0, 100)) byVariant.set(variantOf(j, id), run(id))
    const control = byVariant.get(CONTROL)
    expect(control?.slot.last?.variant).toBe(CONTROL)
    const sends = (r: ReturnType<typeof run> | undefined) => (r?.actions ?? []).filter((a) => a.kind === "send")
    expect(sends(control)).toMatchObject([{ suppressed: "control", template: "plain", variant: "control" }])
    expect(sends(byVariant.get("bold"))).toMatchObject([{ suppressed: null, template: "bold", variant: "bold" }])
    expect(sends(byVariant.get("plain"))).toMatchObject([{ suppressed: null, template: "plain", variant: "plain" }])
  })

  it("the same inputs twice give the same enrollment, message and emit ids", () => {
    const idsOf = (r: ReturnType<typeof run>) =>
      r.actions.flatMap((a) => (a.kind === "send" ? [a.messageId] : a.kind === "emit" ? [a.id] : a.kind === "enrolled" ? [a.enrollmentId] : []))
    const first = idsOf(run("member-42"))
    expect(first).toHaveLength(3)
    expect(idsOf(run("member-42"))).toEqual(first)
    expect(idsOf(run("member-43"))).not.toEqual(first)
  })
})

describe("the slot", () => {
  it("is plain JSON: it survives a round trip through the KV store", () => {
    const j = journeyWith(`trigger:\n  schedule: { cron: "0 10 * * 1" }`, "  - { id: pause, wait: 1d }")
    const m = member("m-1", [registered("m-1", NOW)])
    const r = handleTrigger(j, emptySlot, { kind: "schedule", tick: NOW }, m, NOW, OPTIONS)
    expect(JSON.parse(JSON.stringify(r.slot))).toEqual(r.slot)
    expect(r.slot.active?.wait?.due).toBe(NOW + 86_400_000)
  })
})
