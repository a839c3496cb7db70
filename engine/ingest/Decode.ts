import { Either, ParseResult, Schema } from "effect"
import {
  BIRTHDAY_PATTERN,
  CURRENCY_PATTERN,
  DATE_ONLY_PATTERN,
  E164_PATTERN,
  EMAIL_PATTERN,
  Envelope,
  EVENT_TYPE_PATTERN,
  type MemberEvent,
  OFFSET_DATE_TIME_PATTERN,
  StandardProperties,
  type StandardType
} from "../../schemas/Event.ts"

/** Events dated further than this in the future are refused (events.md, "Event time rules"). */
export const FUTURE_TOLERANCE_MS = 5 * 60_000

/**
 * Deeper JSON than any event needs. A few thousand levels fit in 64 KiB, parse fine, and then
 * overflow the stack of every recursive walk downstream (JSON.stringify of the member state and
 * the events row), which stopped the engine on the same message after every restart.
 */
export const MAX_DEPTH = 64

/**
 * Money columns are Decimal(18, 2): an amount of 1e16 or more fails the insert of its whole batch,
 * retried forever, so nothing after it was acked. Far above any real order, and a member's total
 * of thousands of such orders still fits.
 */
export const MAX_AMOUNT = 1e12

export interface DecodeOptions {
  readonly subjectPrefix: string
  readonly now: number
  readonly maxBytes: number
}

const decodeEnvelope = Schema.decodeUnknownEither(Envelope, { errors: "all", onExcessProperty: "preserve" })
// Fast path: a type guard over the encoded side (no transformations there) checks a valid event in
// half the time of a decode; only an invalid one pays for the full decode that explains it.
const isEnvelope = Schema.is(Schema.encodedBoundSchema(Envelope))
const propertyGuards = new Map<string, (u: unknown) => boolean>(
  Object.entries(StandardProperties).map(([type, schema]): [string, (u: unknown) => boolean] => [
    type,
    Schema.is(Schema.encodedBoundSchema(schema as Schema.Schema<unknown, Record<string, unknown>>))
  ])
)
const decoders = Object.fromEntries(
  Object.entries(StandardProperties).map(([type, schema]) => [
    type,
    Schema.decodeUnknownEither(schema as Schema.Schema<Record<string, unknown>, Record<string, unknown>>, { errors: "all" })
  ])
) as Record<StandardType, (u: unknown) => Either.Either<Record<string, unknown>, ParseResult.ParseError>>

/*
 * Plain guards for well-formed events, tried before the Schema guards (several times slower, and the
 * largest cost of decoding). Each accepts only what its Schema guard accepts — the same patterns and
 * bounds, and stricter where that is simpler (a purchase with `items` is left to the Schema guard) —
 * so anything they do not accept goes the Schema way as before, with the same outcome.
 */
type Fields = Readonly<Record<string, unknown>>

const isRecord = (u: unknown): u is Fields => typeof u === "object" && u !== null && !Array.isArray(u)
const isString = (u: unknown): u is string => typeof u === "string"
const isBoolean = (u: unknown): boolean => typeof u === "boolean"
const isId = (u: unknown): boolean => typeof u === "string" && u.length >= 1 && u.length <= 128
const isFiniteNumber = (u: unknown): u is number => typeof u === "number" && Number.isFinite(u)
const isPositive = (u: unknown): boolean => isFiniteNumber(u) && u > 0
const matching = (pattern: RegExp) => (u: unknown): boolean => typeof u === "string" && pattern.test(u)
const isStringArray = (u: unknown): boolean => Array.isArray(u) && u.every(isString)
/** Absent (JSON has no undefined values, so undefined is absence) or passing `check`. */
const absentOr = (u: unknown, check: (u: unknown) => boolean): boolean => u === undefined || check(u)

const isEventType = matching(EVENT_TYPE_PATTERN)
const isOffsetDateTime = matching(OFFSET_DATE_TIME_PATTERN)
const isCurrency = matching(CURRENCY_PATTERN)
const isBirthday = matching(BIRTHDAY_PATTERN)
const isE164 = matching(E164_PATTERN)
const isEmail = matching(EMAIL_PATTERN)
const isDateOnly = matching(DATE_ONLY_PATTERN)

