import { describe, expect, it } from "@effect/vitest"
import { htmlToText } from "../../channels/email/HtmlText.ts"

describe("the plain-text part of an email", () => {
  it("keeps where each link goes, after its text", () => {
    expect(htmlToText(`<p>Your points: <a href="https://brand.example/points?a=1&amp;b=2">see them</a></p>`)).toBe(
      "Your points: see them [https://brand.example/points?a=1&b=2]"
    )
  })

  it("writes a link whose text is its own address once", () => {
    expect(htmlToText(`<p><a href="https://brand.example">https://brand.example</a></p>`)).toBe("https://brand.example")
  })

  it("leaves images, styles, scripts and the hidden preheader out", () => {
    const text = htmlToText(
      `<html><head><title>Inbox title</title><style>p{color:red}</style></head><body>` +
        `<span style="display:none">Preheader for the inbox preview</span><div hidden>also hidden</div>` +
        `<img src="https://cdn.brand.example/logo.png" alt="Brand logo"><p>Hello</p><script>track()</script></body></html>`
    )
    expect(text).toBe("Hello")
  })

  it("wraps long paragraphs at 78 characters without breaking words", () => {
    const sentence = "Your membership renews next week and every reward you earned this year stays with you. "
    const text = htmlToText(`<p>${sentence.repeat(4)}</p>`)
    const lines = text.split("\n")
    expect(lines.length).toBeGreaterThan(4)
    for (const line of lines) expect(line.length).toBeLessThanOrEqual(78)
    expect(lines.join(" ")).toBe(sentence.repeat(4).trim())
  })

  it("keeps Chinese text and the author's heading case", () => {
    expect(htmlToText(`<h1>Welcome back</h1><p>亲爱的会员，您的积分即将过期。<a href="https://brand.example/p">查看积分</a></p>`)).toBe(
      "Welcome back\n\n亲爱的会员，您的积分即将过期。查看积分 [https://brand.example/p]"
    )
  })

  it("puts the cells of a layout table on their own lines", () => {
    const text = htmlToText(`<table><tr><td>Points</td><td>120</td></tr></table><table><tr><td><p>Tier</p></td><td>Gold</td></tr></table>`)
    expect(text.split(/\n+/)).toEqual(["Points", "120", "Tier", "Gold"])
  })

  it("turns lists into bullets and decodes entities", () => {
    expect(htmlToText(`<ul><li>Free shipping</li><li>Birthday gift &amp; 2&times; points</li></ul>`)).toBe(
      " * Free shipping\n * Birthday gift & 2× points"
    )
  })

  it("gives empty text for empty HTML", () => {
    expect(htmlToText("")).toBe("")
  })
})
