import { describe, expect, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { parse } from "yaml"
import { demoJourneyText, demoProgramText, DEMO_RATE_LIMIT, scaleDuration, SHIPPED_JOURNEYS, writeDemoJourneys } from "../../../engine/demo/DemoJourneys.ts"
import { validateDir } from "../../../engine/journeys/JourneyFile.ts"
import { tempDir } from "../../support/engine.ts"

const DAY = 86_400_000
const shipped = (name: string) => readFileSync(join(SHIPPED_JOURNEYS, name), "utf8")

const demoFolder = (secondsPerDay: number) =>
  Effect.gen(function* () {
    const dir = join(tempDir("demo-journeys"), "journeys")
    const written = yield* writeDemoJourneys(SHIPPED_JOURNEYS, dir, secondsPerDay)
    const report = yield* validateDir(dir)
    return { written, report }
  })

describe("demo-timed journeys", () => {
  it("a day becomes the given number of seconds, never less than one second", () => {
    expect(scaleDuration("30d", 1)).toEqual(Either.right("30s"))
    expect(scaleDuration("2w", 1)).toEqual(Either.right("14s"))
    expect(scaleDuration("3d", 0.5)).toEqual(Either.right("2s"))
    expect(scaleDuration("30m", 1)).toEqual(Either.right("1s"))
    expect(scaleDuration("30d", 2)).toEqual(Either.right("60s"))
    expect(Either.isLeft(scaleDuration("thirty days", 1))).toBe(true)
  })

  it.effect("every shipped journey, demo-timed, still passes `memberflow validate` with its waits and goal windows in seconds", () =>
    Effect.gen(function* () {
      const { written, report } = yield* demoFolder(1)
      expect(report.errors).toEqual([])
      expect(report.journeys.map((j) => j.id).sort()).toEqual([
        "birthday-reward",
        "churn-recall",
        "points-expiry-reminder",
        "tier-downgrade-warning",
        "tier-upgrade-nudge",
        "welcome-series"
      ])
      const byId = new Map(report.journeys.map((j) => [j.id, j]))
      const waits = (id: string) =>
        (byId.get(id)?.steps ?? []).flatMap((step) => ("wait" in step ? [typeof step.wait === "number" ? step.wait : "until" in step.wait ? step.wait.until : step.wait.timeout] : []))
      expect(waits("churn-recall")).toEqual([30_000, 30_000])
      expect(waits("birthday-reward")).toEqual([3_000])
      expect(waits("welcome-series")).toEqual([2_000, 5_000])
      // "the next morning at 10:00" is at most a day away: one demo day
      expect(waits("tier-upgrade-nudge")).toEqual([1_000, 7_000])
      expect(byId.get("birthday-reward")?.goal?.within).toBe(14_000)
      expect(byId.get("churn-recall")?.goal?.within).toBe(30_000)
      expect(written.journeys.get("churn-recall")).toEqual(["to-day-60: wait 30d → 30s", "to-day-90: wait 30d → 30s", "goal within 30d → 30s"])
    }))

  it.effect("triggers, re-entry, audiences and experiments stay as shipped, so members enter as they would in production", () =>
    Effect.gen(function* () {
      const { report } = yield* demoFolder(1)
      const byId = new Map(report.journeys.map((j) => [j.id, j]))
      const churn = byId.get("churn-recall")
      expect(churn?.trigger).toEqual({ inactivity: { event: "purchase", for: 30 * DAY } })
      expect(churn?.experiment).toEqual({ control: 15, variants: [{ id: "recall", weight: 100 }] })
      const birthday = byId.get("birthday-reward")
      expect(birthday?.trigger).toEqual({ date: { attribute: "birthday", offsetDays: 0, at: "09:00" } })
      expect(birthday?.reentry).toEqual({ after: 300 * DAY })
      expect(birthday?.experiment?.control).toBe(10)
      expect(birthday?.experiment?.winner).toEqual({ after: 21 * DAY, minPerVariant: 500 })
      expect(byId.get("points-expiry-reminder")?.trigger).toEqual({ date: { attribute: "points.expiresAt", offsetDays: -14, at: "10:00" } })
      expect(byId.get("tier-upgrade-nudge")?.reentry).toEqual({ after: 30 * DAY })
    }))

  it("a demo-timed file says so at the top, and keeps the shipped comments", () => {
    const result = demoJourneyText(shipped("churn-recall.yaml"), "churn-recall.yaml", 1)
    if (Either.isLeft(result)) throw new Error(result.left)
    const text = result.right.text
    expect(text.split("\n")[0]).toContain("DEMO-TIMED by `memberflow demo`: 1 day = 1 s")
    expect(text).toContain("Do not deploy this copy")
    expect(text).toContain("# 流失召回")
    expect(text).toContain("inactivity: { event: purchase, for: 30d }")
    expect(text).toContain("{ id: to-day-60, wait: 30s }")
  })

  it("a wait for an event keeps its targets and has its timeout scaled", () => {
    const journey = [
      "id: reply",
      "name: reply",
      "status: active",
      "category: marketing",
      "trigger: { event: { type: member.registered } }",
      "steps:",
      "  - id: ask",
      "    wait: { event: purchase, timeout: 7d, onEvent: thanks, onTimeout: nudge }",
      "  - { id: thanks, exit: true }",
      "  - { id: nudge, exit: true }",
      ""
    ].join("\n")
    const result = demoJourneyText(journey, "reply.yaml", 2)
    if (Either.isLeft(result)) throw new Error(result.left)
    expect(result.right.changes).toEqual(["ask: wait timeout 7d → 14s"])
    expect(result.right.text).toContain("wait: { event: purchase, timeout: 14s, onEvent: thanks, onTimeout: nudge }")
  })

  it("a wait that is not a duration is refused with the file and step, not written half-scaled", () => {
    const journey = "id: bad\nsteps:\n  - { id: pause, wait: soon }\n"
    const result = demoJourneyText(journey, "bad.yaml", 1)
    expect(result).toEqual(Either.left('bad.yaml: pause: wait: "soon" is not a duration (expected a number and a unit: 30m, 2h, 3d, 2w)'))
  })

  it("the demo's program has no quiet hours and sandbox-sized rate limits; tiers, caps and the global control group stay", () => {
    const result = demoProgramText(shipped("program.yaml"), "program.yaml")
    if (Either.isLeft(result)) throw new Error(result.left)
    const demo = parse(result.right.text) as Record<string, Record<string, unknown>>
    const original = parse(shipped("program.yaml")) as Record<string, Record<string, unknown>>
    expect(demo["policies"]?.["quietHours"]).toBeUndefined()
    expect(demo["policies"]?.["rateLimits"]).toEqual({ sms: `${DEMO_RATE_LIMIT}/s`, email: `${DEMO_RATE_LIMIT}/s`, wechat: `${DEMO_RATE_LIMIT}/s` })
    expect(demo["policies"]?.["globalControl"]).toBe(5)
    expect(demo["policies"]?.["frequencyCaps"]).toEqual(original["policies"]?.["frequencyCaps"])
    expect(demo["tiers"]).toEqual(original["tiers"])
    expect(demo["rfm"]).toEqual(original["rfm"])
    expect(demo["tags"]).toEqual(original["tags"])
    expect(result.right.text.split("\n")[0]).toContain("DEMO copy written by `memberflow demo`")
    expect(result.right.changes.join("\n")).toContain("quiet hours follow the wall clock")
  })
})
