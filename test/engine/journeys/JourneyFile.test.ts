import { join } from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { loadJourneys, validateDir } from "../../../engine/journeys/JourneyFile.ts"
import { JourneysInvalid } from "../../../schemas/Journey.ts"
import { ROOT } from "../../support/engine.ts"
import { edit, positionOf, VALID_JOURNEY, validFolder } from "./fixtures.ts"

const SHIPPED = join(ROOT, "journeys")

/** Validates a folder holding the valid journey with `journey` as its text; returns error lines. */
const errorsOf = (journey: string, changes: Readonly<Record<string, string | null>> = {}) =>
  Effect.gen(function* () {
    const dir = validFolder({ "spring-sale.yaml": journey, ...changes })
    const report = yield* validateDir(dir)
    const file = join(dir, "spring-sale.yaml")
    return { file, dir, errors: report.errors.map((i) => `${i.file}:${i.line}:${i.column}: ${i.message}`), report }
  })

describe("validating journeys", () => {
  it.effect("the shipped journeys, program and templates validate with no errors and no warnings", () =>
    Effect.gen(function* () {
      const report = yield* validateDir(SHIPPED)
      expect(report.errors).toEqual([])
      expect(report.warnings).toEqual([])
      expect(report.journeys.map((j) => j.id).sort()).toEqual([
        "birthday-reward",
        "churn-recall",
        "points-expiry-reminder",
        "tier-downgrade-warning",
        "tier-upgrade-nudge",
        "welcome-series"
      ])
    }))

  it.effect("loadJourneys returns decoded journeys: durations in ms, defaults filled, steps narrowed by action", () =>
    Effect.gen(function* () {
      const loaded = yield* loadJourneys(SHIPPED)
      expect(loaded.program.currency).toBe("CNY")
      const birthday = loaded.journeys.find((j) => j.id === "birthday-reward")
      expect(birthday?.trigger).toEqual({ date: { attribute: "birthday", offsetDays: 0, at: "09:00" } })
      expect(birthday?.reentry).toEqual({ after: 300 * 86_400_000 })
      expect(birthday?.experiment).toEqual({
        control: 10,
        variants: [{ id: "points", weight: 50 }, { id: "gift", weight: 50 }],
        winner: { after: 21 * 86_400_000, minPerVariant: 500 }
      })
      expect(birthday?.steps[0]).toEqual({
        id: "greet",
        send: { channel: "wechat", template: "birthday-greeting", fallback: ["sms", "email"], variant: { gift: { template: "birthday-gift" } } }
      })
      expect(birthday?.steps[2]).toEqual({ id: "pause", wait: 3 * 86_400_000 })
      const points = loaded.journeys.find((j) => j.id === "points-expiry-reminder")
      expect(points?.trigger).toEqual({ date: { attribute: "points.expiresAt", offsetDays: -14, at: "10:00" } })
      expect(loaded.templates.wechat.get("points-expiring")?.kind).toBe("template")
      expect(loaded.templates.sms.get("tier-upgrade-nudge")?.variables).toContain("member.spendToNext")
    }))

  it.effect("a small valid journey validates cleanly", () =>
    Effect.gen(function* () {
      const { errors, report } = yield* errorsOf(VALID_JOURNEY)
      expect(errors).toEqual([])
      expect(report.journeys.map((j) => j.id)).toEqual(["spring-sale"])
    }))

  it.effect("a misspelt key points at the key with a did-you-mean hint", () =>
    Effect.gen(function* () {
      const text = edit(VALID_JOURNEY, "      fallback: [email]", "      fallbak: [email]")
      const { file, errors } = yield* errorsOf(text)
      expect(errors).toEqual([`${file}:${positionOf(text, "fallbak")}: unknown key "fallbak" (did you mean "fallback"?)`])
    }))

  it.effect("a misspelt step action is reported with a did-you-mean over every action", () =>
    Effect.gen(function* () {
      const text = edit(VALID_JOURNEY, "    send: { channel: email", "    sned: { channel: email")
      const { file, errors } = yield* errorsOf(text)
      expect(errors).toEqual([`${file}:${positionOf(text, "sned")}: unknown key "sned" (did you mean "send"?)`])
    }))

  it.effect("a goto to a misspelt step id names the step it probably meant", () =>
    Effect.gen(function* () {
      const text = edit(VALID_JOURNEY, "goto: remind }", "goto: remnd }")
      const { file, errors } = yield* errorsOf(text)
      // `remind` is now unreached too, but the hint already explains it
      expect(errors).toEqual([`${file}:${positionOf(text, "remnd")}: no step "remnd" to go to (did you mean "remind"?)`])
    }))

  it.effect("a goto to a step that does not exist lists the steps there are", () =>
    Effect.gen(function* () {
      const text = edit(VALID_JOURNEY, "goto: done }", "goto: celebrate }")
      const { file, errors } = yield* errorsOf(text)
      expect(errors).toEqual([
        `${file}:${positionOf(text, "celebrate")}: no step "celebrate" to go to; steps: announce, pause, check, remind, done`
      ])
    }))

  it.effect("a step nothing leads to is reported as unreachable", () =>
    Effect.gen(function* () {
      const text = edit(VALID_JOURNEY, "  - { id: done, exit: true }\n", "  - { id: done, exit: true }\n  - { id: orphan, wait: 1d }\n")
      const { file, errors } = yield* errorsOf(text)
      expect(errors).toEqual([
        `${file}:${positionOf(text, "orphan")}: step "orphan" is never reached: no step before it falls through, jumps or branches to it`
      ])
    }))

  it.effect("experiment variant weights that do not sum to 100 are refused", () =>
    Effect.gen(function* () {
      const text = edit(VALID_JOURNEY, "{ id: bold, weight: 50 }", "{ id: bold, weight: 40 }")
      const { file, errors } = yield* errorsOf(text)
      expect(errors).toEqual([
        `${file}:${positionOf(text, "variants")}: variant weights sum to 90, not 100 (they split the members outside the 10% control group)`
      ])
    }))

  it.effect("split weights that do not sum to 100 are refused", () =>
    Effect.gen(function* () {
      const text = edit(VALID_JOURNEY, "  - { id: pause, wait: 2d }\n", "  - id: pause\n    split: [ { weight: 30, goto: check }, { weight: 60, goto: remind } ]\n")
      const { file, errors } = yield* errorsOf(text)
      expect(errors).toEqual([`${file}:${positionOf(text, "split")}: split weights sum to 90, not 100`])
    }))

  it.effect("a missing template for a fallback channel points at the fallback channel", () =>
    Effect.gen(function* () {
      const { file, dir, errors } = yield* errorsOf(VALID_JOURNEY, { "templates/email/spring-sale-bold.hbs": null })
      expect(errors).toEqual([
        `${file}:${positionOf(VALID_JOURNEY, "email]")}: fallback channel email needs template "spring-sale-bold": ${join(dir, "templates/email/spring-sale-bold.hbs")} does not exist (did you mean "spring-sale"?)`
      ])
    }))

  it.effect("a misspelt template name is reported with the template it probably meant", () =>
    Effect.gen(function* () {
      const text = edit(VALID_JOURNEY, "send: { channel: email, template: spring-sale }", "send: { channel: email, template: sprng-sale }")
      const { file, dir, errors } = yield* errorsOf(text)
      expect(errors).toEqual([
        `${file}:${positionOf(text, "sprng-sale")}: template "sprng-sale" not found: ${join(dir, "templates/email/sprng-sale.hbs")} does not exist (did you mean "spring-sale"?)`
      ])
    }))

  it.effect("a template using a variable the context does not provide is refused with a hint", () =>
    Effect.gen(function* () {
      const sms = "【{{brand.name}}】{{member.nmae}}，春季特賣開始了。\n"
      const { dir, errors } = yield* errorsOf(VALID_JOURNEY, { "templates/sms/spring-sale.hbs": sms })
      expect(errors).toEqual([
        `${join(dir, "templates/sms/spring-sale.hbs")}:${positionOf(sms, "member.nmae")}: unknown template variable "member.nmae" (did you mean "member.name"?)`
      ])
    }))

  it.effect("a duration that does not parse is reported at the value", () =>
    Effect.gen(function* () {
      const text = edit(VALID_JOURNEY, "wait: 2d", "wait: 2 days")
      const { file, errors } = yield* errorsOf(text)
      expect(errors).toEqual([`${file}:${positionOf(text, "2 days")}: "2 days" is not a duration (expected a number and a unit: 30m, 2h, 3d, 2w)`])
    }))

  it.effect("a cron expression that is not five valid fields is refused, naming the field", () =>
    Effect.gen(function* () {
      const text = edit(VALID_JOURNEY, '"0 10 * * 1"', '"0 25 * * 1"')
      const { file, errors } = yield* errorsOf(text)
      expect(errors).toEqual([`${file}:${positionOf(text, '"0 25')}: cron "0 25 * * 1": hour 25 is out of range 0-23`])
      const six = yield* errorsOf(edit(VALID_JOURNEY, '"0 10 * * 1"', '"0 0 10 * * 1"'))
      expect(six.errors[0]).toContain("has 6 fields; expected 5")
    }))

  it.effect("an unknown timezone gets an IANA suggestion", () =>
    Effect.gen(function* () {
      const text = edit(VALID_JOURNEY, "timezone: Asia/Shanghai", "timezone: Asia/Shanghia")
      const { file, errors } = yield* errorsOf(text)
      expect(errors).toEqual([`${file}:${positionOf(text, "Asia/Shanghia")}: unknown timezone "Asia/Shanghia": expected an IANA name (did you mean "Asia/Shanghai"?)`])
    }))

  it.effect("a trigger with two kinds and a step with two actions are each one plain error", () =>
    Effect.gen(function* () {
      const text = edit(
        edit(VALID_JOURNEY, '  schedule: { cron: "0 10 * * 1", timezone: Asia/Shanghai }', '  schedule: { cron: "0 10 * * 1" }\n  event: { type: purchase }'),
        "  - { id: pause, wait: 2d }",
        "  - { id: pause, wait: 2d, exit: true }"
      )
      const { file, errors } = yield* errorsOf(text)
      expect(errors).toEqual([
        `${file}:${positionOf(text, "schedule:")}: a trigger can have only one of event, segment, date, inactivity, schedule, got event and schedule`,
        `${file}:${positionOf(text, "{ id: pause")}: a step can have only one of send, wait, branch, split, tag, emit, goto, exit, got wait and exit`
      ])
    }))

  it.effect("the journey id must be the file name, and step ids must be unique", () =>
    Effect.gen(function* () {
      const text = edit(edit(VALID_JOURNEY, "id: spring-sale", "id: spring-sales"), "{ id: done, exit: true }", "{ id: pause, exit: true }")
      const { file, errors } = yield* errorsOf(text)
      expect(errors).toEqual([
        `${file}:1:5: journey id "spring-sales" must be its file name: rename the file to spring-sales.yaml or the id to "spring-sale"`,
        // the renamed step leaves "done" missing; the duplicate is reported where it repeats
        `${file}:${positionOf(text, "done")}: no step "done" to go to; steps: announce, pause, check, remind`,
        `${file}:${positionOf(text, "pause", 1)}: duplicate step id "pause" (first at line ${positionOf(text, "pause").split(":")[0]})`
      ])
    }))

  it.effect("condition typos are caught: reserved attribute paths, tier ids, since: entry in the audience", () =>
    Effect.gen(function* () {
      const text = edit(
        edit(VALID_JOURNEY, "{ attribute: tier, in: [gold, diamond] }", "{ attribute: tier, in: [gold, diamnd] }"),
        "    - { consent: any }",
        "    - { consent: any }\n    - { attribute: rfm.mm, gte: 3 }\n    - { event: purchase, since: entry }"
      )
      const { file, errors } = yield* errorsOf(text)
      expect(errors).toEqual([
        `${file}:${positionOf(text, "diamnd")}: unknown tier "diamnd" (did you mean "diamond"?)`,
        `${file}:${positionOf(text, "rfm.mm")}: unknown attribute "rfm.mm" (did you mean "rfm.m"?); known: rfm.r, rfm.f, rfm.m, rfm.segment`,
        `${file}:${positionOf(text, "entry }")}: since: entry counts events after the member entered; the trigger and audience are decided before that`
      ])
    }))

  it.effect("a variant override must name a declared variant", () =>
    Effect.gen(function* () {
      const text = edit(VALID_JOURNEY, "variant: { bold:", "variant: { bolt:")
      const { file, errors } = yield* errorsOf(text)
      expect(errors).toEqual([`${file}:${positionOf(text, "bolt")}: unknown variant "bolt" (did you mean "bold"?)`])
    }))

  it.effect("a loop with no wait in it is refused: a member would go round forever", () =>
    Effect.gen(function* () {
      const text = edit(VALID_JOURNEY, "  - { id: done, exit: true }\n", "  - { id: done, goto: remind }\n")
      const { file, errors } = yield* errorsOf(text)
      expect(errors).toEqual([`${file}:${positionOf(text, "id: remind")}: steps "done" → "remind" → "done" loop without a wait: a member would go round forever`])
    }))

  it.effect("several errors in several files are all reported, in file order", () =>
    Effect.gen(function* () {
      const dir = validFolder({
        "spring-sale.yaml": edit(edit(VALID_JOURNEY, "wait: 2d", "wait: 2x"), "channel: email, template", "channel: fax, template"),
        "second.yaml": edit(edit(VALID_JOURNEY, "id: spring-sale", "id: second"), "category: marketing", "category: promo"),
        "templates/sms/spring-sale.hbs": "{{#each member.tags}}{{this}}{{/each}}\n",
        "templates/email/spring-sale.hbs": "<p>no front matter</p>\n"
      })
      const report = yield* validateDir(dir)
      const files = report.errors.map((i) => i.file.slice(dir.length + 1))
      expect(files).toEqual([
        "second.yaml",
        "spring-sale.yaml",
        "spring-sale.yaml",
        "templates/email/spring-sale.hbs",
        "templates/sms/spring-sale.hbs"
      ])
      expect(report.errors.map((i) => i.message)).toEqual([
        'expected one of "marketing", "transactional", got "promo"',
        expect.stringContaining('"2x" is not a duration'),
        'expected one of "sms", "email", "wechat", got "fax"',
        expect.stringContaining("an email template starts with front matter"),
        "{{#each}} is not supported in templates: use {{#if}} or {{#unless}}"
      ])
      // the broken templates stay reported once: not again as "missing" from the journeys using them
      expect(report.journeys).toEqual([])
    }))

  it.effect("loadJourneys refuses an invalid folder with every issue, rendered file:line:column", () =>
    Effect.gen(function* () {
      const dir = validFolder({ "spring-sale.yaml": edit(VALID_JOURNEY, "wait: 2d", "wait: soon") })
      const error = yield* Effect.flip(loadJourneys(dir))
      expect(error).toBeInstanceOf(JourneysInvalid)
      expect(error.message).toBe(`${join(dir, "spring-sale.yaml")}:${positionOf(VALID_JOURNEY, "2d")}: "soon" is not a duration (expected a number and a unit: 30m, 2h, 3d, 2w)`)
    }))
})
