import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect, Either, Option, Redacted, Schedule } from "effect"
import { randomBytes } from "node:crypto"
import type { SendOutcome, SmsMessage } from "../../channels/Channel.ts"
import { makeTwilioSms, makeTwilioSmsFromConfig, TwilioSmsConfig, type TwilioSmsOptions } from "../../channels/sms/TwilioSms.ts"
import { freePort } from "../support/engine.ts"
import { startTwilioServer, type TwilioServer } from "../support/twilio.ts"

const ACCOUNT = `AC${randomBytes(16).toString("hex")}`
const TOKEN = randomBytes(16).toString("hex")
const FROM = "+15005550006"
const SERVICE = `MG${randomBytes(16).toString("hex")}`

const twilioServer = (pathPrefix?: string) =>
  Effect.acquireRelease(
    Effect.promise(() => startTwilioServer({ accountSid: ACCOUNT, authToken: TOKEN, ...(pathPrefix === undefined ? {} : { pathPrefix }) })),
    (server) => Effect.promise(() => server.close())
  )

let counter = 0
/** A unique E.164 number per message, so assertions never see another test's traffic. */
const number = () => `+1415555${String(1000 + (counter++ % 9000)).padStart(4, "0")}`
const sms = (to: string, body = "Your 500 points expire on Friday", messageId = `points-expiry:3:enr-${counter}:step-1`): SmsMessage => ({
  channel: "sms",
  messageId,
  memberId: "member-42",
  to,
  body
})

const sender = (server: TwilioServer, extra: Partial<TwilioSmsOptions> = {}) =>
  makeTwilioSms({ accountSid: ACCOUNT, authToken: Redacted.make(TOKEN), from: FROM, apiUrl: server.url, ...extra })

const fromEnv = (env: Record<string, string>) =>
  makeTwilioSmsFromConfig.pipe(Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env)))))

/** Polls real time: the server moves messages along on its own timers. */
const until = (what: string, check: () => boolean) =>
  Effect.suspend(() => (check() ? Effect.void : Effect.fail(what))).pipe(
    Effect.retry(Schedule.spaced("10 millis").pipe(Schedule.upTo("5 seconds"))),
    Effect.orDieWith(() => new Error(`timed out waiting for ${what}`))
  )

const expectNoSecrets = (outcome: SendOutcome, message: SmsMessage) => {
  const reason = "reason" in outcome ? outcome.reason : ""
  expect(reason).toMatch(/^twilio/)
  expect(reason).not.toContain(message.to)
  expect(reason).not.toContain(message.to.slice(1)) // without the +
  expect(reason).not.toContain(message.body)
  expect(reason).not.toContain(TOKEN)
}

