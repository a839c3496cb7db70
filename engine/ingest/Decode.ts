import { Either, ParseResult, Schema } from "effect"
import { Envelope, type MemberEvent, StandardProperties, type StandardType } from "../../schemas/Event.ts"

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
  const pending: Array<{ readonly value: object; readonly depth: number }> = [{ value: root, depth: 1 }]
  for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
    if (next.depth > MAX_DEPTH) return TOO_DEEP
    const array = Array.isArray(next.value)
    if (strings && !array && Object.keys(next.value).some((key) => LONE_SURROGATE.test(key))) return NOT_UNICODE
    for (const child of array ? (next.value as ReadonlyArray<unknown>) : Object.values(next.value)) {
      if (typeof child === "object" && child !== null) pending.push({ value: child, depth: next.depth + 1 })
      else if (strings && typeof child === "string" && LONE_SURROGATE.test(child)) return NOT_UNICODE
    }
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
  if (isEnvelope(json)) {
    const record = json as Omit<Envelope, "properties"> & { readonly properties?: Envelope["properties"] }
    event = { ...record, properties: record.properties ?? {} }
  } else {
    const envelope = decodeEnvelope(json)
    if (Either.isLeft(envelope)) return Either.left(`envelope: ${formatError(envelope.left, json)}`)
    event = envelope.right
  }
  if (!dayExists(event.occurredAt)) {
    return Either.left(`envelope: occurredAt: ${event.occurredAt.slice(0, 10)} is not a day of the calendar`)
  }
  const expectedSubject = `${options.subjectPrefix}.${event.type}`
  if (subject !== expectedSubject) {
    return Either.left(`type "${event.type}" does not match subject "${subject}" (expected "${expectedSubject}")`)
  }
  const at = Date.parse(event.occurredAt)
  if (at > options.now + FUTURE_TOLERANCE_MS) {
    return Either.left(`occurredAt ${event.occurredAt} is more than 5 minutes in the future`)
  }
  let properties: Readonly<Record<string, unknown>> = event.properties
  const decodeProperties = decoders[event.type as StandardType]
  if (decodeProperties !== undefined && propertyGuards.get(event.type)?.(event.properties) !== true) {
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
