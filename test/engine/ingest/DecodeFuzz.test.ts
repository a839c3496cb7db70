import { Either } from "effect"
import fc from "fast-check"
import { describe, expect, it } from "vitest"
import { decodeEvent, FUTURE_TOLERANCE_MS, MAX_DEPTH } from "../../../engine/ingest/Decode.ts"
import type { MemberEvent } from "../../../schemas/Event.ts"
import { anyString, canonical, e164, type EnvelopeCase, envelopeCase, holdsLoneSurrogate, hostileBytes, hostileValue, Raw, standardCase, toJson } from "./hostile.ts"

const PREFIX = "events"
const NOW = Date.parse("2026-06-01T08:00:00Z")
const OPTIONS = { subjectPrefix: PREFIX, now: NOW, maxBytes: 64 * 1024 }
const TYPE = /^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*$/
const encode = (text: string) => new TextEncoder().encode(text)
const runs = (numRuns: number) => ({ numRuns, seed: 20_260_601 })

const decode = (subject: string, data: Uint8Array, options = OPTIONS) => decodeEvent(subject, data, options)

/** What every outcome must look like, whatever went in. */
const wellFormed = (result: Either.Either<MemberEvent, string>, subject: string): void => {
  if (Either.isLeft(result)) {
    expect(typeof result.left).toBe("string")
    expect(result.left.trim().length, "a refusal names its reason").toBeGreaterThan(0)
    // Reasons describe the offending value, they never copy it: they stay short, and are text
    // ClickHouse can store (rejected_events.reason).
    expect(result.left.length).toBeLessThan(2_000)
    expect(result.left).not.toMatch(/\p{Cs}/u)
    return
  }
  const event = result.right
  for (const id of [event.id, event.memberId]) {
    expect(typeof id).toBe("string")
    expect(id.length).toBeGreaterThanOrEqual(1)
    expect(id.length).toBeLessThanOrEqual(128)
    expect(id).not.toMatch(/\p{Cs}/u)
  }
  expect(event.type).toMatch(TYPE)
  expect(subject).toBe(`${PREFIX}.${event.type}`)
  expect(event.at).toBe(Date.parse(event.occurredAt))
  expect(Number.isFinite(event.at)).toBe(true)
  expect(event.at).toBeLessThanOrEqual(NOW + FUTURE_TOLERANCE_MS)
  expect(typeof event.properties === "object" && event.properties !== null && !Array.isArray(event.properties)).toBe(true)
  if (event.source !== undefined) expect(event.source.length).toBeLessThanOrEqual(64)
  // What ingest does next with it must not throw either, and ClickHouse must take every string.
  expect(JSON.stringify(event)).not.toMatch(/\\u[dD][89a-fA-F]/)
}

/** An accepted event keeps every field as sent, and sending it again gives the same event. */
const roundTrips = (c: EnvelopeCase, event: MemberEvent): void => {
  const sent = JSON.parse(toJson(c.envelope)) as Record<string, unknown>
  expect(event.id).toBe(sent["id"])
  expect(event.type).toBe(sent["type"])
  expect(event.memberId).toBe(sent["memberId"])
  expect(event.occurredAt).toBe(sent["occurredAt"])
  expect(event.source).toBe(sent["source"])
  expect(canonical(event.properties)).toBe(canonical(sent["properties"] ?? {}))
  const again = decode(c.subject, encode(JSON.stringify({ ...event, at: undefined })))
  expect(Either.isRight(again), Either.isLeft(again) ? again.left : "").toBe(true)
  if (Either.isRight(again)) expect(canonical(again.right)).toBe(canonical(event))
}

const judged = (c: EnvelopeCase) => {
  const result = decode(c.subject, encode(toJson(c.envelope)))
  wellFormed(result, c.subject)
  expect(Either.isRight(result), `${c.subject} ${toJson(c.envelope)}\n→ ${Either.isLeft(result) ? result.left : "accepted"}`).toBe(c.accept)
  if (Either.isRight(result)) roundTrips(c, result.right)
  return result
}