describe("SMS through Twilio", () => {
  it.scopedLive("a message reaches Twilio at TWILIO_API_URL as a form with basic auth, and comes back with Twilio's sid", () =>
    Effect.gen(function*() {
      const server = yield* twilioServer()
      const configured = yield* fromEnv({ TWILIO_ACCOUNT_SID: ACCOUNT, TWILIO_AUTH_TOKEN: TOKEN, TWILIO_FROM: FROM, TWILIO_API_URL: server.url })
      const channel = Option.getOrThrow(configured)
      const message = sms(number(), "Hi Ana, 会员日 double points today — reply STOP to opt out")
      const outcome = yield* channel.send(message)

      expect(server.received).toHaveLength(1)
      const received = server.received[0]!
      expect(outcome).toEqual({ _tag: "Sent", providerMessageId: received.sid })
      expect(received.sid).toMatch(/^SM[0-9a-f]{32}$/)
      expect(received.auth).toEqual({ username: ACCOUNT, password: TOKEN })
      expect(received.accountSid).toBe(ACCOUNT)
      // no MEMBERFLOW_PUBLIC_URL: no StatusCallback
      expect(received.form).toEqual({ To: message.to, From: FROM, Body: message.body })
      expect(server.requests.map((r) => `${r.method} ${r.path} ${r.status}`)).toEqual([`POST /2010-04-01/Accounts/${ACCOUNT}/Messages.json 201`])
    }))

  it.scopedLive("TWILIO_API_URL with a path (a proxy in front of Twilio) keeps the path", () =>
    Effect.gen(function*() {
      const server = yield* twilioServer("/egress/twilio")
      expect(server.url).toMatch(/\/egress\/twilio$/)
      const outcome = yield* sender(server).send(sms(number()))
      expect(outcome._tag).toBe("Sent")
      expect(server.received).toHaveLength(1)
    }))

  it.scopedLive("with a Messaging Service the form names the service and no From", () =>
    Effect.gen(function*() {
      const server = yield* twilioServer()
      const channel = Option.getOrThrow(
        yield* fromEnv({ TWILIO_ACCOUNT_SID: ACCOUNT, TWILIO_AUTH_TOKEN: TOKEN, TWILIO_MESSAGING_SERVICE_SID: SERVICE, TWILIO_API_URL: server.url })
      )
      const message = sms(number())
      expect((yield* channel.send(message))._tag).toBe("Sent")
      expect(server.received[0]!.form).toEqual({ To: message.to, MessagingServiceSid: SERVICE, Body: message.body })
    }))

  it.scopedLive("with MEMBERFLOW_PUBLIC_URL each message asks for status callbacks carrying its memberflow message id", () =>
    Effect.gen(function*() {
      const server = yield* twilioServer()
      const channel = Option.getOrThrow(
        yield* fromEnv({
          TWILIO_ACCOUNT_SID: ACCOUNT,
          TWILIO_AUTH_TOKEN: TOKEN,
          TWILIO_FROM: FROM,
          TWILIO_API_URL: server.url,
          // the callback receiver is not up: Twilio's callbacks fail, the send does not care
          MEMBERFLOW_PUBLIC_URL: "http://127.0.0.1:9/memberflow/"
        })
      )
      const message = sms(number(), "See you soon", "spring promo:2:enr/7&x=1:step#3")
      expect((yield* channel.send(message))._tag).toBe("Sent")
      expect(server.received[0]!.form["StatusCallback"]).toBe(
        "http://127.0.0.1:9/memberflow/webhooks/twilio?messageId=spring%20promo%3A2%3Aenr%2F7%26x%3D1%3Astep%233"
      )
      expect(new URL(server.received[0]!.form["StatusCallback"]!).searchParams.get("messageId")).toBe(message.messageId)
    }))
})

