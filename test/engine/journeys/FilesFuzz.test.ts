import { describe, expect, it } from "@effect/vitest"
import { Either } from "effect"
import fc from "fast-check"
import { readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { stringify } from "yaml"
import { validateSources } from "../../../engine/journeys/JourneyFile.ts"
import { parseTemplate, type TemplateSource } from "../../../engine/journeys/Templates.ts"
import { renderTemplate } from "../../../engine/journeys/Templates/Render.ts"
import { parseProgram } from "../../../engine/program/ProgramFile.ts"
import type { Channel } from "../../../schemas/Program.ts"
import type { SourceIssue } from "../../../schemas/ProgramErrors.ts"
import { exampleContext } from "../../../schemas/TemplateContext.ts"
import { ROOT } from "../../support/engine.ts"

/**
 * Fuzz.test.ts damages journey files and email/SMS templates with a fixed generator. This covers
 * what it does not: WeChat YAML templates, email front matter of any shape, program.yaml, a whole
 * folder at once, and rendering. Every file, however broken, gives problems at a position in the
 * file, never a throw.
 */

const SHIPPED = join(ROOT, "journeys")
const runs = (numRuns: number) => ({ numRuns, seed: 6_0404 })

const shipped = (channel: Channel): ReadonlyArray<string> => {
  const dir = join(SHIPPED, "templates", channel)
  return readdirSync(dir).sort().map((name) => readFileSync(join(dir, name), "utf8"))
}
const PROGRAM = readFileSync(join(SHIPPED, "program.yaml"), "utf8")
const JOURNEYS = readdirSync(SHIPPED).filter((f) => f.endsWith(".yaml") && f !== "program.yaml").sort()

const SPECIALS = ":{}[]-&*!|>'\"#%@`,?\t\r\n\\ {{}}#/^~.()=\u0000\u00a0\u2028\ufeff👩‍👩‍👧中"

/** One edit: delete, duplicate or swap text, insert a special character, or cut the file short. */
const edit = fc.tuple(fc.nat(), fc.nat(), fc.constantFrom("delete-line", "duplicate-line", "swap", "insert", "cut", "replace-value"), fc.constantFrom(...SPECIALS), fc.string({ maxLength: 12 }))
const applyEdit = (text: string, [a, b, kind, special, junk]: [number, number, string, string, string]): string => {
  const lines = text.split("\n")
  const i = text.length === 0 ? 0 : a % text.length
  switch (kind) {
    case "delete-line":
      lines.splice(a % lines.length, 1)
      return lines.join("\n")
    case "duplicate-line":
      lines.splice(b % (lines.length + 1), 0, lines[a % lines.length] ?? "")
      return lines.join("\n")
    case "swap":
      return text.slice(0, i) + text.charAt(i + 1) + text.charAt(i) + text.slice(i + 2)
    case "insert":
      return text.slice(0, i) + special + text.slice(i)
    case "cut":
      return text.slice(0, i)
    default: {
      // the value after a ':' on some line replaced by junk
      const n = a % lines.length
      const line = lines[n] ?? ""
      const colon = line.indexOf(":")
      lines[n] = colon < 0 ? junk : `${line.slice(0, colon + 1)} ${junk}`
      return lines.join("\n")
    }
  }
}
const damaged = (originals: ReadonlyArray<string>) =>
  fc.tuple(fc.constantFrom(...originals), fc.array(edit, { minLength: 1, maxLength: 4 })).map(([text, edits]) => edits.reduce(applyEdit, text))

const noise = fc.string({ unit: fc.constantFrom(...SPECIALS, "a", "b", "1", "kind", "data", "subject", "member.name", "if", "each", "else"), maxLength: 80 })
const yamlValue = fc.jsonValue({ maxDepth: 4 }).map((value) => stringify(value))

/** Issues point inside the file and say something. */
const positioned = (issues: ReadonlyArray<SourceIssue>, text: string): void => {
  const lines = text.split(/\r?\n|\r/).length
  for (const issue of issues) {
    expect(issue.line, issue.message).toBeGreaterThanOrEqual(1)
    expect(issue.line, issue.message).toBeLessThanOrEqual(lines + 1)
    expect(issue.column, issue.message).toBeGreaterThanOrEqual(1)
    expect(issue.message.trim().length).toBeGreaterThan(0)
  }
}

const checkTemplate = (channel: Channel, text: string) => {
  const source: TemplateSource = { channel, name: "fuzzed", file: `templates/${channel}/fuzzed`, text }
  const result = parseTemplate(source)
  positioned([...result.errors, ...result.warnings], text)
  if (result.errors.length === 0) expect(result.value?.channel).toBe(channel)
  return result
}

describe("damaged and random message templates and program files give problems, never a throw", () => {
  it("WeChat templates: the shipped ones damaged, random YAML, and the right keys with wrong values", () => {
    const wrongShape = fc
      .record({
        kind: fc.oneof(fc.constantFrom("template", "subscribe", "Template", ""), fc.jsonValue({ maxDepth: 1 })),
        templateId: fc.oneof(fc.string(), fc.jsonValue({ maxDepth: 1 })),
        url: fc.oneof(fc.constant("https://x.example/{{member.name}}"), fc.string(), fc.jsonValue({ maxDepth: 1 })),
        page: fc.oneof(fc.constant("pages/a?x={{event.orderId}}"), noise),
        miniprogram: fc.oneof(fc.record({ appid: fc.string(), pagepath: noise }), fc.jsonValue({ maxDepth: 2 })),
        data: fc.oneof(fc.dictionary(fc.string({ maxLength: 8 }), fc.oneof(noise, fc.jsonValue({ maxDepth: 2 })), { maxKeys: 4 }), fc.jsonValue({ maxDepth: 2 }))
      }, { requiredKeys: [] })
      .map((file) => stringify(file))
    let accepted = 0
    fc.assert(
      fc.property(fc.oneof(damaged(shipped("wechat")), wrongShape, yamlValue, noise), (text) => {
        if (checkTemplate("wechat", text).errors.length === 0) accepted++
      }),
      runs(600)
    )
    expect(accepted).toBeGreaterThan(0)
  })

  it("email templates: front matter of any shape, odd delimiters and line ends, Handlebars noise in the body", () => {
    const front = fc.oneof(
      fc.record({ subject: fc.oneof(noise, fc.jsonValue({ maxDepth: 1 })), from: fc.jsonValue({ maxDepth: 1 }), replyTo: fc.string() }, { requiredKeys: [] }).map((v) => stringify(v)),
      yamlValue,
      noise
    )
    const assembled = fc
      .tuple(fc.constantFrom("---", "--- ", "----", "", "\ufeff---", "---\t"), front, fc.constantFrom("---", "", "--", "---x"), noise, fc.constantFrom("\n", "\r\n", "\r"))
      .map(([open, matter, close, body, eol]) => [open, matter.trimEnd(), close, body].join(eol))
    fc.assert(
      fc.property(fc.oneof(damaged(shipped("email")), assembled), (text) => {
        checkTemplate("email", text)
      }),
      runs(600)
    )
  })

  it("SMS templates: Handlebars noise, unclosed and mismatched blocks, deep nesting", () => {
    fc.assert(
      fc.property(fc.oneof(damaged(shipped("sms")), noise), (text) => {
        checkTemplate("sms", text)
      }),
      runs(400)
    )
    // Handlebars' parser recurses per level (and takes seconds at a few thousand): a few sizes only.
    for (const levels of [200, 2_000]) {
      const result = checkTemplate("sms", `${"{{#if member.name}}".repeat(levels)}x${"{{/if}}".repeat(levels)}`)
      for (const error of result.errors) expect(error.message).toMatch(/^template syntax: /)
    }
  })

  it("program.yaml: the shipped one damaged, any YAML, and deep nesting are refused with issues", () => {
    const deep = fc.integer({ min: 1, max: 5_000 }).map((n) => `currency: ${"[".repeat(n)}${"]".repeat(n)}\n`)
    fc.assert(
      fc.property(fc.oneof(damaged([PROGRAM]), yamlValue, noise, deep), (text) => {
        const result = parseProgram(text, "program.yaml")
        if (Either.isLeft(result)) {
          expect(result.left.issues.length).toBeGreaterThan(0)
          positioned(result.left.issues, text)
        } else {
          expect(result.right.currency).toMatch(/^[A-Z]{3}$/)
        }
      }),
      runs(500)
    )
  })

  it("a whole journeys folder of damaged files validates to a report naming each problem's file", () => {
    const journeyTexts = JOURNEYS.map((file) => readFileSync(join(SHIPPED, file), "utf8"))
    const folder = fc.record({
      program: fc.oneof(fc.constant(PROGRAM), damaged([PROGRAM]), fc.constant(undefined)),
      journeys: fc.array(fc.tuple(fc.constantFrom(...JOURNEYS), fc.oneof(fc.constant(undefined), damaged(journeyTexts))), { maxLength: 4 }),
      templates: fc.array(fc.tuple(fc.constantFrom<Channel>("email", "sms", "wechat"), fc.string({ minLength: 1, maxLength: 10 }), noise), { maxLength: 4 })
    })
    fc.assert(
      fc.property(folder, ({ program, journeys, templates }) => {
        const files = new Map<string, string>()
        if (program !== undefined) files.set("journeys/program.yaml", program)
        for (const [file, text] of journeys) files.set(`journeys/${file}`, text ?? readFileSync(join(SHIPPED, file), "utf8"))
        const sources: Array<TemplateSource> = templates.map(([channel, name, text]) => ({ channel, name, file: `journeys/templates/${channel}/${name}`, text }))
        for (const source of sources) files.set(source.file, source.text)
        const report = validateSources({
          dir: "journeys",
          program: program === undefined ? undefined : { file: "journeys/program.yaml", text: program },
          journeys: journeys.map(([file]) => ({ file: `journeys/${file}`, text: files.get(`journeys/${file}`) ?? "" })),
          templates: sources,
          errors: [],
          warnings: []
        })
        for (const issue of [...report.errors, ...report.warnings]) {
          const text = files.get(issue.file)
          expect(text, `${issue.file} is one of the files`).toBeDefined()
          positioned([issue], text ?? "")
        }
        // A journey counts as valid only when nothing in its file is an error.
        for (const journey of report.journeys) expect(report.errors.some((e) => e.file === `journeys/${journey.id}.yaml`)).toBe(false)
      }),
      runs(150)
    )
  })

  it("rendering any template text with any values gives a message or a reason, never a throw", () => {
    const values = fc.record({ name: fc.string({ unit: "binary", maxLength: 20 }), points: fc.oneof(fc.double(), fc.integer()), orderId: fc.oneof(fc.string(), fc.constant(null)) })
    fc.assert(
      fc.property(fc.oneof(noise, damaged(shipped("sms")), damaged(shipped("email"))), values, fc.boolean(), (text, v, escape) => {
        const base = exampleContext()
        const context = { ...base, member: { ...base.member, name: v.name, points: v.points }, event: { orderId: v.orderId } }
        const result = renderTemplate(text, context, { escape, currency: "CNY", locale: "zh-CN", timeZone: "Asia/Shanghai" })
        expect(Either.isLeft(result) ? result.left.trim().length > 0 : typeof result.right === "string").toBe(true)
      }),
      runs(600)
    )
  })
})
