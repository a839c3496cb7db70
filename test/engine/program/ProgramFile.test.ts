import { fileURLToPath } from "node:url"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { loadProgram } from "../../../engine/program/ProgramFile.ts"
import { ProgramInvalid } from "../../../schemas/ProgramErrors.ts"
import { positionOf, VALID_PROGRAM, writeProgram } from "./fixtures.ts"

const JOURNEYS_DIR = fileURLToPath(new URL("../../../journeys", import.meta.url))

/** Loads `text` as program.yaml and returns the rendered error a marketer would see. */
const failureOf = (text: string) =>
  Effect.gen(function* () {
    const { dir, file } = writeProgram(text)
    const error = yield* Effect.flip(loadProgram(dir))
    return { error, file, rendered: error.render() }
  })

describe("program.yaml", () => {
  it.effect("the shipped journeys/program.yaml loads with its tiers, RFM settings, tag rules and policies", () =>
    Effect.gen(function* () {
      const program = yield* loadProgram(JOURNEYS_DIR)
      expect(program.currency).toBe("CNY")
      expect(program.timezone).toBe("Asia/Shanghai")
      expect(program.tiers.levels.map((l) => [l.id, l.minSpend, l.keepSpend])).toEqual([
        ["classic", 0, undefined],
        ["silver", 5000, undefined],
        ["gold", 20000, undefined],
        ["diamond", 50000, 40000],
        ["black", 100000, 80000]
      ])
      expect(program.rfm.window).toBe(365 * 86_400_000)
      expect(program.rfm.recompute).toBe(3_600_000)
      expect(program.rfm.fixed?.recencyDays).toEqual([30, 90, 180, 365])
      expect(program.tags.map((t) => t.id)).toEqual(
        expect.arrayContaining(["high-value-low-engagement", "frequent-low-basket", "dormant-vip", "new-member"])
      )
      expect(program.policies.globalControl).toBe(5)
      expect(program.policies.quietHours).toEqual({ from: "21:00", to: "09:00", channels: ["sms", "wechat"], then: "defer" })
      expect(program.policies.frequencyCaps).toContainEqual({ channel: "sms", max: 1, per: 86_400_000 })
    }))

  it.effect("a small valid program loads and fills in the documented defaults", () =>
    Effect.gen(function* () {
      const program = yield* loadProgram(writeProgram(VALID_PROGRAM).dir)
      expect(program.tiers.basis).toBe("spend365d")
      expect(program.tiers.review).toBe("yearly")
      expect(program.rfm.window).toBe(365 * 86_400_000)
      expect(program.policies).toEqual({ globalControl: 0, frequencyCaps: [] })
    }))

  it.effect("a misspelt key is reported at the key with a did-you-mean hint", () =>
    Effect.gen(function* () {
      const text = VALID_PROGRAM.replace("      minSpend: 5000", "      minSpnd: 5000")
      const { error, file, rendered } = yield* failureOf(text)
      expect(error).toBeInstanceOf(ProgramInvalid)
      // line 9 is `      minSpnd: 5000`; the key starts in column 7
      expect(rendered).toBe(`${file}:9:7: unknown key "minSpnd" (did you mean "minSpend"?)`)
      expect(error.issues).toEqual([{ file, line: 9, column: 7, message: 'unknown key "minSpnd" (did you mean "minSpend"?)' }])
      // the error's message is the same text, so a failed startup log shows where to look
      expect(error.message).toBe(rendered)
    }))

  it.effect("a value of the wrong type is reported at the value", () =>
    Effect.gen(function* () {
      const text = VALID_PROGRAM.replace("minSpend: 20000", "minSpend: lots")
      const { file, rendered } = yield* failureOf(text)
      expect(rendered).toBe(`${file}:${positionOf(text, "lots")}: expected a number, got "lots"`)
    }))

  it.effect("a missing required key is reported at the mapping that lacks it", () =>
    Effect.gen(function* () {
      const text = VALID_PROGRAM.replace("timezone: Asia/Shanghai\n", "").replace(", name: 金卡", "")
      const { file, rendered } = yield* failureOf(text)
      expect(rendered).toBe(
        [
          `${file}:1:1: missing required key "timezone"`,
          `${file}:${positionOf(text, "{ id: gold")}: missing required key "name"`
        ].join("\n")
      )
    }))

  it.effect("a YAML syntax error is reported where the parser stopped", () =>
    Effect.gen(function* () {
      const text = VALID_PROGRAM.replace("  scores: quintiles", "  scores: quintiles: 5")
      const { file, rendered } = yield* failureOf(text)
      expect(rendered).toBe(`${file}:12:11: YAML syntax: Nested mappings are not allowed in compact mappings`)
    }))

  it.effect("a key written twice is a YAML error at the second one", () =>
    Effect.gen(function* () {
      const text = VALID_PROGRAM.replace("rfm:\n", "currency: HKD\nrfm:\n")
      const { file, rendered } = yield* failureOf(text)
      expect(rendered).toBe(`${file}:${positionOf(text, "currency", 1)}: YAML syntax: Map keys must be unique`)
    }))

  it.effect("tiers out of ascending order are reported at the offending minSpend", () =>
    Effect.gen(function* () {
      const text = VALID_PROGRAM.replace("minSpend: 20000, keepSpend: 15000", "minSpend: 4000, keepSpend: 3000")
      const { file, rendered } = yield* failureOf(text)
      expect(rendered).toBe(
        `${file}:${positionOf(text, "4000")}: tier "gold" minSpend 4000 must be greater than the tier before it ("silver", 5000): list levels in ascending order`
      )
    }))

  it.effect("the first tier must start at zero and keepSpend cannot exceed minSpend", () =>
    Effect.gen(function* () {
      const text = VALID_PROGRAM.replace("minSpend: 0 }", "minSpend: 100 }").replace("keepSpend: 15000", "keepSpend: 25000")
      const { file, rendered } = yield* failureOf(text)
      expect(rendered.split("\n")).toEqual([
        `${file}:${positionOf(text, "100 }")}: the first tier "classic" must start at minSpend 0, got 100`,
        `${file}:${positionOf(text, "25000")}: tier "gold" keepSpend 25000 is more than its minSpend 20000: staying must not cost more than reaching it`
      ])
    }))

  it.effect("a tag id used twice is reported at the second one, pointing back at the first", () =>
    Effect.gen(function* () {
      const text = VALID_PROGRAM.replace("id: new-member", "id: dormant-vip")
      const { file, rendered } = yield* failureOf(text)
      expect(rendered).toBe(`${file}:${positionOf(text, "dormant-vip", 1)}: duplicate tag id "dormant-vip" (first at line 14)`)
    }))

  it.effect("an unknown rfm attribute in a tag rule is reported with the known ones", () =>
    Effect.gen(function* () {
      const text = VALID_PROGRAM.replace("attribute: rfm.m", "attribute: rfm.x")
      const { file, rendered } = yield* failureOf(text)
      expect(rendered).toBe(
        `${file}:${positionOf(text, "rfm.x")}: unknown attribute "rfm.x" (did you mean "rfm.r"?); known: rfm.r, rfm.f, rfm.m, rfm.segment`
      )
    }))

  it.effect("free profile attributes such as city are allowed in tag rules", () =>
    Effect.gen(function* () {
      const text = VALID_PROGRAM.replace("attribute: rfm.m, gte: 4", "attribute: city, eq: 上海")
      const program = yield* loadProgram(writeProgram(text).dir)
      expect(program.tags[0]?.when).toEqual({
        all: [{ attribute: "city", eq: "上海" }, { event: "purchase", count: { lt: 1 }, within: 120 * 86_400_000 }]
      })
    }))

  it.effect("several problems in one file are all reported, in file order", () =>
    Effect.gen(function* () {
      const text = VALID_PROGRAM.replace("currency: CNY", "currency: 156")
        .replace("timezone: Asia/Shanghai", "timezone: Asia/Shanghai\nlocale: [zh-CN]")
        .replace("source: computed", "source: computd")
        .replace("      minSpend: 5000", "      minSpnd: 5000")
        .replace("within: 120d", "within: 4 months")
        .replace("{ event: member.registered", "{ evnt: member.registered")
      const { file, rendered } = yield* failureOf(text)
      expect(rendered.split("\n")).toEqual([
        `${file}:1:11: expected a string, got 156`,
        `${file}:3:9: expected a string, got a list`,
        `${file}:5:11: expected one of "computed", "external", got "computd" (did you mean "computed"?)`,
        `${file}:10:7: unknown key "minSpnd" (did you mean "minSpend"?)`,
        `${file}:${positionOf(text, "4 months")}: "4 months" is not a duration (expected a number and a unit: 30m, 2h, 3d, 2w)`,
        `${file}:${positionOf(text, "evnt")}: unknown key "evnt" (did you mean "event"?)`
      ])
    }))

  it.effect("scores: fixed without cut points, unordered cut points and a made-up timezone are refused", () =>
    Effect.gen(function* () {
      const text = VALID_PROGRAM.replace("timezone: Asia/Shanghai", "timezone: Asia/Shangai").replace(
        "  scores: quintiles",
        "  scores: fixed\n  fixed:\n    recencyDays: [30, 90, 180, 365]\n    frequency: [1, 4, 2, 8]\n    monetary: [1, 2, 3, 4]"
      )
      const { file, rendered } = yield* failureOf(text)
      expect(rendered.split("\n")).toEqual([
        `${file}:2:11: unknown timezone "Asia/Shangai": expected an IANA name (did you mean "Asia/Shanghai"?)`,
        `${file}:${positionOf(text, "2, 8]")}: frequency cut points must be ascending: 2 follows 4`
      ])
      const missing = yield* failureOf(VALID_PROGRAM.replace("  scores: quintiles", "  scores: fixed"))
      expect(missing.rendered).toBe(
        `${missing.file}:12:3: missing required key "fixed": scores: fixed needs cut points for recencyDays, frequency and monetary`
      )
    }))

  it.effect("duplicate frequency caps and a zero rate limit are refused", () =>
    Effect.gen(function* () {
      const text = `${VALID_PROGRAM}policies:
  frequencyCaps:
    - { channel: sms, max: 1, per: 1d }
    - { channel: sms, max: 2, per: 1d }
  rateLimits: { sms: 0/s }
`
      const { file, rendered } = yield* failureOf(text)
      expect(rendered.split("\n")).toEqual([
        `${file}:${positionOf(text, "{ channel: sms", 1)}: duplicate frequency cap for the same channel and period (first at line 23)`,
        `${file}:${positionOf(text, "0/s")}: a rate limit of 0/s would never send: use at least 1`
      ])
    }))

  it.effect("a directory without program.yaml is reported against the missing file", () =>
    Effect.gen(function* () {
      const { dir } = writeProgram("")
      const error = yield* Effect.flip(loadProgram(`${dir}/nowhere`))
      expect(error._tag).toBe("ProgramInvalid")
      expect(error.render()).toMatch(/nowhere\/program\.yaml:1:1: cannot read the program: ENOENT/)
    }))

  it.effect("an empty file says a mapping was expected", () =>
    Effect.gen(function* () {
      const { file, rendered } = yield* failureOf("# nothing yet\n")
      expect(rendered).toBe(`${file}:1:1: expected a mapping, got nothing`)
    }))
})
