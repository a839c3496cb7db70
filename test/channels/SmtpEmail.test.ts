import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect, Option, Redacted } from "effect"
import { createServer, type Socket } from "node:net"
import type { EmailMessage, SendOutcome } from "../../channels/Channel.ts"
import { makeSmtpEmail, messageIdHeader, SmtpEmail } from "../../channels/email/SmtpEmail.ts"
import { eventually, freePort } from "../support/engine.ts"
import { type SmtpServerOptions, startSmtpServer } from "../support/smtp.ts"

const USER = "mailer"
const PASSWORD = "pa55-w0rd-not-for-logs"
const FROM = "Brand Club <news@brand.example>"

const smtpServer = (options?: SmtpServerOptions) =>
  Effect.acquireRelease(Effect.promise(() => startSmtpServer(options)), (server) => Effect.promise(() => server.close()))

/** The server's URL with a login in it, as SMTP_URL usually is. */
const withLogin = (url: string): string => url.replace("://", `://${USER}:${PASSWORD}@`)

const sender = (url: string, from = FROM) => makeSmtpEmail({ url: Redacted.make(url), from })

const message = (overrides: Partial<EmailMessage> = {}): EmailMessage => ({
  channel: "email",
  messageId: "points-expiry:3:enr-7f2c:step-2",
  memberId: "m-1001",
  to: "ana.member@example.com",
  subject: "Your points expire soon",
  html: `<p>Hi Ana, <a href="https://brand.example/points">see your points</a></p>`,
  text: "Hi Ana, see your points [https://brand.example/points]",
  unsubscribe: "https://brand.example/unsubscribe/m-1001",
  ...overrides
})

const headerLine = (mail: { parsed: { headerLines: ReadonlyArray<{ key: string; line: string }> } }, key: string) =>
  mail.parsed.headerLines.find((h) => h.key === key)?.line

/** A failure's reason names codes only: never the member's address, the login or the URL. */
const expectSafeReason = (outcome: SendOutcome, ...secrets: ReadonlyArray<string>) => {
  expect(outcome._tag).not.toBe("Sent")
  const reason = "reason" in outcome ? outcome.reason : ""
  expect(reason).toMatch(/^smtp/)
  for (const secret of [PASSWORD, USER, ...secrets]) expect(reason).not.toContain(secret)
  expect(reason).not.toMatch(/@|127\.0\.0\.1/)
}