describe("Twilio's refusals become the outcomes the send policy acts on", () => {
  it.scopedLive("21610 (the member replied STOP) is an opt-out: permanent, and the next channel may be tried", () =>
    Effect.gen(function*() {
      const server = yield* twilioServer()
      const message = sms(number())
      server.failNumber(message.to, 21610)
      const outcome = yield* sender(server).send(message)
      expect(outcome).toEqual({ _tag: "Permanent", reason: "twilio 21610: recipient unsubscribed (STOP)", fallback: true, optOut: true })
      expect(server.received).toHaveLength(0)
    }))

  it.scopedLive("21211 and 21614 (invalid or non-mobile number) fail the message for good and fall back; Twilio's wording, which quotes the number, is not repeated", () =>
    Effect.gen(function*() {
      const server = yield* twilioServer()
      const invalid = sms(number())
      const landline = sms(number())
      server.failNumber(invalid.to, 21211)
      server.failNumber(landline.to, 21614)
      const channel = sender(server)
      const outcomes = [yield* channel.send(invalid), yield* channel.send(landline)]
      expect(outcomes).toEqual([
        { _tag: "Permanent", reason: "twilio 21211: invalid 'To' phone number", fallback: true, optOut: false },
        { _tag: "Permanent", reason: "twilio 21614: 'To' number is not a mobile number", fallback: true, optOut: false }
      ])
      expectNoSecrets(outcomes[0]!, invalid)
      expectNoSecrets(outcomes[1]!, landline)
    }))

  it.scopedLive("a number Twilio itself finds malformed is refused as 21211, without the number in the reason", () =>
    Effect.gen(function*() {
      const server = yield* twilioServer()
      const message = sms("0755 123 4567")
      const outcome = yield* sender(server).send(message)
      expect(outcome).toMatchObject({ _tag: "Permanent", reason: "twilio 21211: invalid 'To' phone number", fallback: true })
      expectNoSecrets(outcome, message)
    }))

  it.scopedLive("20429 / 429 and 5xx are transient; Retry-After, in seconds or as a date, says when to come back", () =>
    Effect.gen(function*() {
      const server = yield* twilioServer()
      const channel = sender(server)
      const throttled = sms(number())
      const throttledLater = sms(number())
      const broken = sms(number())
      const unavailable = sms(number())
      server.failNumber(throttled.to, 20429)
      server.failNumber(throttledLater.to, 20429, { retryAfter: "7" })
      server.failNumber(broken.to, 500)
      server.failNumber(unavailable.to, 503, { retryAfter: new Date(Date.now() + 60_000).toUTCString() })
      expect(yield* channel.send(throttled)).toEqual({ _tag: "Transient", reason: "twilio 20429: too many requests" })
      expect(yield* channel.send(throttledLater)).toEqual({ _tag: "Transient", reason: "twilio 20429: too many requests", retryAfterMs: 7000 })
      const brokenOutcome = yield* channel.send(broken)
      expect(brokenOutcome).toEqual({ _tag: "Transient", reason: "twilio 20500: An internal server error has occurred" })
      const unavailableOutcome = yield* channel.send(unavailable)
      expect(unavailableOutcome).toMatchObject({ _tag: "Transient", reason: "twilio 20503: Service Unavailable" })
      const wait = unavailableOutcome._tag === "Transient" ? unavailableOutcome.retryAfterMs ?? 0 : 0
      expect(wait).toBeGreaterThan(50_000)
      expect(wait).toBeLessThanOrEqual(60_000)
      for (const [outcome, message] of [[brokenOutcome, broken], [unavailableOutcome, unavailable]] as const) expectNoSecrets(outcome, message)
      expect(server.received).toHaveLength(0)
    }))

  it.scopedLive("another 4xx is permanent without fallback, and Twilio's own text is kept only with numbers removed", () =>
    Effect.gen(function*() {
      const server = yield* twilioServer()
      const message = sms(number())
      server.failNumber(message.to, 30007) // the server words unknown codes "Error <code> sending to <number>"
      const outcome = yield* sender(server).send(message)
      expect(outcome).toEqual({ _tag: "Permanent", reason: "twilio 30007: Error 30007 sending to …", fallback: false, optOut: false })
      expectNoSecrets(outcome, message)
    }))

  it.scopedLive("a wrong auth token is refused by Twilio (401, 20003) and named as a settings problem, without the token", () =>
    Effect.gen(function*() {
      const server = yield* twilioServer()
      const wrong = makeTwilioSms({ accountSid: ACCOUNT, authToken: Redacted.make("not-the-token"), from: FROM, apiUrl: server.url })
      const message = sms(number())
      const outcome = yield* wrong.send(message)
      expect(outcome).toEqual({
        _tag: "Permanent",
        reason: "twilio 20003: authentication failed (check TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN)",
        fallback: false,
        optOut: false
      })
      expect(server.requests).toMatchObject([{ status: 401, code: 20003, auth: { username: ACCOUNT, password: "not-the-token" } }])
      expect(server.received).toHaveLength(0)
    }))

  it.scopedLive("while Twilio answers 503 sends are transient, and once it recovers they go through", () =>
    Effect.gen(function*() {
      const server = yield* twilioServer()
      const channel = sender(server)
      server.failAll(503, 300)
      expect(yield* channel.send(sms(number()))).toEqual({ _tag: "Transient", reason: "twilio 20503: Service Unavailable" })
      yield* Effect.sleep("350 millis")
      expect((yield* channel.send(sms(number())))._tag).toBe("Sent")
      server.failAll(500)
      expect((yield* channel.send(sms(number())))._tag).toBe("Transient")
      server.failAll(null)
      expect((yield* channel.send(sms(number())))._tag).toBe("Sent")
      expect(server.received).toHaveLength(2)
    }))

  it.live("Twilio unreachable (connection refused) is transient", () =>
    Effect.gen(function*() {
      const port = yield* Effect.promise(() => freePort())
      const channel = makeTwilioSms({ accountSid: ACCOUNT, authToken: Redacted.make(TOKEN), from: FROM, apiUrl: `http://127.0.0.1:${port}` })
      const message = sms(number())
      const outcome = yield* channel.send(message)
      expect(outcome).toEqual({ _tag: "Transient", reason: "twilio: network error (ECONNREFUSED)" })
    }))

  it.scopedLive("Twilio silent past the timeout is transient", () =>
    Effect.gen(function*() {
      const server = yield* twilioServer()
      server.slow(3_000)
      const outcome = yield* sender(server, { timeoutMs: 300 }).send(sms(number()))
      expect(outcome).toEqual({ _tag: "Transient", reason: "twilio: no answer in time (timeout)" })
    }))
})

