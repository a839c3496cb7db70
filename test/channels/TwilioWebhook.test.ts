import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Option, Redacted, Schedule } from "effect"
import { randomBytes } from "node:crypto"
import { createServer, type IncomingHttpHeaders } from "node:http"
import type { SmsMessage } from "../../channels/Channel.ts"
import { makeTwilioSms } from "../../channels/sms/TwilioSms.ts"
import { callbackMessageId, decodeTwilioStatusCallback, formParams, verifyTwilioSignature } from "../../channels/sms/TwilioWebhook.ts"
import { freePort } from "../support/engine.ts"
import { startTwilioServer, twilioSignature } from "../support/twilio.ts"

const ACCOUNT = `AC${randomBytes(16).toString("hex")}`
const TOKEN = randomBytes(16).toString("hex")
const token = Redacted.make(TOKEN)

interface Captured {
  /** the full URL as Twilio called it */
  readonly url: string
  readonly headers: IncomingHttpHeaders
  readonly body: string
}

/** Where memberflow's /webhooks/twilio would be: a plain node:http server that records what Twilio posts. */
const callbackReceiver = Effect.acquireRelease(
  Effect.promise(async () => {
    const captured: Array<Captured> = []
    const port = await freePort()
    const base = `http://127.0.0.1:${port}/mf`
    const server = createServer((request, response) => {
      const chunks: Array<Buffer> = []
      request.on("data", (chunk: Buffer) => chunks.push(chunk))
      request.on("end", () => {
        captured.push({ url: `http://127.0.0.1:${port}${request.url}`, headers: request.headers, body: Buffer.concat(chunks).toString("utf8") })
        response.writeHead(204).end()
      })
    })
    await new Promise<void>((ok) => server.listen(port, "127.0.0.1", ok))
    return { base, captured, server }
  }),
  ({ server }) => Effect.promise(() => new Promise<void>((ok) => server.close(() => ok())))
)

const twilioServer = Effect.acquireRelease(
  Effect.promise(() => startTwilioServer({ accountSid: ACCOUNT, authToken: TOKEN })),
  (server) => Effect.promise(() => server.close())
)

const until = (what: string, check: () => boolean) =>
  Effect.suspend(() => (check() ? Effect.void : Effect.fail(what))).pipe(
    Effect.retry(Schedule.spaced("10 millis").pipe(Schedule.upTo("5 seconds"))),
    Effect.orDieWith(() => new Error(`timed out waiting for ${what}`))
  )

const message = (to: string, messageId: string): SmsMessage => ({ channel: "sms", messageId, memberId: "member-7", to, body: "Your parcel of points has arrived" })

/** Sends one message through the SDK to the local Twilio and waits for its two status callbacks. */
const sendAndCapture = (to: string, messageId: string, prepare?: (server: Effect.Effect.Success<typeof twilioServer>) => void) =>
  Effect.gen(function*() {
    const receiver = yield* callbackReceiver
    const server = yield* twilioServer
    prepare?.(server)
    const channel = makeTwilioSms({ accountSid: ACCOUNT, authToken: token, from: "+15005550006", apiUrl: server.url, statusCallbackBase: receiver.base })
    const outcome = yield* channel.send(message(to, messageId))
    yield* until("two status callbacks", () => receiver.captured.length === 2)
    return { outcome, captured: receiver.captured, server }
  })

const signatureOf = (captured: Captured): string | undefined => {
  const header = captured.headers["x-twilio-signature"]
  return typeof header === "string" ? header : undefined
}

