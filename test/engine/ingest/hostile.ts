import fc from "fast-check"
import { StandardProperties } from "../../../schemas/Event.ts"

/**
 * Hostile event input for property-based tests, each case with what events.md says must happen to
 * it: an envelope is accepted exactly when every field is valid and the subject is its type's.
 * Shared by the pure decoder fuzz and the engine-level hostile input test.
 */

/** A JSON number written as it appears on the wire (`1e309`, `-0`): JSON.stringify cannot write those. */
export class Raw {
  constructor(readonly text: string) {}
}

/** JSON text of a value that may hold `Raw` numbers; own `__proto__` keys are written like any other. */
export const toJson = (value: unknown): string => {
  if (value instanceof Raw) return value.text
  if (Array.isArray(value)) return `[${value.map(toJson).join(",")}]`
  if (typeof value === "object" && value !== null) {
    return `{${Object.entries(value).map(([key, v]) => `${JSON.stringify(key)}:${toJson(v)}`).join(",")}}`
  }
  return JSON.stringify(value) ?? "null"
}

/** JSON with keys sorted, for comparing what went in with what came out. */
export const canonical = (value: unknown): string => {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`
  if (typeof value === "object" && value !== null) {
    const keys = Object.keys(value).sort()
    return `{${keys.map((key) => `${JSON.stringify(key)}:${canonical((value as Record<string, unknown>)[key])}`).join(",")}}`
  }
  return JSON.stringify(value) ?? "null"
}

/** A field choice: its value (undefined = left out) and whether events.md allows it. */
interface Pick {
  readonly ok: boolean
  readonly value?: unknown
}

const valid = (arb: fc.Arbitrary<unknown>): fc.Arbitrary<Pick> => arb.map((value) => ({ ok: true, value }))
const invalid = (arb: fc.Arbitrary<unknown>): fc.Arbitrary<Pick> => arb.map((value) => ({ ok: false, value }))
const absent = (ok: boolean): fc.Arbitrary<Pick> => fc.constant({ ok })

/** Mostly valid, so that a fair share of whole envelopes is valid too. */
const field = (good: fc.Arbitrary<unknown>, bad: fc.Arbitrary<unknown>, required: boolean): fc.Arbitrary<Pick> =>
  fc.oneof(
    { arbitrary: valid(good), weight: 6 },
    { arbitrary: invalid(bad), weight: 1 },
    { arbitrary: absent(!required), weight: required ? 1 : 3 }
  )

const LONE = /\p{Cs}/u

/** A string or key anywhere with an unpaired surrogate: not Unicode text, refused wherever it is. */
export const holdsLoneSurrogate = (value: unknown): boolean => {
  if (typeof value === "string") return LONE.test(value)
  if (Array.isArray(value)) return value.some(holdsLoneSurrogate)
  if (typeof value === "object" && value !== null && !(value instanceof Raw)) {
    return Object.entries(value).some(([key, v]) => LONE.test(key) || holdsLoneSurrogate(v))
  }
  return false
}

// ------------------------------------------------------------------------------------------- values

export const ODD_STRINGS = [
  "", " ", "\u0000", "\u200b", "\u202eevil", "👩‍👩‍👧", "\ud800", "x\udc00", "a\ud83d", "null", "NaN", "Infinity", "-0", "1e309",
  "__proto__", "constructor", "<script>alert(1)</script>", "'; DROP TABLE events; --", "\\u0000", "%s%n", "２０２６", "x".repeat(129),
  "x".repeat(5000)
] as const

export const oddNumbers = fc.constantFrom<unknown>(
  new Raw("1e309"), new Raw("-1e309"), new Raw("-0"), new Raw("1e-400"), new Raw("123456789012345678901234567890"),
  new Raw("0.1e1"), new Raw("1E2"), 0, -1, 0.5, Number.MAX_SAFE_INTEGER + 2, Number.MIN_VALUE, -Number.MAX_VALUE
)

export const anyString = fc.oneof(
  fc.string({ unit: "binary", maxLength: 40 }),
  fc.string({ unit: "grapheme", maxLength: 20 }),
  fc.constantFrom<string>(...ODD_STRINGS)
)

const scalar = fc.oneof(anyString, fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true }), fc.boolean(), fc.constant(null), oddNumbers)

/** Anything JSON can hold, with odd strings and numbers, a few levels deep. */
export const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  { arbitrary: scalar, weight: 4 },
  fc.jsonValue({ maxDepth: 3 }),
  fc.array(scalar, { maxLength: 3 }),
  fc.dictionary(anyString, scalar, { maxKeys: 3 })
)

const notString = fc.oneof(fc.integer(), fc.boolean(), fc.constant(null), fc.array(fc.string({ maxLength: 5 }), { maxLength: 2 }), fc.constant({}), oddNumbers)
const notNumber = fc.oneof(fc.string({ maxLength: 8 }), fc.boolean(), fc.constant(null), fc.constant([1]), fc.constant({}), fc.constantFrom(new Raw("1e309"), new Raw("-1e309")))
const text = fc.oneof(fc.string({ maxLength: 30 }), fc.string({ unit: "binary", maxLength: 30 }), fc.constantFrom("", "👩‍👩‍👧", "<b>&amp;</b>", "x\ud800"))

// ----------------------------------------------------------------------------------------- envelope

const goodId = fc.oneof(
  fc.uuid(),
  fc.ulid(),
  fc.string({ unit: "binary", minLength: 1, maxLength: 128 }).filter((s) => s.length <= 128 && !LONE.test(s)),
  fc.constantFrom("x", "x".repeat(128), "👩‍👩‍👧", "__proto__", "a.b>c*", "'; DROP TABLE events; --")
)
/** Not 1–128 characters of text. */
const badLength = fc.oneof(
  fc.constantFrom<unknown>("", "x".repeat(129), "x".repeat(5000), 42, 0, true, null, [], ["id"], {}, new Raw("1e309")),
  fc.string({ minLength: 129, maxLength: 300 })
)
/** Ids are also refused with an unpaired surrogate: through UTF-8 they would collide. */
const badId = fc.oneof(badLength, fc.constantFrom("\ud800", "ok\udfff"), fc.string({ minLength: 1, maxLength: 20 }).map((s) => `${s}\ud83d`))

const STANDARD = new Set(Object.keys(StandardProperties))
const goodFreeType = fc.stringMatching(/^[a-z][a-z0-9_]{0,10}(\.[a-z0-9_]{1,8}){0,3}$/).filter((t) => !STANDARD.has(t))
const badType = fc.constantFrom<unknown>("", "Purchase", "purchase.", ".purchase", "a..b", "1st", "a b", "événement", "purchase\n", "a-b", "A", 7, null, ["purchase"], {})

const pad = (n: number, width = 2) => String(Math.abs(n)).padStart(width, "0")

/** An instant written as ISO-8601 with an offset, at one of the precisions the spec allows. */
const writtenAt = (min: number, max: number): fc.Arbitrary<string> =>
  fc
    .record({
      ms: fc.integer({ min, max }),
      offsetMinutes: fc.integer({ min: -12 * 60, max: 14 * 60 }),
      precision: fc.constantFrom("minutes", "seconds", "millis", "nanos"),
      zulu: fc.boolean(),
      colon: fc.boolean()
    })
    .map(({ ms, offsetMinutes, precision, zulu, colon }) => {
      const offset = zulu ? 0 : offsetMinutes
      const local = new Date(ms + offset * 60_000).toISOString() // the wall clock at that offset
      const base = local.slice(0, 16)
      const time =
        precision === "minutes"
          ? base
          : precision === "seconds"
            ? local.slice(0, 19)
            : precision === "millis"
              ? local.slice(0, 23)
              : `${local.slice(0, 23)}456789`
      const sign = offset < 0 ? "-" : "+"
      const zone = zulu ? "Z" : `${sign}${pad(Math.trunc(Math.abs(offset) / 60))}${colon ? ":" : ""}${pad(Math.abs(offset) % 60)}`
      return `${time}${zone}`
    })

const goodOccurredAt = (now: number) =>
  fc.oneof(
    { arbitrary: writtenAt(Date.parse("1970-01-01T00:00:00Z"), now + 4 * 60_000), weight: 8 },
    fc.constantFrom("2024-02-29T12:00:00+08:00", "2000-02-29T00:00Z", "1970-01-01T00:00:00Z", "2025-12-31T23:59:59.999-05:00")
  )

const badOccurredAt = (now: number) =>
  fc.oneof(
    // 7 minutes: written to the minute, a time 6 minutes ahead could read as 5 minutes and a moment,
    // and an engine slow to receive it (a loaded CI machine) rightly took it as inside the 5 minutes'
    // tolerance (HostileInput failed so once, 2026-12-04).
    writtenAt(now + 7 * 60_000, now + 10 * 365 * 86_400_000),
    fc.constantFrom<unknown>(
      "2026-01-05T10:00:00", "2026-01-05", "2026-02-30T10:00:00Z", "2025-02-29T00:00Z", "2026-04-31T10:00+08:00", "2026-13-01T10:00Z",
      "2026/01/05 10:00:00Z", "Mon, 05 Jan 2026 10:00:00 GMT", "1767600000000", 1767600000000, "yesterday", "", "2026-01-05T10:00:00+8",
      "2026-01-05T25:00:00Z", "2026-01-05T10:00:00.Z", "２０２６-01-05T10:00Z", "2026-01-05t10:00:00z", "+002026-01-05T10:00:00Z",
      "2026-01-05T10:00:00Z\n", " 2026-01-05T10:00:00Z", "2026-01-05T10:00:00+24:00", "2026-01-05T10:00:00Z\ud800", null, [], new Raw("-0")
    )
  )

const goodProperties = fc.dictionary(anyString, fc.jsonValue({ maxDepth: 4 }), { maxKeys: 5 })
const badProperties = fc.constantFrom<unknown>(null, [], [{}], "phone=+8613812345678", 42, true, new Raw("1e309"))

const goodSource = fc.oneof(fc.constantFrom("pos", "miniapp", "web", "crm", "", "x".repeat(64)), fc.string({ unit: "binary", maxLength: 64 }).filter((s) => s.length <= 64))
const badSource = fc.oneof(fc.constantFrom<unknown>(7, null, true, {}, ["pos"]), fc.string({ minLength: 65, maxLength: 200 }))

const ENVELOPE_KEYS = new Set(["id", "type", "memberId", "occurredAt", "properties", "source"])

/** Unknown extra keys: events.md does not forbid them, the envelope ignores them. */
const extras = (known: ReadonlySet<string>) =>
  fc.dictionary(anyString.filter((k) => !known.has(k)), hostileValue, { maxKeys: 2 })

export interface EnvelopeCase {
  readonly subject: string
  /** field → value; a field left out is absent */
  readonly envelope: Record<string, unknown>
  readonly idOk: boolean
  /** every field valid (the subject aside) */
  readonly fieldsOk: boolean
  /** what events.md says: accepted, or refused */
  readonly accept: boolean
}

/** A subject NATS accepts: dot-separated tokens without spaces, wildcards or empty tokens. */
export const natsSafe = (subject: string): boolean => /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/.test(subject)

const subjectFor = (prefix: string, type: unknown) =>
  fc.oneof(
    { arbitrary: fc.constant(`${prefix}.${String(type)}`), weight: 8 },
    fc.constantFrom(`${prefix}.other_type`, `${prefix}.${String(type)}.x`, `other.${String(type)}`, `${prefix}.purchase`, prefix)
  )

const assemble = (prefix: string, picks: Record<string, Pick>, extra: Record<string, unknown>, subject: string): EnvelopeCase => {
  const envelope: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(extra)) Object.defineProperty(envelope, key, { value, enumerable: true, writable: true, configurable: true })
  for (const [key, pick] of Object.entries(picks)) if ("value" in pick) envelope[key] = pick.value
  const allOk = Object.values(picks).every((pick) => pick.ok) && !holdsLoneSurrogate(envelope)
  return { subject, envelope, idOk: picks["id"]?.ok === true, fieldsOk: allOk, accept: allOk && subject === `${prefix}.${String(picks["type"]?.value)}` }
}

/** Envelopes of free-form types with every field valid, wrong-typed, odd or missing. */
export const envelopeCase = (prefix: string, now: number): fc.Arbitrary<EnvelopeCase> =>
  fc
    .record({
      id: field(goodId, badId, true),
      type: field(goodFreeType, badType, true),
      memberId: field(goodId, badId, true),
      occurredAt: field(goodOccurredAt(now), badOccurredAt(now), true),
      properties: field(goodProperties, badProperties, false),
      source: field(goodSource, badSource, false)
    })
    .chain((picks) =>
      fc.tuple(fc.constant(picks), extras(ENVELOPE_KEYS), subjectFor(prefix, picks.type.value)).map(([p, extra, subject]) => assemble(prefix, p, extra, subject))
    )

// ---------------------------------------------------------------------------------- standard types

type Spec = Record<string, readonly [good: fc.Arbitrary<unknown>, bad: fc.Arbitrary<unknown>, required: boolean]>

const positive = fc.oneof(fc.double({ min: 0.01, max: 1e9, noNaN: true }), fc.integer({ min: 1 }), fc.constantFrom<unknown>(new Raw("1E2"), new Raw("0.5e1"), Number.MIN_VALUE, 999_999_999_999.99))
/** Not above 0 — or not below MAX_AMOUNT, which ClickHouse's Decimal(18, 2) could not store. */
const notPositive = fc.constantFrom<unknown>(0, -1, -0.01, new Raw("-0"), new Raw("1e309"), new Raw("1e-400"), "5000", null, true, [5], 1e12, 1e16, new Raw("1e300"), Number.MAX_VALUE)
const finite = fc.oneof(fc.double({ noNaN: true, noDefaultInfinity: true }), fc.integer(), fc.constantFrom<unknown>(new Raw("-0"), new Raw("1e-400")))
const orderId = goodId
const badOrderId = badLength
const email = fc.tuple(fc.stringMatching(/^[a-z0-9._%+-]{1,20}$/), fc.stringMatching(/^[a-z0-9-]{1,10}(\.[a-z]{2,6}){1,2}$/)).map(([local, domain]) => `${local}@${domain}`)
export const e164 = fc.tuple(fc.integer({ min: 1, max: 9 }), fc.stringMatching(/^\d{6,14}$/)).map(([first, rest]) => `+${first}${rest}`)
const dayOfYear = fc.tuple(fc.integer({ min: 1, max: 12 }), fc.integer({ min: 1, max: 28 })).map(([m, d]) => `${pad(m)}-${pad(d)}`)

const attributes: Spec = {
  name: [text, notString, false],
  email: [email, fc.oneof(notString, fc.constantFrom("lily", "lily@", "@x.com", "a b@x.com", "lily@example", "")), false],
  phone: [e164, fc.oneof(notString, fc.constantFrom<unknown>("8613812345678", "+0123456", "+86 138 1234 5678", "+12345", "+1234567890123456", "", new Raw("8613812345678"))), false],
  wechatOpenId: [fc.string({ minLength: 1, maxLength: 40 }), fc.oneof(notString, fc.constant("")), false],
  birthday: [
    fc.oneof(dayOfYear, fc.tuple(fc.integer({ min: 1900, max: 2020 }), dayOfYear).map(([y, md]) => `${y}-${md}`)),
    fc.oneof(notString, fc.constantFrom("1990-13-01", "13-01", "00-10", "1990-01-32", "1990/01/01", "19900101", "")),
    false
  ],
  timezone: [fc.constantFrom("Asia/Shanghai", "Asia/Taipei", "UTC", "America/New_York", "Europe/London", "Asia/Hong_Kong"), fc.oneof(notString, fc.constantFrom("Mars/Olympus_Mons", "Asia/Beijing", "", " UTC", "+08:00")), false],
  locale: [fc.constantFrom("zh-CN", "zh-TW", "en", "ja"), notString, false],
  tier: [text, notString, false],
  consent: [
    fc.record({ sms: fc.boolean(), email: fc.boolean(), wechat: fc.boolean() }, { requiredKeys: [] }),
    fc.constantFrom<unknown>({ sms: "yes" }, { email: null }, { wechat: 1 }, true, "all", [true], null),
    false
  ]
}

const item = fc.record(
  { sku: text, category: text, price: finite, quantity: fc.integer({ min: -5, max: 100 }) },
  { requiredKeys: ["sku"] }
)
const messageFields: Spec = { messageId: [text, notString, true], channel: [text, notString, true], reason: [text, notString, false] }

export const STANDARD_SPECS: Readonly<Record<string, Spec>> = {
  "member.registered": attributes,
  "member.updated": attributes,
  "consent.updated": {
    channel: [fc.constantFrom("sms", "email", "wechat", "all"), fc.constantFrom<unknown>("SMS", "push", "", 1, null, ["sms"]), true],
    granted: [fc.boolean(), fc.constantFrom<unknown>("no", "true", 0, 1, null), true]
  },
  purchase: {
    orderId: [orderId, badOrderId, true],
    amount: [positive, notPositive, true],
    currency: [fc.stringMatching(/^[A-Z]{3}$/), fc.constantFrom<unknown>("cny", "CN", "CNYY", "元", 156, null), true],
    items: [fc.array(item, { maxLength: 3 }), fc.constantFrom<unknown>("items", { sku: "a" }, [{}], [{ sku: 1 }], [{ sku: "a", price: "9" }], [null]), false],
    channel: [fc.constantFrom("online", "store"), fc.constantFrom<unknown>("mobile", "", null, 1), false]
  },
  refund: { orderId: [orderId, badOrderId, true], amount: [positive, notPositive, true] },
  "points.changed": {
    delta: [finite, notNumber, true],
    balance: [finite, notNumber, true],
    reason: [text, notString, false],
    expiresAt: [fc.constantFrom(null, "2026-12-31", "2026-12-31T00:00:00Z"), fc.constantFrom<unknown>("31/12/2026", "", 20261231, "soon", true), false]
  },
  "tier.changed": {
    from: [fc.oneof(fc.constant(null), text), fc.constantFrom<unknown>(5, [], true), true],
    to: [text, notString, true],
    reason: [text, notString, false]
  },
  "tags.updated": {
    add: [fc.array(text, { maxLength: 3 }), fc.constantFrom<unknown>("vip", [1], [null], {}, null), false],
    remove: [fc.array(text, { maxLength: 3 }), fc.constantFrom<unknown>("vip", [1], [null], {}, null), false]
  },
  "tag.added": { tag: [text, notString, true] },
  "tag.removed": { tag: [text, notString, true] },
  "message.delivered": messageFields,
  "message.opened": messageFields,
  "message.clicked": messageFields,
  "message.failed": messageFields,
  "wechat.subscribed": {
    templateId: [text, notString, true],
    count: [fc.integer({ min: 1, max: 1000 }), fc.constantFrom<unknown>(0, -1, 1.5, "1", null, new Raw("1e309")), false]
  }
}

/** A standard type's properties with each field valid, wrong or missing, plus unknown keys (kept). */
export const standardCase = (prefix: string, now: number): fc.Arbitrary<EnvelopeCase & { readonly type: string }> =>
  fc.constantFrom(...Object.keys(STANDARD_SPECS)).chain((type) => {
    const spec = STANDARD_SPECS[type] ?? {}
    const picks = Object.fromEntries(Object.entries(spec).map(([name, [good, bad, required]]) => [name, field(good, bad, required)]))
    return fc
      .record({ props: fc.record(picks), extra: extras(new Set(Object.keys(spec))), id: goodId, memberId: goodId, occurredAt: goodOccurredAt(now) })
      .map(({ props, extra, id, memberId, occurredAt }) => {
        const properties: Record<string, unknown> = {}
        for (const [key, value] of Object.entries(extra)) Object.defineProperty(properties, key, { value, enumerable: true, writable: true, configurable: true })
        for (const [key, pick] of Object.entries(props)) if ("value" in pick) properties[key] = pick.value
        const envelope = { id, type, memberId, occurredAt, properties }
        const ok = Object.values(props).every((pick) => pick.ok) && !holdsLoneSurrogate(envelope)
        return { type, subject: `${prefix}.${type}`, envelope, idOk: true, fieldsOk: ok, accept: ok }
      })
  })

/** Bytes that are rarely JSON: random, truncated envelopes, invalid UTF-8, BOMs, NULs. */
export const hostileBytes: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc.uint8Array({ maxLength: 300 }),
  fc.constantFrom(
    new Uint8Array([]),
    new Uint8Array([0xef, 0xbb, 0xbf, ...new TextEncoder().encode('{"id":"bom"}')]),
    new Uint8Array([0xff, 0xfe, 0x7b, 0x00]),
    new Uint8Array([0xc3, 0x28]),
    new Uint8Array([0xed, 0xa0, 0x80]), // a surrogate encoded in UTF-8: invalid
    new TextEncoder().encode("\u0000\u0000"),
    new TextEncoder().encode('{"id": "x", "type": "purchase"'),
    new TextEncoder().encode("null"),
    new TextEncoder().encode("1e309"),
    new TextEncoder().encode('"just a string"')
  ),
  fc.string({ unit: "binary", maxLength: 200 }).map((s) => new TextEncoder().encode(s))
)