describe("after a crash, Twilio is asked whether it already took a message", () => {
  const sentAndRecorded = (server: TwilioServer, sid: string) =>
    until(`${sid} sent`, () => server.received.some((m) => m.sid === sid && m.sentAt !== null))

  it.scopedLive("a message Twilio took is found by number and body; one it never took is not", () =>
    Effect.gen(function*() {
      const server = yield* twilioServer()
      const channel = sender(server)
      const since = Date.now()
      const taken = sms(number(), "Welcome to Gold tier!")
      const outcome = yield* channel.send(taken)
      const sid = outcome._tag === "Sent" ? outcome.providerMessageId : ""
      yield* sentAndRecorded(server, sid)

      expect(yield* channel.recover!(taken, since)).toBe(sid)
      // same number, other text; same text, other number: neither was handed over
      expect(yield* channel.recover!({ ...taken, body: "Welcome to Silver tier!" }, since)).toBeNull()
      expect(yield* channel.recover!({ ...taken, to: number() }, since)).toBeNull()
      const lists = server.requests.filter((r) => r.method === "GET")
      expect(lists).toHaveLength(3)
      // the list asks for messages to the number, whatever their sent date (a queued one has none yet)
      expect(decodeURIComponent(lists[0]!.path)).toContain(`To=${taken.to}`)
      expect(decodeURIComponent(lists[0]!.path)).not.toContain("DateSent")
    }))

  it.scopedLive("the message is found on a later page of Twilio's list, through a TWILIO_API_URL with a path", () =>
    Effect.gen(function*() {
      const server = yield* twilioServer("/egress/twilio")
      const channel = sender(server)
      const since = Date.now()
      const to = number()
      const first = sms(to, "the oldest of many")
      const outcome = yield* channel.send(first)
      for (let i = 0; i < 55; i++) yield* channel.send(sms(to, `reminder ${i}`))
      const sid = outcome._tag === "Sent" ? outcome.providerMessageId : ""
      yield* until("all 56 sent", () => server.received.filter((m) => m.sentAt !== null).length === 56)
      expect(yield* channel.recover!(first, since)).toBe(sid)
      // Twilio's default page holds 50, newest first: the oldest is on page 1
      expect(server.requests.filter((r) => r.method === "GET").map((r) => new URLSearchParams(r.path.split("?")[1]).get("Page"))).toEqual([null, "1"])
    }))

  it.scopedLive("when Twilio cannot be asked, recover fails with a reason and no number", () =>
    Effect.gen(function*() {
      const server = yield* twilioServer()
      server.failAll(503)
      const message = sms(number())
      const error = yield* sender(server).recover!(message, Date.now()).pipe(Effect.flip)
      expect(error.reason).toBe("twilio 20503: Service Unavailable")
    }))
})