describe("email over SMTP", () => {
  it.scopedLive("a member's email arrives with its sender, subject, both parts, Message-ID and one-click unsubscribe", () =>
    Effect.gen(function* () {
      const server = yield* smtpServer()
      const email = yield* sender(withLogin(server.url))
      const outcome = yield* email.send(message())

      const expectedId = messageIdHeader("points-expiry:3:enr-7f2c:step-2", "brand.example")
      expect(outcome).toEqual({ _tag: "Sent", providerMessageId: expectedId })
      expect(server.logins).toEqual([{ username: USER, password: PASSWORD }])
      expect(server.received).toHaveLength(1)
      const mail = server.received[0]!
      expect(mail.envelope).toEqual({ from: "news@brand.example", to: ["ana.member@example.com"] })
      expect(mail.parsed.from?.value).toEqual([{ name: "Brand Club", address: "news@brand.example" }])
      expect(mail.parsed.to).toMatchObject({ value: [{ address: "ana.member@example.com" }] })
      expect(mail.parsed.subject).toBe("Your points expire soon")
      expect(mail.parsed.html).toBe(`<p>Hi Ana, <a href="https://brand.example/points">see your points</a></p>`)
      expect(mail.parsed.text?.trim()).toBe("Hi Ana, see your points [https://brand.example/points]")
      expect(mail.parsed.messageId).toBe(expectedId)
      expect(headerLine(mail, "list-unsubscribe")).toBe("List-Unsubscribe: <https://brand.example/unsubscribe/m-1001>")
      expect(headerLine(mail, "list-unsubscribe-post")).toBe("List-Unsubscribe-Post: List-Unsubscribe=One-Click")
      expect(mail.secure).toBe(false)
    }))

  it.scopedLive("the template's sender and reply-to win over EMAIL_FROM; a mailto unsubscribe gets no one-click header", () =>
    Effect.gen(function* () {
      const server = yield* smtpServer()
      const email = yield* sender(server.url)
      const outcome = yield* email.send(
        message({ from: "VIP Desk <vip@brand.example>", replyTo: "care@brand.example", unsubscribe: "mailto:unsubscribe@brand.example?subject=m-1001" })
      )
      expect(outcome._tag).toBe("Sent")
      const mail = server.received[0]!
      expect(mail.envelope.from).toBe("vip@brand.example")
      expect(mail.parsed.from?.value).toEqual([{ name: "VIP Desk", address: "vip@brand.example" }])
      expect(mail.parsed.replyTo?.value).toEqual([{ name: "", address: "care@brand.example" }])
      expect(headerLine(mail, "list-unsubscribe")).toBe("List-Unsubscribe: <mailto:unsubscribe@brand.example?subject=m-1001>")
      expect(headerLine(mail, "list-unsubscribe-post")).toBeUndefined()
    }))

  it.scopedLive("a Chinese sender name, subject and body arrive intact, in headers that stay ASCII", () =>
    Effect.gen(function* () {
      const server = yield* smtpServer()
      const email = yield* sender(server.url, "品牌会员中心 <news@brand.example>")
      const subject = "会员日：您的积分将于 3 月 31 日过期 🎁"
      const html = "<p>亲爱的会员，您还有 <b>1,200</b> 积分。<a href=\"https://brand.example/积分\">立即兑换</a></p>"
      const text = "亲爱的会员，您还有 1,200 积分。立即兑换 [https://brand.example/积分]"
      expect((yield* email.send(message({ subject, html, text })))._tag).toBe("Sent")

      const mail = server.received[0]!
      expect(mail.parsed.subject).toBe(subject)
      expect(mail.parsed.from?.value).toEqual([{ name: "品牌会员中心", address: "news@brand.example" }])
      expect(mail.parsed.html).toBe(html)
      expect(mail.parsed.text?.trim()).toBe(text)
      const rawHeaders = mail.raw.toString("latin1").split("\r\n\r\n")[0] ?? ""
      expect(rawHeaders).toMatch(/^Subject: =\?UTF-8\?[BQ]\?/m)
      expect(rawHeaders).toMatch(/^[\x20-\x7e\r\n\t]*$/)
    }))

  it.scopedLive("sends share the pool's connections instead of opening one each", () =>
    Effect.gen(function* () {
      const server = yield* smtpServer()
      const email = yield* sender(server.url)
      for (let i = 0; i < 6; i++) {
        expect((yield* email.send(message({ messageId: `seq:${i}` })))._tag).toBe("Sent")
      }
      expect(server.connections().opened).toBe(1)

      const outcomes = yield* Effect.forEach(
        Array.from({ length: 20 }, (_, i) => message({ messageId: `burst:${i}`, to: `member${i}@example.com` })),
        (m) => email.send(m),
        { concurrency: "unbounded" }
      )
      expect(outcomes.every((o) => o._tag === "Sent")).toBe(true)
      expect(server.received).toHaveLength(26)
      // nodemailer's pool holds at most 5 connections; the one from the sequential sends is among them.
      expect(server.connections().opened).toBeLessThanOrEqual(5)
      expect(new Set(server.received.map((m) => m.parsed.messageId)).size).toBe(26)
    }))

  it.live("closing the scope closes the pool's connections", () =>
    Effect.gen(function* () {
      const server = yield* Effect.promise(() => startSmtpServer())
      yield* Effect.scoped(
        Effect.gen(function* () {
          const email = yield* sender(server.url)
          expect((yield* email.send(message()))._tag).toBe("Sent")
          expect(server.connections().open).toBe(1)
        })
      )
      yield* Effect.promise(() => eventually(async () => server.connections().open === 0, 5_000, "the pool to close its connection"))
      expect(server.connections()).toEqual({ opened: 1, open: 0 })
      yield* Effect.promise(() => server.close())
    }))

  it.scopedLive("the same messageId gives the same Message-ID, a different one a different Message-ID", () =>
    Effect.gen(function* () {
      const server = yield* smtpServer()
      const email = yield* sender(server.url)
      const odd = "journey:生日 礼物:<v2>@enr/1"
      yield* email.send(message({ messageId: odd }))
      yield* email.send(message({ messageId: odd }))
      yield* email.send(message({ messageId: `${odd}x` }))
      const ids = server.received.map((m) => m.parsed.messageId)
      expect(ids[0]).toBe(messageIdHeader(odd, "brand.example"))
      expect(ids[1]).toBe(ids[0])
      expect(ids[2]).not.toBe(ids[0])
    }))
})

