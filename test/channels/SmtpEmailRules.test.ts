import { describe, expect, it } from "@effect/vitest"
import fc from "fast-check"
import { messageIdHeader, outcomeOf } from "../../channels/email/SmtpEmail.ts"

// The SMTP replies here are shaped as nodemailer reports them; SmtpEmail.test.ts gets the common
// ones (550, 553, 451, 421, 535, refused, silent, dropped) from a real server.

describe("how SMTP errors are sorted", () => {
  // Shaped as nodemailer reports them (code, command, responseCode, response).
  const smtpFailure = (responseCode: number, command: string, response: string) =>
    Object.assign(new Error(`Can't send mail: ${response}`), { code: "EENVELOPE", command, responseCode, response })

  it("a sender refused at MAIL FROM is Permanent without fallback: every member would fall back otherwise", () => {
    expect(outcomeOf(smtpFailure(553, "MAIL FROM", "553 5.7.1 <news@brand.example>: Sender address rejected"))).toEqual({
      _tag: "Permanent",
      reason: "smtp 553 5.7.1: mailbox name not allowed (sender refused)",
      fallback: false,
      optOut: false
    })
  })

  it("content refused at DATA (554) is Permanent with fallback", () => {
    expect(outcomeOf(smtpFailure(554, "DATA", "554 5.7.1 Message rejected as spam for <ana@example.com>"))).toEqual({
      _tag: "Permanent",
      reason: "smtp 554 5.7.1: transaction failed (message refused)",
      fallback: true,
      optOut: false
    })
  })

  it("a bad sequence of commands (503) and a failed login (535) are Transient", () => {
    expect(outcomeOf(smtpFailure(503, "RCPT TO", "503 5.5.1 Error: need MAIL command"))._tag).toBe("Transient")
    expect(outcomeOf(smtpFailure(535, "AUTH PLAIN", "535 5.7.8 Authentication failed"))).toEqual({
      _tag: "Transient",
      reason: "smtp 535 5.7.8: authentication credentials invalid"
    })
  })

  it("an unknown 5xx is Permanent and an unknown 4xx Transient, named by their code", () => {
    expect(outcomeOf(smtpFailure(571, "RCPT TO", "571 blocked <a@b.c>"))).toMatchObject({ _tag: "Permanent", reason: "smtp 571: permanent failure (recipient refused)" })
    expect(outcomeOf(smtpFailure(471, "DATA", "471 try later"))).toEqual({ _tag: "Transient", reason: "smtp 471: transient failure (message refused)" })
  })

  it("anything that is not an SMTP error is Transient", () => {
    expect(outcomeOf("boom")).toEqual({ _tag: "Transient", reason: "smtp connection: failed" })
    expect(outcomeOf(Object.assign(new Error("getaddrinfo ENOTFOUND smtp.brand.example"), { code: "EDNS", originalCode: "ENOTFOUND" }))).toEqual({
      _tag: "Transient",
      reason: "smtp connection: ENOTFOUND"
    })
  })
})

describe("the Message-ID of a memberflow message", () => {
  const MSG_ID = /^<[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@[a-z0-9-]+(?:\.[a-z0-9-]+)*>$/

  it("is a valid RFC 5322 msg-id, the same for the same id and different for different ids, whatever the id holds", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 120 }), fc.string({ unit: "binary", maxLength: 120 }), (a, b) => {
        const header = messageIdHeader(a, "brand.example")
        expect(header).toMatch(MSG_ID)
        expect(messageIdHeader(a, "brand.example")).toBe(header)
        if (a !== b) expect(messageIdHeader(b, "brand.example")).not.toBe(header)
      }),
      { numRuns: 500 }
    )
  })

  it("keeps a readable id readable and escapes what a msg-id cannot hold", () => {
    expect(messageIdHeader("points-expiry:3:enr_7f2c:step-2", "brand.example")).toBe("<mf-points-expiry=3A3=3Aenr_7f2c=3Astep-2@brand.example>")
    // "=" itself is escaped, so an id that looks escaped cannot collide with one that was.
    expect(messageIdHeader("a=3Ab", "brand.example")).not.toBe(messageIdHeader("a:b", "brand.example"))
  })

  it("hashes an id too long for a header line, still deterministically", () => {
    const long = "j:".repeat(500)
    const header = messageIdHeader(long, "brand.example")
    expect(header).toMatch(MSG_ID)
    expect(header.length).toBeLessThan(100)
    expect(messageIdHeader(long, "brand.example")).toBe(header)
    expect(messageIdHeader(`${long}x`, "brand.example")).not.toBe(header)
  })
})