describe("SMS settings from the environment", () => {
  const read = (env: Record<string, string>) =>
    TwilioSmsConfig.pipe(Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env)))), Effect.either)

  it.effect("without TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN (or with them blank) SMS is not configured", () =>
    Effect.gen(function*() {
      expect(yield* read({})).toEqual(Either.right(Option.none()))
      expect(yield* read({ TWILIO_ACCOUNT_SID: "", TWILIO_AUTH_TOKEN: " ", TWILIO_FROM: FROM })).toEqual(Either.right(Option.none()))
      expect(Option.isNone(yield* fromEnv({}))).toBe(true)
    }))

  it.effect("a full configuration is read, the token kept redacted", () =>
    Effect.gen(function*() {
      const options = Either.getOrThrow(yield* read({
        TWILIO_ACCOUNT_SID: ACCOUNT,
        TWILIO_AUTH_TOKEN: TOKEN,
        TWILIO_FROM: FROM,
        TWILIO_MESSAGING_SERVICE_SID: SERVICE,
        TWILIO_API_URL: "https://api.dublin.ie1.twilio.com",
        MEMBERFLOW_PUBLIC_URL: "https://crm.example.com"
      })).pipe(Option.getOrThrow)
      expect(options).toMatchObject({
        accountSid: ACCOUNT,
        from: FROM,
        messagingServiceSid: SERVICE,
        apiUrl: "https://api.dublin.ie1.twilio.com",
        statusCallbackBase: "https://crm.example.com"
      })
      expect(Redacted.value(options.authToken)).toBe(TOKEN)
      expect(String(options.authToken)).not.toContain(TOKEN)
      expect(JSON.stringify(options)).not.toContain(TOKEN)
      expect(Either.getOrThrow(yield* read({ TWILIO_ACCOUNT_SID: ACCOUNT, TWILIO_AUTH_TOKEN: TOKEN, TWILIO_FROM: FROM })).pipe(Option.getOrThrow).apiUrl).toBe(
        "https://api.twilio.com"
      )
    }))

  it.effect("half a configuration is refused at start-up, naming the variable", () =>
    Effect.gen(function*() {
      const refused = (env: Record<string, string>) =>
        read(env).pipe(Effect.map((result) => (Either.isLeft(result) ? String(result.left) : "accepted")))
      expect(yield* refused({ TWILIO_ACCOUNT_SID: ACCOUNT, TWILIO_FROM: FROM })).toContain(
        "TWILIO_ACCOUNT_SID is set but TWILIO_AUTH_TOKEN is not: set both TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN to send SMS, or neither to leave SMS off"
      )
      expect(yield* refused({ TWILIO_AUTH_TOKEN: TOKEN, TWILIO_FROM: FROM })).toContain("TWILIO_AUTH_TOKEN is set but TWILIO_ACCOUNT_SID is not")
      expect(yield* refused({ TWILIO_ACCOUNT_SID: "SK0123", TWILIO_AUTH_TOKEN: TOKEN, TWILIO_FROM: FROM })).toContain(
        'TWILIO_ACCOUNT_SID must be "AC" followed by 32 hex digits'
      )
      expect(yield* refused({ TWILIO_ACCOUNT_SID: ACCOUNT, TWILIO_AUTH_TOKEN: TOKEN })).toContain(
        "SMS needs a sender: set TWILIO_FROM (a number of the account) or TWILIO_MESSAGING_SERVICE_SID"
      )
      expect(yield* refused({ TWILIO_ACCOUNT_SID: ACCOUNT, TWILIO_AUTH_TOKEN: TOKEN, TWILIO_MESSAGING_SERVICE_SID: "service-1" })).toContain(
        'TWILIO_MESSAGING_SERVICE_SID must be "MG" followed by 32 hex digits'
      )
      expect(yield* refused({ TWILIO_ACCOUNT_SID: ACCOUNT, TWILIO_AUTH_TOKEN: TOKEN, TWILIO_FROM: FROM, TWILIO_API_URL: "api.twilio.com" })).toContain(
        'TWILIO_API_URL must be an http(s) URL such as https://api.twilio.com, got "api.twilio.com"'
      )
      expect(yield* refused({ TWILIO_ACCOUNT_SID: ACCOUNT, TWILIO_AUTH_TOKEN: TOKEN, TWILIO_FROM: FROM, MEMBERFLOW_PUBLIC_URL: "ftp://x" })).toContain(
        "MEMBERFLOW_PUBLIC_URL must be an http(s) URL"
      )
      // the token never appears in a refusal
      expect(yield* refused({ TWILIO_AUTH_TOKEN: TOKEN })).not.toContain(TOKEN)
    }))

  it.effect("a sender built by hand with settings Twilio would refuse fails each message permanently, naming the setting", () =>
    Effect.gen(function*() {
      const message = sms(number())
      const badSid = makeTwilioSms({ accountSid: "SK123", authToken: Redacted.make(TOKEN), from: FROM })
      expect(yield* badSid.send(message)).toEqual({
        _tag: "Permanent",
        reason: "twilio: client refused its settings (accountSid must start with AC. The given SID indicates an API Key which requires the accountSid to be passed as an additional option)",
        fallback: true,
        optOut: false
      })
      const noSender = makeTwilioSms({ accountSid: ACCOUNT, authToken: Redacted.make(TOKEN) })
      expect(yield* noSender.send(message)).toMatchObject({ _tag: "Permanent", reason: "twilio: neither TWILIO_FROM nor TWILIO_MESSAGING_SERVICE_SID is set" })
      const badUrl = makeTwilioSms({ accountSid: ACCOUNT, authToken: Redacted.make(TOKEN), from: FROM, apiUrl: "localhost:1234" })
      expect(yield* badUrl.recover!(message, 0).pipe(Effect.flip)).toMatchObject({ reason: "twilio: TWILIO_API_URL is not an http(s) URL" })
    }))
})