// Time zones Intl took, as the Schema filter asks it: kept (few, short) so that Intl is asked once.
const TIME_ZONES_KEPT = 1000
const timeZones = new Set<string>()
const isTimeZone = (u: unknown): boolean => {
  if (typeof u !== "string") return false
  if (timeZones.has(u)) return true
  try {
    new Intl.DateTimeFormat("en", { timeZone: u })
  } catch {
    return false
  }
  if (u.length <= 64 && timeZones.size < TIME_ZONES_KEPT) timeZones.add(u)
  return true
}

const isConsent = (u: unknown): boolean =>
  isRecord(u) && absentOr(u["sms"], isBoolean) && absentOr(u["email"], isBoolean) && absentOr(u["wechat"], isBoolean)

const memberAttributes = (p: Fields): boolean =>
  absentOr(p["name"], isString) &&
  absentOr(p["email"], isEmail) &&
  absentOr(p["phone"], isE164) &&
  absentOr(p["wechatOpenId"], (u) => typeof u === "string" && u.length >= 1) &&
  absentOr(p["birthday"], isBirthday) &&
  absentOr(p["timezone"], isTimeZone) &&
  absentOr(p["locale"], isString) &&
  absentOr(p["tier"], isString) &&
  absentOr(p["consent"], isConsent)

const messageEvent = (p: Fields): boolean => isString(p["messageId"]) && isString(p["channel"]) && absentOr(p["reason"], isString)

/** By standard type, a Map: an event's type is never looked up on an object's prototype. */
const fastPropertyGuards: ReadonlyMap<string, (p: Fields) => boolean> = new Map<StandardType, (p: Fields) => boolean>([
  ["member.registered", memberAttributes],
  ["member.updated", memberAttributes],
  ["consent.updated", (p) => (p["channel"] === "sms" || p["channel"] === "email" || p["channel"] === "wechat" || p["channel"] === "all") && isBoolean(p["granted"])],
  [
    "purchase",
    (p) =>
      isId(p["orderId"]) && isPositive(p["amount"]) && isCurrency(p["currency"]) && p["items"] === undefined &&
      (p["channel"] === undefined || p["channel"] === "online" || p["channel"] === "store")
  ],
  ["refund", (p) => isId(p["orderId"]) && isPositive(p["amount"])],
  [
    "points.changed",
    (p) =>
      isFiniteNumber(p["delta"]) && isFiniteNumber(p["balance"]) && absentOr(p["reason"], isString) &&
      (p["expiresAt"] === undefined || p["expiresAt"] === null || isDateOnly(p["expiresAt"]))
  ],
  ["tier.changed", (p) => (p["from"] === null || isString(p["from"])) && isString(p["to"]) && absentOr(p["reason"], isString)],
  ["tags.updated", (p) => absentOr(p["add"], isStringArray) && absentOr(p["remove"], isStringArray)],
  ["tag.added", (p) => isString(p["tag"])],
  ["tag.removed", (p) => isString(p["tag"])],
  ["message.delivered", messageEvent],
  ["message.opened", messageEvent],
  ["message.clicked", messageEvent],
  ["message.failed", messageEvent],
  ["wechat.subscribed", (p) => isString(p["templateId"]) && absentOr(p["count"], (u) => typeof u === "number" && Number.isSafeInteger(u) && u > 0)]
])

/** The envelope's encoded side, as isEnvelope checks it; `at` is Date.parse(occurredAt), already taken. */
const isPlainEnvelope = (json: Fields, at: number): boolean =>
  isId(json["id"]) &&
  isEventType(json["type"]) &&
  isId(json["memberId"]) &&
  isOffsetDateTime(json["occurredAt"]) &&
  !Number.isNaN(at) &&
  absentOr(json["properties"], isRecord) &&
  absentOr(json["source"], (u) => typeof u === "string" && u.length <= 64)

const kindOf = (value: unknown): string =>
  value === null
    ? "null"
    : Array.isArray(value)
      ? "an array"
      : typeof value === "string"
        ? `a string of ${value.length} characters`
        : typeof value === "object"
          ? "an object"
          : `a ${typeof value}`

const valueAt = (input: unknown, path: ReadonlyArray<PropertyKey>): unknown => {
  let value = input
  for (const key of path) {
    if (typeof value !== "object" || value === null || !Object.hasOwn(value, key)) return undefined
    value = (value as Record<PropertyKey, unknown>)[key]
  }
  return value
}