describe("when the mail server says no", () => {
  it.scopedLive("a refused mailbox (550) is Permanent and lets the next channel try, and the reason names no address", () =>
    Effect.gen(function* () {
      const server = yield* smtpServer()
      const email = yield* sender(withLogin(server.url))
      server.rejectRecipient("gone@example.com", 550)
      const outcome = yield* email.send(message({ to: "gone@example.com" }))
      expect(outcome).toEqual({
        _tag: "Permanent",
        reason: "smtp 550 5.1.1: mailbox unavailable (recipient refused)",
        fallback: true,
        optOut: false
      })
      expectSafeReason(outcome, "gone@example.com", "gone", server.url)
      // The pool carries on for everyone else.
      expect((yield* email.send(message()))._tag).toBe("Sent")
      expect(server.received.map((m) => m.envelope.to)).toEqual([["ana.member@example.com"]])
    }))

  it.scopedLive("a mailbox name not allowed (553) is Permanent with fallback", () =>
    Effect.gen(function* () {
      const server = yield* smtpServer()
      const email = yield* sender(server.url)
      server.rejectRecipient("x@example.com", 553)
      const outcome = yield* email.send(message({ to: "x@example.com" }))
      expect(outcome).toMatchObject({ _tag: "Permanent", fallback: true, optOut: false })
      expect(outcome).toHaveProperty("reason", "smtp 553 5.1.1: mailbox name not allowed (recipient refused)")
    }))

  it.scopedLive("an address nodemailer cannot use is Permanent before the server is asked", () =>
    Effect.gen(function* () {
      const server = yield* smtpServer()
      const email = yield* sender(server.url)
      const outcome = yield* email.send(message({ to: "not an address" }))
      expect(outcome).toEqual({ _tag: "Permanent", reason: "smtp: no valid recipient address", fallback: true, optOut: false })
      expect(server.received).toHaveLength(0)
    }))

  it.scopedLive("a deferral (451) is Transient, and the same message goes through once the server recovers", () =>
    Effect.gen(function* () {
      const server = yield* smtpServer()
      const email = yield* sender(withLogin(server.url))
      server.failAll(451)
      const outcome = yield* email.send(message())
      expect(outcome).toEqual({ _tag: "Transient", reason: "smtp 451 4.3.0: local error in processing (recipient refused)" })
      expectSafeReason(outcome, "ana.member@example.com", server.url)
      expect(server.received).toHaveLength(0)

      server.failAll(null)
      expect((yield* email.send(message()))._tag).toBe("Sent")
      expect(server.received).toHaveLength(1)
    }))

  it.scopedLive("a deferral for a while ends by itself", () =>
    Effect.gen(function* () {
      const server = yield* smtpServer()
      const email = yield* sender(server.url)
      server.failAll(421, 300)
      expect((yield* email.send(message()))._tag).toBe("Transient")
      yield* Effect.sleep("400 millis")
      expect((yield* email.send(message()))._tag).toBe("Sent")
    }))

  it.live("a server that is down (connection refused) is Transient", () =>
    Effect.gen(function* () {
      const port = yield* Effect.promise(() => freePort())
      const url = withLogin(`smtp://127.0.0.1:${port}`)
      const outcome = yield* Effect.scoped(Effect.flatMap(sender(url), (email) => email.send(message())))
      expect(outcome).toEqual({ _tag: "Transient", reason: "smtp connection: ECONNREFUSED" })
      expectSafeReason(outcome, "ana.member@example.com", url, String(port))
    }))

  it.scopedLive("a server that never greets is Transient after the greeting timeout", () =>
    Effect.gen(function* () {
      const port = yield* rawServer(() => {})
      const email = yield* sender(withLogin(`smtp://127.0.0.1:${port}?greetingTimeout=300`))
      const outcome = yield* email.send(message())
      expect(outcome).toEqual({ _tag: "Transient", reason: "smtp timeout: greeting timeout" })
      expectSafeReason(outcome, "ana.member@example.com")
    }))

  it.scopedLive("a server that drops every connection is Transient", () =>
    Effect.gen(function* () {
      const port = yield* rawServer((socket) => socket.destroy())
      const email = yield* sender(withLogin(`smtp://127.0.0.1:${port}`))
      const outcome = yield* email.send(message())
      expect(outcome._tag).toBe("Transient")
      expect(outcome).toHaveProperty("reason", "smtp connection: ECONNECTION")
      expectSafeReason(outcome, "ana.member@example.com")
    }))

  it.scopedLive("wrong credentials are Transient (the channel's configuration, not the message) and the reason hides them", () =>
    Effect.gen(function* () {
      // A server that answers every login with 535, as a provider does for a revoked password.
      const port = yield* rawServer((socket) => {
        socket.write("220 mx ready\r\n")
        socket.on("data", (chunk: Buffer) => {
          const line = chunk.toString()
          if (/^EHLO/i.test(line)) socket.write("250-mx\r\n250 AUTH PLAIN LOGIN\r\n")
          else if (/^AUTH/i.test(line)) socket.write(`535 5.7.8 Authentication failed for ${USER}\r\n`)
          else if (/^QUIT/i.test(line)) socket.end("221 bye\r\n")
          else socket.write("502 5.5.2 no\r\n")
        })
      })
      const email = yield* sender(withLogin(`smtp://127.0.0.1:${port}`))
      const outcome = yield* email.send(message())
      expect(outcome).toEqual({ _tag: "Transient", reason: "smtp 535 5.7.8: authentication credentials invalid" })
      expectSafeReason(outcome, "ana.member@example.com")
    }))
})