describe("the event boundary never throws, and refuses exactly what events.md refuses", () => {
  it("random bytes on random subjects: an event or a reason, never a throw", () => {
    const subject = fc.oneof(fc.constantFrom(`${PREFIX}.purchase`, `${PREFIX}.x`, PREFIX, ""), anyString.map((s) => `${PREFIX}.${s}`))
    fc.assert(
      fc.property(subject, hostileBytes, (s, bytes) => {
        const result = decode(s, bytes)
        wellFormed(result, s)
        expect(Either.isLeft(result)).toBe(true)
      }),
      runs(2_000)
    )
  })

  it("any JSON value as the payload: only an envelope object can be an event", () => {
    fc.assert(
      fc.property(fc.oneof(hostileValue, fc.jsonValue({ maxDepth: 6 })), (value) => {
        const result = decode(`${PREFIX}.purchase`, encode(toJson(value)))
        wellFormed(result, `${PREFIX}.purchase`)
        if (typeof value !== "object" || value === null || Array.isArray(value) || value instanceof Raw) {
          expect(Either.isLeft(result) && result.left).toBe("payload must be one JSON object (the event envelope)")
        }
      }),
      runs(1_500)
    )
  })

  it("envelopes with each field valid, wrong-typed, odd (unicode, lone surrogates, huge, empty) or missing are accepted exactly when all are valid", () => {
    let accepted = 0
    fc.assert(
      fc.property(envelopeCase(PREFIX, NOW), (c) => {
        if (Either.isRight(judged(c))) accepted++
      }),
      runs(2_000)
    )
    // The generator is not so hostile that the accepting side goes untested.
    expect(accepted).toBeGreaterThan(300)
  })

  it("standard types: a property of the wrong type refuses the event, unknown keys are kept", () => {
    let accepted = 0
    fc.assert(
      fc.property(standardCase(PREFIX, NOW), (c) => {
        const result = judged(c)
        if (Either.isRight(result)) accepted++
        else if (!holdsLoneSurrogate(c.envelope)) expect(result.left).toMatch(new RegExp(`^properties of ${c.type.replace(/\./g, "\\.")}: `))
      }),
      runs(2_000)
    )
    expect(accepted).toBeGreaterThan(300)
  })

  it("numbers JSON cannot hold exactly (1e309, -0, 1e-400) or ClickHouse's Decimal(18, 2) cannot store never make a purchase amount", () => {
    const envelope = (amount: string, occurredAt = "2026-05-31T10:00:00+08:00") =>
      `{"id":"n","type":"purchase","memberId":"m","occurredAt":"${occurredAt}","properties":{"orderId":"o","amount":${amount},"currency":"CNY"}}`
    for (const amount of ["1e309", "-1e309", "-0", "0", "1e-400", "-5", "1e12", "1e16", "9999999999999999", "1e300"]) {
      const result = decode(`${PREFIX}.purchase`, encode(envelope(amount)))
      expect(Either.isLeft(result) && result.left, amount).toMatch(/^properties of purchase: amount: /)
    }
    const ok = decode(`${PREFIX}.purchase`, encode(envelope("1E2", "0001-01-01T00:00:00Z")))
    expect(Either.isRight(ok) && ok.right.properties["amount"]).toBe(100)
    expect(Either.isRight(ok) && new Date(ok.right.at).getUTCFullYear()).toBe(1)
    const big = decode(`${PREFIX}.purchase`, encode(envelope("999999999999.99")))
    expect(Either.isRight(big) && big.right.properties["amount"]).toBe(999_999_999_999.99)
  })

  it("nesting deeper than the limit is refused before anything walks it; up to the limit is kept", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 3_000 }), fc.boolean(), (levels, arrays) => {
        const open = arrays ? "[" : '{"a":'
        const close = arrays ? "]" : "}"
        const nested = `${open.repeat(levels)}1${close.repeat(levels)}`
        const text = `{"id":"d","type":"deep.thing","memberId":"m","occurredAt":"2026-05-31T10:00:00Z","properties":{"x":${nested}}}`
        const result = decode(`${PREFIX}.deep.thing`, encode(text))
        wellFormed(result, `${PREFIX}.deep.thing`)
        // envelope (1) → properties (2) → the nested levels
        if (2 + levels <= MAX_DEPTH) expect(Either.isRight(result)).toBe(true)
        else expect(Either.isLeft(result) && result.left).toBe(`payload nests objects and arrays deeper than ${MAX_DEPTH} levels`)
      }),
      runs(300)
    )
  })

  it("a payload over the byte limit is refused by its size alone", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 64 }), hostileBytes, (maxBytes, bytes) => {
        const result = decode(`${PREFIX}.x`, bytes, { ...OPTIONS, maxBytes })
        if (bytes.byteLength > maxBytes) expect(Either.isLeft(result) && result.left).toBe(`payload of ${bytes.byteLength} bytes exceeds the limit of ${maxBytes} bytes`)
        else wellFormed(result, `${PREFIX}.x`)
      }),
      runs(500)
    )
  })

  it("a string or key with an unpaired surrogate is refused wherever it is; paired ones (emoji) are kept", () => {
    // ClickHouse refuses such a string in any insert, and through UTF-8 (KV keys, hashes) every lone
    // surrogate is U+FFFD: member ids "m\ud800" and "m\udc00" would be one member.
    const base = { id: "s", type: "x", memberId: "m", occurredAt: "2026-05-31T10:00:00Z" }
    const lone = fc.constantFrom("\ud800", "\udbff", "\udc00", "\udfff")
    const place = fc.constantFrom("id", "memberId", "source", "value", "key", "nested", "tag")
    fc.assert(
      fc.property(lone, place, fc.string({ maxLength: 5 }), (half, where, around) => {
        const s = `${around}${half}${around}`
        const fields: Record<string, unknown> =
          where === "id" || where === "memberId" || where === "source"
            ? { ...base, [where]: s }
            : where === "value"
              ? { ...base, properties: { note: s } }
              : where === "key"
                ? { ...base, properties: { [s]: 1 } }
                : where === "nested"
                  ? { ...base, properties: { a: [{ b: [s] }] } }
                  : { ...base, type: "tags.updated", properties: { add: [s] } }
        const subject = `${PREFIX}.${String(fields["type"])}`
        const result = decode(subject, encode(JSON.stringify(fields)))
        expect(Either.isLeft(result) && result.left).toMatch(/^payload holds a string with an unpaired UTF-16 surrogate/)
      }),
      runs(300)
    )
    const paired = decode(`${PREFIX}.x`, encode(JSON.stringify({ ...base, memberId: "m😀", properties: { "😀": "\ud83d\ude00" } })))
    expect(Either.isRight(paired) && paired.right.memberId).toBe("m😀")
  })

  it("a refusal never repeats a phone number, email or openid it was sent, whatever their type", () => {
    const contact = fc.record({ phone: e164, email: fc.constantFrom("lily.chen@example.com", "wang.fang@example.cn"), openId: fc.constantFrom("oAbCdEfGhIjKlMnOp", "o6_bmjrPTlm6_2sgVt7hMZOPfL2M") })
    const wrong = (value: string) => fc.constantFrom<unknown>(new Raw(value.replace(/\D/g, "") || "0"), [value], { value }, `${value} `, value.replace("+", "00"))
    fc.assert(
      fc.property(
        contact.chain((c) => fc.tuple(fc.constant(c), wrong(c.phone), wrong(c.email), wrong(c.openId), fc.constantFrom("member.registered", "member.updated"))),
        ([c, phone, email, openId, type]) => {
          const properties = { name: 5, phone, email, wechatOpenId: openId }
          const text = toJson({ id: "c", type, memberId: "m", occurredAt: "2026-05-31T10:00:00Z", properties })
          const result = decode(`${PREFIX}.${type}`, encode(text))
          expect(Either.isLeft(result)).toBe(true)
          const reason = Either.isLeft(result) ? result.left : ""
          for (const clear of [c.phone.slice(1), c.phone.slice(-8), c.email, c.email.split("@")[0] ?? "", c.openId]) expect(reason).not.toContain(clear)
          expect(reason).toContain("name: Expected string, actual a number")
          // Not JSON at all: the parser's message quotes the payload, the reason does not.
          const loose = decode(`${PREFIX}.${type}`, encode(`phone=${c.phone}&email=${c.email}&openid=${c.openId}`))
          expect(Either.isLeft(loose) && loose.left).toMatch(/^payload is not JSON: /)
          for (const clear of [c.phone.slice(1), c.email, c.openId]) expect(Either.isLeft(loose) && loose.left).not.toContain(clear)
        }
      ),
      runs(500)
    )
  })
})