/**
 * Each problem at its path. The offending value is described by its kind, never echoed: a reason
 * goes to the logs and to `rejected_events.reason`, and a wrong-typed `phone` (a number instead of
 * an E.164 string) would otherwise put the number there in clear — and a 60 KiB string whole.
 */
const formatError = (error: ParseResult.ParseError, input: unknown): string =>
  ParseResult.ArrayFormatter.formatErrorSync(error)
    .map((issue) => {
      const message = issue.message.replace(/, actual [\s\S]*$/, () => `, actual ${kindOf(valueAt(input, issue.path))}`)
      return issue.path.length > 0 ? `${issue.path.join(".")}: ${message}` : message
    })
    .join("; ")

// In a `u` regex a surrogate pair is one code point: only an unpaired half matches.
const LONE_SURROGATE = /\p{Cs}/u
// Valid UTF-8 cannot carry a surrogate: only a JSON `\uD8xx`-style escape can make one.
const SURROGATE_ESCAPE = /\\u[dD][89a-fA-F]/

const TOO_DEEP = `payload nests objects and arrays deeper than ${MAX_DEPTH} levels`
const NOT_UNICODE =
  "payload holds a string with an unpaired UTF-16 surrogate (a lone \\uD800–\\uDFFF escape): not Unicode text, which ClickHouse refuses and UTF-8 cannot carry"

/**
 * Why a parsed payload cannot go further, walked without recursion:
 * - nested deeper than MAX_DEPTH;
 * - a string or key with an unpaired surrogate. ClickHouse refuses such a string in every insert,
 *   so the batch holding it was retried forever; and through UTF-8 (KV keys, hashes) two member
 *   ids that differ only there would be one member.
 */
const structureProblem = (root: object, strings: boolean): string | undefined => {
  // A stack of values and one of their depths (not an object per value); children in the order
  // Object.values gives them, so the first problem found is the one it always was.
  const values: Array<object> = [root]
  const depths: Array<number> = [1]
  for (let value = values.pop(); value !== undefined; value = values.pop()) {
    const depth = depths.pop()!
    if (depth > MAX_DEPTH) return TOO_DEEP
    if (Array.isArray(value)) {
      for (const child of value as ReadonlyArray<unknown>) {
        const problem = visit(child, depth, strings, values, depths)
        if (problem !== undefined) return problem
      }
      continue
    }
    const record = value as Readonly<Record<string, unknown>>
    // for-in over own keys: Object.keys' keys in its order, without an array per object
    if (strings) {
      for (const key in record) if (Object.hasOwn(record, key) && LONE_SURROGATE.test(key)) return NOT_UNICODE
    }
    for (const key in record) {
      if (!Object.hasOwn(record, key)) continue
      const problem = visit(record[key], depth, strings, values, depths)
      if (problem !== undefined) return problem
    }
  }
  return undefined
}

/** One child of a value at `depth`: an object or array waits on the stack, a string is checked now. */
const visit = (child: unknown, depth: number, strings: boolean, values: Array<object>, depths: Array<number>): string | undefined => {
  if (typeof child === "object" && child !== null) {
    values.push(child)
    depths.push(depth + 1)
  } else if (strings && typeof child === "string" && LONE_SURROGATE.test(child)) {
    return NOT_UNICODE
  }
  return undefined
}

/**
 * V8's JSON.parse message without its quote of the payload (which may hold a phone number), and
 * well-formed: it names an astral character by half of it.
 */
const parseFailure = (error: unknown): string =>
  (error instanceof Error ? error.message : String(error))
    .replace(/, (?:\.\.\.)?"[\s\S]*"(?:\.\.\.)? is not valid JSON$/, " (not valid JSON)")
    .replace(/\p{Cs}/gu, "\uFFFD")

const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]

/** V8 reads 2026-02-30 as 2 March; a day the month does not have is refused instead. */
const dayExists = (isoDate: string): boolean => {
  const year = Number(isoDate.slice(0, 4))
  const month = Number(isoDate.slice(5, 7))
  const day = Number(isoDate.slice(8, 10))
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0)
  return day <= (month === 2 && leap ? 29 : (DAYS_IN_MONTH[month - 1] ?? 0))
}