describe("Twilio status callbacks are accepted only when Twilio signed them", () => {
  it("the test server's signature reproduces Twilio's published example", () => {
    const url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    const params = { CallSid: "CA1234567890ABCDE", Caller: "+14158675309", Digits: "1234", From: "+14158675309", To: "+18005551212" }
    expect(twilioSignature("12345", url, params)).toBe("RSOYDt4T1cUTdK1PDd93/VVr8B8=")
    expect(verifyTwilioSignature({ authToken: Redacted.make("12345"), url, params, signature: "RSOYDt4T1cUTdK1PDd93/VVr8B8=" })).toBe(true)
  })

  it.scopedLive("Twilio's real callbacks (sent, then delivered) verify and decode, naming memberflow's message", () =>
    Effect.gen(function*() {
      const { captured, outcome } = yield* sendAndCapture("+14155550101", "birthday:1:enr 9:step/2")
      const sid = outcome._tag === "Sent" ? outcome.providerMessageId : "not sent"
      expect(captured.map((c) => c.headers["content-type"])).toEqual([
        "application/x-www-form-urlencoded; charset=utf-8",
        "application/x-www-form-urlencoded; charset=utf-8"
      ])
      const decoded = captured.map((c) => {
        expect(verifyTwilioSignature({ authToken: token, url: c.url, params: formParams(c.body), signature: signatureOf(c) })).toBe(true)
        expect(callbackMessageId(c.url)).toEqual(Option.some("birthday:1:enr 9:step/2"))
        return decodeTwilioStatusCallback(c.body)
      })
      expect(decoded).toEqual([Either.right({ messageSid: sid, status: "sent" }), Either.right({ messageSid: sid, status: "delivered" })])
    }))

  it.scopedLive("a forged signature, a changed parameter, an added parameter, a changed URL or another token are refused", () =>
    Effect.gen(function*() {
      const { captured } = yield* sendAndCapture("+14155550102", "winback:4:enr-1:step-1")
      const real = captured[1]!
      const params = formParams(real.body)
      const signature = signatureOf(real)
      const verify = (change: Partial<Parameters<typeof verifyTwilioSignature>[0]>) =>
        verifyTwilioSignature({ authToken: token, url: real.url, params, signature, ...change })
      expect(verify({})).toBe(true)
      expect(verify({ signature: "cXVpdGUgd3Jvbmc9PT09PT09PT09PT0=" })).toBe(false)
      expect(verify({ signature: undefined })).toBe(false)
      expect(verify({ signature: "" })).toBe(false)
      expect(verify({ params: { ...params, MessageStatus: "failed" } })).toBe(false)
      expect(verify({ params: { ...params, ErrorCode: "30003" } })).toBe(false)
      expect(verify({ url: real.url.replace("messageId=winback", "messageId=other") })).toBe(false)
      expect(verify({ url: real.url.replace("127.0.0.1", "evil.example.com") })).toBe(false)
      expect(verify({ authToken: Redacted.make("another-token") })).toBe(false)
      expect(verify({ url: "not a url" })).toBe(false)
    }))

  it.scopedLive("an undelivered message reports Twilio's error code", () =>
    Effect.gen(function*() {
      const to = "+14155550103"
      const { captured, outcome } = yield* sendAndCapture(to, "points:1:enr-2:step-1", (server) => server.failDelivery(to, "undelivered", 30003))
      const last = captured[1]!
      expect(verifyTwilioSignature({ authToken: token, url: last.url, params: formParams(last.body), signature: signatureOf(last) })).toBe(true)
      expect(decodeTwilioStatusCallback(last.body)).toEqual(
        Either.right({ messageSid: outcome._tag === "Sent" ? outcome.providerMessageId : "", status: "undelivered", errorCode: 30003 })
      )
    }))

  it.scopedLive("a callback Twilio cannot deliver is recorded by the test server, not lost silently", () =>
    Effect.gen(function*() {
      const server = yield* twilioServer
      const nowhere = `http://127.0.0.1:${yield* Effect.promise(() => freePort())}`
      const channel = makeTwilioSms({ accountSid: ACCOUNT, authToken: token, from: "+15005550006", apiUrl: server.url, statusCallbackBase: nowhere })
      expect((yield* channel.send(message("+14155550104", "m-1")))._tag).toBe("Sent")
      yield* until("two callback attempts", () => server.callbacks.length === 2)
      expect(server.callbacks.map((c) => [c.params["MessageStatus"], c.answer])).toEqual([["sent", "ECONNREFUSED"], ["delivered", "ECONNREFUSED"]])
    }))
})

describe("status callback bodies", () => {
  const SID = "SM0123456789abcdef0123456789abcdef"

  it("decodes the fields the engine records and ignores the rest", () => {
    expect(decodeTwilioStatusCallback(`MessageSid=${SID}&MessageStatus=failed&ErrorCode=30006&To=%2B14155550100&AccountSid=${ACCOUNT}`)).toEqual(
      Either.right({ messageSid: SID, status: "failed", errorCode: 30006 })
    )
    // an empty ErrorCode is no code
    expect(decodeTwilioStatusCallback(`MessageSid=${SID}&MessageStatus=delivered&ErrorCode=`)).toEqual(Either.right({ messageSid: SID, status: "delivered" }))
    expect(decodeTwilioStatusCallback({ MessageSid: SID, MessageStatus: "sent" })).toEqual(Either.right({ messageSid: SID, status: "sent" }))
  })

  it("refuses a bad body with an error naming each bad field", () => {
    const refusal = (body: string) => Either.match(decodeTwilioStatusCallback(body), { onLeft: (e) => e.message, onRight: () => "accepted" })
    expect(refusal("")).toBe("Twilio status callback: MessageSid: is missing; MessageStatus: is missing")
    expect(refusal(`MessageSid=${SID}&MessageStatus=lost`)).toBe(
      'Twilio status callback: MessageStatus: expected a Twilio message status (queued, sent, delivered, undelivered, failed, …), got "lost"'
    )
    expect(refusal("MessageSid=CA123&MessageStatus=sent")).toBe("Twilio status callback: MessageSid: expected a message SID: SM or MM and 32 hex digits")
    expect(refusal(`MessageSid=${SID}&MessageStatus=failed&ErrorCode=abc`)).toBe('Twilio status callback: ErrorCode: Unable to decode "abc" into a number')
    expect(refusal(`MessageSid=${SID}&MessageStatus=sent&MessageStatus=delivered`)).toContain("MessageStatus: ")
    expect(refusal("{\"MessageSid\":1}")).toBe("Twilio status callback: MessageSid: is missing; MessageStatus: is missing")
  })

  it("reads memberflow's message id from the callback URL", () => {
    expect(callbackMessageId("https://crm.example.com/webhooks/twilio?messageId=a%3Ab%2Fc")).toEqual(Option.some("a:b/c"))
    expect(callbackMessageId("/webhooks/twilio?messageId=x")).toEqual(Option.some("x"))
    expect(callbackMessageId("/webhooks/twilio")).toEqual(Option.none())
    expect(callbackMessageId("/webhooks/twilio?messageId=")).toEqual(Option.none())
  })
})