describe("configuration", () => {
  const withEnv = (env: Record<string, string>) => Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))

  it.scopedLive("without SMTP_URL the channel is simply not configured", () =>
    Effect.gen(function* () {
      expect(Option.isNone(yield* SmtpEmail.fromConfig.pipe(withEnv({ EMAIL_FROM: FROM })))).toBe(true)
      expect(Option.isNone(yield* SmtpEmail.fromConfig.pipe(withEnv({ SMTP_URL: "  " })))).toBe(true)
    }))

  it.scopedLive("SMTP_URL and EMAIL_FROM make a working channel", () =>
    Effect.gen(function* () {
      const server = yield* smtpServer()
      const email = yield* SmtpEmail.fromConfig.pipe(withEnv({ SMTP_URL: withLogin(server.url), EMAIL_FROM: FROM }))
      expect(Option.isSome(email)).toBe(true)
      if (Option.isSome(email)) {
        expect(email.value.channel).toBe("email")
        expect((yield* email.value.send(message()))._tag).toBe("Sent")
      }
      expect(server.received[0]?.envelope.from).toBe("news@brand.example")
    }))

  const configError = (env: Record<string, string>) => SmtpEmail.fromConfig.pipe(withEnv(env), Effect.flip, Effect.scoped)

  it.live("SMTP_URL without EMAIL_FROM is a clear error", () =>
    Effect.gen(function* () {
      const error = yield* configError({ SMTP_URL: "smtp://127.0.0.1:2525" })
      expect(error.message).toMatch(/EMAIL_FROM must be set when SMTP_URL is/)
    }))

  it.live("an SMTP_URL that is not an smtp:// or smtps:// URL with a host is refused without repeating its login", () =>
    Effect.gen(function* () {
      const cases = [
        [`https://${USER}:${PASSWORD}@mail.brand.example`, "SMTP_URL must start with smtp:// or smtps://"],
        // The scheme forgotten: URL parsing would take the user name for the scheme.
        [`${USER}:${PASSWORD}@mail.brand.example`, "SMTP_URL must start with smtp:// or smtps://"],
        [`smtp://${USER}:${PASSWORD}@`, "SMTP_URL is not a URL"],
        ["smtp:///relay", "SMTP_URL names no host"],
        [`:: ${PASSWORD}`, "SMTP_URL is not a URL"]
      ] as const
      for (const [url, expected] of cases) {
        const error = yield* configError({ SMTP_URL: url, EMAIL_FROM: FROM })
        expect(error).toMatchObject({ _tag: "SmtpEmailError", message: expected })
        expect(String(error)).not.toContain(PASSWORD)
        expect(String(error)).not.toContain(USER)
      }
    }))

  it.live("an EMAIL_FROM that is not one address is refused", () =>
    Effect.gen(function* () {
      for (const from of ["Brand Club", "a@brand.example, b@brand.example", "news@"]) {
        const error = yield* configError({ SMTP_URL: "smtp://127.0.0.1:2525", EMAIL_FROM: from })
        expect(error.message).toContain("EMAIL_FROM is not one email address with a domain")
      }
    }))
})

