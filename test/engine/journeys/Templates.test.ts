import { join } from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either } from "effect"
import { validateDir } from "../../../engine/journeys/JourneyFile.ts"
import { loadTemplates, parseTemplate } from "../../../engine/journeys/Templates.ts"
import { renderTemplate } from "../../../engine/journeys/Templates/Render.ts"
import { smsCost } from "../../../engine/journeys/Templates/SmsSegments.ts"
import { exampleContext } from "../../../schemas/TemplateContext.ts"
import { edit, journeysFolder, positionOf, VALID_JOURNEY, validFolder } from "./fixtures.ts"

const issuesOf = (channel: "email" | "sms" | "wechat", text: string) => {
  const checked = parseTemplate({ channel, name: "t", file: "t", text })
  return {
    errors: checked.errors.map((i) => `${i.line}:${i.column}: ${i.message}`),
    warnings: checked.warnings.map((i) => `${i.line}:${i.column}: ${i.message}`),
    value: checked.value
  }
}

describe("message templates", () => {
  it.effect("templates are found per channel folder and parsed: email front matter, SMS text, WeChat fields", () =>
    Effect.gen(function* () {
      const dir = journeysFolder({
        "templates/email/hello.hbs": '---\nsubject: "你好 {{member.name}}"\nreplyTo: club@maison.example\n---\n<p>{{member.tierName}}</p>\n',
        "templates/sms/hello.hbs": "{{member.name}}，你好\n\n",
        "templates/wechat/hello.yaml": "kind: subscribe\ntemplateId: abc\npage: pages/index\ndata:\n  thing1: \"{{member.name}}\"\n",
        "templates/sms/notes.txt": "not a template"
      })
      const loaded = yield* loadTemplates(dir)
      expect(loaded.errors).toEqual([])
      expect(loaded.warnings.map((w) => `${w.file}: ${w.message}`)).toEqual([`${join(dir, "templates/sms/notes.txt")}: ignored: sms templates are named <name>.hbs`])
      expect(loaded.value?.email.get("hello")).toMatchObject({
        subject: "你好 {{member.name}}",
        replyTo: "club@maison.example",
        html: "<p>{{member.tierName}}</p>\n",
        variables: ["member.name", "member.tierName"]
      })
      expect(loaded.value?.sms.get("hello")?.text).toBe("{{member.name}}，你好")
      expect(loaded.value?.wechat.get("hello")).toMatchObject({ kind: "subscribe", templateId: "abc", page: "pages/index", data: { thing1: "{{member.name}}" } })
    }))

  it("a problem in an email body is reported at its line in the file, past the front matter", () => {
    const text = '---\nsubject: "Hi"\n---\n<p>one</p>\n<p>{{member.tier_name}}</p>\n'
    expect(issuesOf("email", text).errors).toEqual([
      `${positionOf(text, "member.tier_name")}: unknown template variable "member.tier_name" (did you mean "member.tierName"?)`
    ])
  })

  it("a problem in the front matter is reported at its line in the file", () => {
    const text = '---\nsubject: "Hi"\nreplyto: a@b.c\n---\n<p>x</p>\n'
    expect(issuesOf("email", text).errors).toEqual([`3:1: unknown key "replyto" (did you mean "replyTo"?)`])
  })

  it("a Handlebars syntax error names its line", () => {
    expect(issuesOf("sms", "line one\n{{#if member.name}}hello").errors).toEqual([
      "2:1: template syntax: Expecting 'OPEN_INVERSE_CHAIN', 'INVERSE', 'OPEN_ENDBLOCK', got 'EOF' (an unclosed {{, }} or {{#block}}?)"
    ])
  })

  it("only the documented helpers, with one value each, are allowed", () => {
    const text = "{{money member.spendToNext}} {{mony member.points}} {{date}} {{#if member.nextTierName}}{{member.nextTierName}}{{/if}}"
    expect(issuesOf("sms", text).errors).toEqual([
      `${positionOf(text, "{{mony")}: unknown helper "mony" (did you mean "money"?); helpers: money, date, tierName, plural`,
      `${positionOf(text, "{{date")}: {{date}} takes exactly 1 value, e.g. {{date member.pointsExpiresAt}}`
    ])
    expect(issuesOf("sms", "{{date member.birthday member.name}}").errors).toEqual(["1:1: {{date}} takes exactly 1 value, e.g. {{date member.pointsExpiresAt}}"])
  })

  it("event properties may be used; partials, @data and this may not", () => {
    expect(issuesOf("sms", "訂單{{event.orderId}}已發貨").errors).toEqual([])
    expect(issuesOf("sms", "{{> footer}} {{@index}} {{this}}").errors).toEqual([
      "1:1: a partial ({{> …}}) is not supported in templates: use variables, {{#if}} and {{#unless}}",
      '1:16: "@index" is not available in templates: name a variable such as member.name',
      '1:27: "this" is not available in templates: name a variable such as member.name'
    ])
  })

  it("an SMS whose fixed text already needs two segments is warned about, GSM-7 and UCS-2 alike", () => {
    const chinese = "【品牌】".padEnd(71, "好")
    expect(issuesOf("sms", chinese).warnings).toEqual([
      "1:1: the fixed text alone is 71 characters of UCS-2 (Chinese or other non-GSM text), over one SMS segment (70): it will be sent as 2 segments"
    ])
    expect(issuesOf("sms", "a".repeat(160)).warnings).toEqual([])
    expect(issuesOf("sms", "a".repeat(161)).warnings[0]).toContain("161 characters of GSM-7, over one SMS segment (160): it will be sent as 2 segments")
  })

  it("an SMS that fits alone but not with typical values filled in is warned about", () => {
    const text = `${"好".repeat(62)}{{member.name}}{{brand.name}}`
    expect(issuesOf("sms", text).warnings).toEqual([
      "1:1: with typical values this SMS is 71 characters of UCS-2 (Chinese or other non-GSM text), over one segment (70): it may be sent as 2 segments"
    ])
  })

  it("SMS segments follow GSM-7 160/153 and UCS-2 70/67, extension characters counting two", () => {
    expect(smsCost("a".repeat(160))).toMatchObject({ encoding: "GSM-7", segments: 1 })
    expect(smsCost("a".repeat(307))).toMatchObject({ encoding: "GSM-7", segments: 3 })
    expect(smsCost("€".repeat(80))).toMatchObject({ encoding: "GSM-7", length: 160, segments: 1 })
    expect(smsCost("好".repeat(70))).toMatchObject({ encoding: "UCS-2", segments: 1 })
    expect(smsCost("好".repeat(135))).toMatchObject({ encoding: "UCS-2", segments: 3 })
  })

  it("a WeChat subscribe message cannot carry a url, a template message cannot carry a page", () => {
    expect(issuesOf("wechat", 'kind: subscribe\ntemplateId: x\nurl: https://a.b\ndata: { thing1: "{{member.name}}" }\n').errors).toEqual([
      "3:1: a subscribe message opens a mini-program page: use page, not url"
    ])
    expect(issuesOf("wechat", 'kind: template\ntemplateId: x\npage: pages/a\ndata: { thing1: "{{member.nam}}" }\n').errors).toEqual([
      "3:1: a template message links with url or miniprogram: { appid, pagepath }, not page",
      '4:17: unknown template variable "member.nam" (did you mean "member.name"?)'
    ])
  })

  it.effect("a marketing journey sending a WeChat template message is warned about, a transactional one is not", () =>
    Effect.gen(function* () {
      const journey = edit(VALID_JOURNEY, "send: { channel: email, template: spring-sale }", "send: { channel: wechat, template: notice }")
      const wechat = "kind: template\ntemplateId: x\ndata: { thing1: \"{{member.name}}\" }\n"
      const marketing = yield* validateDir(validFolder({ "spring-sale.yaml": journey, "templates/wechat/notice.yaml": wechat }))
      expect(marketing.errors).toEqual([])
      expect(marketing.warnings.map((w) => `${w.line}:${w.column}: ${w.message}`)).toEqual([
        `${positionOf(journey, "notice")}: "notice" is a WeChat template message, which WeChat allows for service notices only; this journey is marketing: use a subscribe message (kind: subscribe) or make the journey transactional`
      ])
      const transactional = yield* validateDir(
        validFolder({ "spring-sale.yaml": edit(journey, "category: marketing", "category: transactional"), "templates/wechat/notice.yaml": wechat })
      )
      expect(transactional.errors).toEqual([])
      expect(transactional.warnings).toEqual([])
    }))

  it("rendering is strict: a missing value fails the message instead of sending a hole", () => {
    const options = { escape: false, currency: "CNY", locale: "zh-CN" }
    const rendered = renderTemplate("再消費{{money member.spendToNext}}即可升級{{member.nextTierName}}", exampleContext(), options)
    expect(rendered).toEqual(Either.right("再消費¥2,000即可升級鑽卡"))
    expect(renderTemplate("{{date member.pointsExpiresAt}}", exampleContext(), options)).toEqual(Either.right("2025年12月31日"))
    const missing = renderTemplate("訂單{{event.orderId}}", exampleContext(), options)
    expect(Either.isLeft(missing) && missing.left).toBe('missing variable "event.orderId" (line 1, column 5)')
    expect(renderTemplate("<p>{{member.name}}</p>", { ...exampleContext(), member: { ...exampleContext().member, name: "<b>" } }, { ...options, escape: true })).toEqual(
      Either.right("<p>&lt;b&gt;</p>")
    )
  })
})