const utf8 = new TextDecoder("utf-8", { fatal: true })

/** `subject === \`${prefix}.${type}\``, compared in place: a string per event made only to compare it. */
const isSubjectOf = (subject: string, prefix: string, type: string): boolean => {
  if (subject.length !== prefix.length + 1 + type.length || subject.charCodeAt(prefix.length) !== 46) return false
  for (let i = 0; i < prefix.length; i++) if (subject.charCodeAt(i) !== prefix.charCodeAt(i)) return false
  const at = prefix.length + 1
  for (let i = 0; i < type.length; i++) if (subject.charCodeAt(at + i) !== type.charCodeAt(i)) return false
  return true
}

/**
 * The event boundary: bytes from NATS in, an accepted event or the reason it is refused out.
 * Pure, so every refusal reason is testable without a broker.
 */
export const decodeEvent = (subject: string, data: Uint8Array, options: DecodeOptions): Either.Either<MemberEvent, string> => {
  if (data.byteLength > options.maxBytes) {
    return Either.left(`payload of ${data.byteLength} bytes exceeds the limit of ${options.maxBytes} bytes`)
  }
  let text: string
  try {
    text = utf8.decode(data)
  } catch {
    return Either.left("payload is not valid UTF-8")
  }
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (error) {
    return Either.left(`payload is not JSON: ${parseFailure(error)}`)
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    return Either.left("payload must be one JSON object (the event envelope)")
  }
  const problem = structureProblem(json, SURROGATE_ESCAPE.test(text))
  if (problem !== undefined) return Either.left(problem)
  let event: Envelope
  const occurred = (json as Fields)["occurredAt"]
  const occurredAt = typeof occurred === "string" ? Date.parse(occurred) : Number.NaN
  if (isPlainEnvelope(json as Fields, occurredAt) || isEnvelope(json)) {
    const record = json as Omit<Envelope, "properties"> & { readonly properties?: Envelope["properties"] }
    // The envelope's fields only (what follows reads no others), without copying the payload's.
    const properties = record.properties ?? {}
    event = record.source === undefined
      ? { id: record.id, type: record.type, memberId: record.memberId, occurredAt: record.occurredAt, properties }
      : { id: record.id, type: record.type, memberId: record.memberId, occurredAt: record.occurredAt, properties, source: record.source }
  } else {
    const envelope = decodeEnvelope(json)
    if (Either.isLeft(envelope)) return Either.left(`envelope: ${formatError(envelope.left, json)}`)
    event = envelope.right
  }
  if (!dayExists(event.occurredAt)) {
    return Either.left(`envelope: occurredAt: ${event.occurredAt.slice(0, 10)} is not a day of the calendar`)
  }
  if (!isSubjectOf(subject, options.subjectPrefix, event.type)) {
    const expectedSubject = `${options.subjectPrefix}.${event.type}`
    return Either.left(`type "${event.type}" does not match subject "${subject}" (expected "${expectedSubject}")`)
  }
  const at = event.occurredAt === occurred ? occurredAt : Date.parse(event.occurredAt)
  if (at > options.now + FUTURE_TOLERANCE_MS) {
    return Either.left(`occurredAt ${event.occurredAt} is more than 5 minutes in the future`)
  }
  let properties: Readonly<Record<string, unknown>> = event.properties
  const decodeProperties = decoders[event.type as StandardType]
  if (decodeProperties !== undefined && fastPropertyGuards.get(event.type)?.(event.properties) !== true && propertyGuards.get(event.type)?.(event.properties) !== true) {
    const decoded = decodeProperties(event.properties)
    if (Either.isLeft(decoded)) return Either.left(`properties of ${event.type}: ${formatError(decoded.left, event.properties)}`)
    properties = decoded.right
  }
  const amount = properties["amount"]
  if ((event.type === "purchase" || event.type === "refund") && typeof amount === "number" && amount >= MAX_AMOUNT) {
    return Either.left(`properties of ${event.type}: amount: must be below ${MAX_AMOUNT} (money is stored with 16 digits before the point)`)
  }
  return Either.right({
    id: event.id,
    type: event.type,
    memberId: event.memberId,
    occurredAt: event.occurredAt,
    at,
    properties,
    source: event.source
  })
}