describe("TLS", () => {
  it.scopedLive("smtp:// upgrades with STARTTLS when the server offers it", () =>
    Effect.gen(function* () {
      const server = yield* smtpServer({ tls: "starttls" })
      // The test server's certificate is self-signed; SMTP_URL query options reach nodemailer.
      const email = yield* sender(`${server.url}?tls.rejectUnauthorized=false`)
      expect((yield* email.send(message()))._tag).toBe("Sent")
      expect(server.received[0]?.secure).toBe(true)
    }))

  it.scopedLive("an offered STARTTLS with an untrusted certificate is Transient, never a silent plain-text send", () =>
    Effect.gen(function* () {
      const server = yield* smtpServer({ tls: "starttls" })
      const email = yield* sender(withLogin(server.url))
      const outcome = yield* email.send(message())
      expect(outcome._tag).toBe("Transient")
      expectSafeReason(outcome, "ana.member@example.com")
      expect(server.received).toHaveLength(0)
      expect(server.logins).toHaveLength(0)
    }))

  it.scopedLive("smtps:// speaks TLS from the first byte", () =>
    Effect.gen(function* () {
      const server = yield* smtpServer({ tls: "implicit" })
      expect(server.url).toMatch(/^smtps:/)
      const email = yield* sender(`${withLogin(server.url)}?tls.rejectUnauthorized=false`)
      expect((yield* email.send(message()))._tag).toBe("Sent")
      expect(server.received[0]?.secure).toBe(true)
      expect(server.logins).toEqual([{ username: USER, password: PASSWORD }])
    }))
})

/** A bare TCP server for misbehaviour smtp-server will not produce; closed (sockets included) with the scope. */
const rawServer = (onConnection: (socket: Socket) => void) =>
  Effect.acquireRelease(
    Effect.async<{ port: number; close: () => void }>((resume) => {
      const sockets = new Set<Socket>()
      const server = createServer((socket) => {
        sockets.add(socket)
        socket.on("error", () => {})
        socket.on("close", () => sockets.delete(socket))
        onConnection(socket)
      })
      server.listen(0, "127.0.0.1", () => {
        const address = server.address()
        const port = typeof address === "object" && address !== null ? address.port : 0
        resume(Effect.succeed({ port, close: () => (server.close(), sockets.forEach((s) => s.destroy())) }))
      })
    }),
    (server) => Effect.sync(server.close)
  ).pipe(Effect.map((server) => server.port))
