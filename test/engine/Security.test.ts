import { describe, expect, it } from "@effect/vitest"
import { Either } from "effect"
import fc from "fast-check"
import { compose } from "../../channels/Compose.ts"
import { isLoopback, tokenMatches, urlHostFor } from "../../engine/AdminAuth.ts"
import { parseTemplate, type Templates } from "../../engine/journeys/Templates.ts"
import { exampleContext, type TemplateContext } from "../../schemas/TemplateContext.ts"

/**
 * Security rules that need no running engine. The engine-level ones are in
 * SecurityContactPoints.test.ts (contact points) and SecuritySecrets.test.ts (secrets, admin
 * tokens); Twilio forgeries and replays in Channels.test.ts; the SQL guard in
 * store/ReadOnlySql.test.ts; a missing and a longer token and the non-loopback bind in
 * AdminApi.test.ts.
 */

const EMAIL = `---
subject: "Hello {{member.name}}"
---
<p>Hello {{member.name}}</p>
<a href="https://maison.example/m?n={{member.name}}" title="{{member.name}}">you</a>
<p>{{event.note}}</p>
`
const SMS = "Hi {{member.name}} {{event.note}}\n"
const WECHAT = 'kind: template\ntemplateId: T1\ndata:\n  thing1: "{{member.name}}"\n'

const parsed = <C extends "email" | "sms" | "wechat">(channel: C, text: string) => {
  const result = parseTemplate({ channel, name: "t", file: `templates/${channel}/t`, text })
  expect(result.errors).toEqual([])
  return result.value
}
const templates = (): Templates => {
  const email = parsed("email", EMAIL)
  const sms = parsed("sms", SMS)
  const wechat = parsed("wechat", WECHAT)
  return {
    email: new Map(email?.channel === "email" ? [["t", email]] : []),
    sms: new Map(sms?.channel === "sms" ? [["t", sms]] : []),
    wechat: new Map(wechat?.channel === "wechat" ? [["t", wechat]] : [])
  }
}
const TEMPLATES = templates()

const contextFor = (name: string, note: string): TemplateContext => {
  const base = exampleContext()
  return { ...base, member: { ...base.member, name }, event: { note } }
}
const render = (channel: "email" | "sms" | "wechat", name: string, note = "n") =>
  compose(TEMPLATES, channel, "t", contextFor(name, note), { currency: "CNY", locale: "zh-CN" }, { messageId: "m1", memberId: "x", to: "someone" })

const emailOf = (name: string, note = "n") => {
  const message = render("email", name, note)
  if (Either.isLeft(message) || message.right.channel !== "email") throw new Error(`not rendered: ${JSON.stringify(message)}`)
  return message.right
}

const count = (text: string, char: string) => text.split(char).length - 1

describe("values in an email's HTML are escaped, whoever wrote them", () => {
  it("a member named <script>alert(1)</script> gets their name as text, not a script", () => {
    const email = emailOf("<script>alert(1)</script>", '"><img src=x onerror=alert(2)>')
    expect(email.html).not.toContain("<script")
    expect(email.html).not.toContain("<img")
    expect(email.html).toContain("Hello &lt;script&gt;alert(1)&lt;/script&gt;")
    // attribute context: the quote that would end href/title is escaped too
    expect(email.html).toContain('title="&lt;script&gt;alert(1)&lt;/script&gt;"')
    expect(email.html).toContain("&quot;&gt;&lt;img src&#x3D;x onerror&#x3D;alert(2)&gt;")
    // the text part reads as the name, literally
    expect(email.text).toContain("Hello <script>alert(1)</script>")
  })

  it("whatever a name or an event value holds, it adds no markup: < > \" ' ` = come only from the template", () => {
    const plain = emailOf("x", "y").html
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 40 }), fc.string({ unit: fc.constantFrom("<", ">", '"', "'", "`", "=", "&", "{{", "}}", "a", " "), maxLength: 30 }), (name, note) => {
        const html = emailOf(name, note).html
        for (const char of ["<", ">", '"', "'", "`", "="]) expect(count(html, char), char).toBe(count(plain, char))
        // a value that looks like Handlebars is not evaluated
        if (note.includes("{{")) expect(html).toContain("{{")
      }),
      { numRuns: 300, seed: 7 }
    )
  })

  it("SMS and WeChat carry the name as written: they are not HTML", () => {
    const sms = render("sms", "<b>Lily & Co</b>")
    expect(Either.isRight(sms) && sms.right.channel === "sms" && sms.right.body).toBe("Hi <b>Lily & Co</b> n")
    const wechat = render("wechat", "<b>Lily & Co</b>")
    expect(Either.isRight(wechat) && wechat.right.channel === "wechat" && wechat.right.data["thing1"]).toBe("<b>Lily & Co</b>")
  })
})

describe("the admin token comparison", () => {
  const TOKEN = "adm-Zq8Secret-Tok-4471-xyz"

  it("takes only `Bearer <the token>`, and a presented token of any length is compared without throwing", () => {
    expect(tokenMatches(`Bearer ${TOKEN}`, TOKEN)).toBe(true)
    expect(tokenMatches(`bearer   ${TOKEN}  `, TOKEN)).toBe(true)
    for (const header of [undefined, "", "Bearer", "Bearer ", `Bearer ${TOKEN.slice(0, -1)}`, `Bearer ${TOKEN}x`, `Bearer ${TOKEN.slice(0, 1)}`, `Basic ${TOKEN}`, TOKEN, `Bearer ${TOKEN.toUpperCase()}`, `Bearer ${"x".repeat(100_000)}`]) {
      expect(tokenMatches(header, TOKEN), String(header).slice(0, 40)).toBe(false)
    }
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 200 }), (presented) => {
        expect(tokenMatches(`Bearer ${presented}`, TOKEN)).toBe(presented.trim() === TOKEN)
      }),
      { numRuns: 500, seed: 11 }
    )
  })

  it("an empty configured token matches nothing, not even an empty one", () => {
    for (const header of ["Bearer ", "Bearer", "", undefined]) expect(tokenMatches(header, "")).toBe(false)
  })

  it("only loopback addresses count as loopback for binding without a token", () => {
    for (const host of ["127.0.0.1", "127.0.0.2", "::1", "localhost"]) expect(isLoopback(host), host).toBe(true)
    // a host name that merely starts like a loopback address can resolve to any interface
    for (const host of ["0.0.0.0", "::", "192.168.1.10", "10.0.0.1", "example.com", "127.attacker.example", "127.0.0.1.example.com"]) {
      expect(isLoopback(host), host).toBe(false)
    }
  })

  it("an admin API bound to every interface is asked on loopback; one bound to an address or name, there", () => {
    for (const host of ["0.0.0.0", "::", "[::]", " 0.0.0.0 "]) expect(urlHostFor(host), host).toBe("127.0.0.1")
    expect(urlHostFor("127.0.0.2")).toBe("127.0.0.2")
    expect(urlHostFor("10.0.0.5")).toBe("10.0.0.5")
    expect(urlHostFor("::1")).toBe("[::1]")
    expect(urlHostFor("fd00::5")).toBe("[fd00::5]")
    expect(urlHostFor("admin.internal")).toBe("admin.internal")
  })
})
