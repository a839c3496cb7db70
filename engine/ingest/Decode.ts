import { Either, ParseResult, Schema } from "effect"
import { Envelope, type MemberEvent, StandardProperties, type StandardType } from "../../schemas/Event.ts"

/** Events dated further than this in the future are refused (events.md, "Event time rules"). */
export const FUTURE_TOLERANCE_MS = 5 * 60_000

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

const formatError = (error: ParseResult.ParseError): string =>
  ParseResult.ArrayFormatter.formatErrorSync(error)
    .map((issue) => (issue.path.length > 0 ? `${issue.path.join(".")}: ${issue.message}` : issue.message))
    .join("; ")

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
    return Either.left(`payload is not JSON: ${error instanceof Error ? error.message : String(error)}`)
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    return Either.left("payload must be one JSON object (the event envelope)")
  }
  let event: Envelope
  if (isEnvelope(json)) {
    const record = json as Omit<Envelope, "properties"> & { readonly properties?: Envelope["properties"] }
    event = { ...record, properties: record.properties ?? {} }
  } else {
    const envelope = decodeEnvelope(json)
    if (Either.isLeft(envelope)) return Either.left(`envelope: ${formatError(envelope.left)}`)
    event = envelope.right
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
    if (Either.isLeft(decoded)) return Either.left(`properties of ${event.type}: ${formatError(decoded.left)}`)
    properties = decoded.right
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
