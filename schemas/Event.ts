import { Schema } from "effect"

/** The event envelope every upstream service publishes (events.md). */

/** The patterns below are shared with the decoder's fast guard (engine/ingest/Decode.ts): one source. */
export const EVENT_TYPE_PATTERN = /^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*$/
export const OFFSET_DATE_TIME_PATTERN = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})$/
export const CURRENCY_PATTERN = /^[A-Z]{3}$/
export const BIRTHDAY_PATTERN = /^(\d{4}-)?(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$/
export const E164_PATTERN = /^\+[1-9]\d{6,14}$/
export const EMAIL_PATTERN = /^[^\s@]+@[^\s@]+\.[^\s@]+$/
export const DATE_ONLY_PATTERN = /^\d{4}-\d{2}-\d{2}/

export const EventType = Schema.String.pipe(
  Schema.pattern(EVENT_TYPE_PATTERN, {
    message: () => "type must match ^[a-z][a-z0-9_]*(\\.[a-z0-9_]+)*$"
  })
)

/** Optional keys are exact: absent is fine, an explicit `undefined`/wrong type is an error (clear messages). */
const opt = <S extends Schema.Schema.Any>(schema: S) => Schema.optionalWith(schema, { exact: true })

const Id = Schema.String.pipe(Schema.minLength(1), Schema.maxLength(128))

/** ISO-8601 date-time with an explicit offset (`Z` or `±hh:mm`). */
export const OffsetDateTime = Schema.String.pipe(
  Schema.pattern(OFFSET_DATE_TIME_PATTERN, {
    message: () => "occurredAt must be an ISO-8601 date-time with an offset, e.g. 2026-05-01T10:00:00+08:00"
  }),
  Schema.filter((text) => !Number.isNaN(Date.parse(text)) || "occurredAt is not a real date")
)

export const Envelope = Schema.Struct({
  id: Id,
  type: EventType,
  memberId: Id,
  occurredAt: OffsetDateTime,
  properties: Schema.optionalWith(Schema.Record({ key: Schema.String, value: Schema.Unknown }), {
    default: () => ({})
  }),
  source: opt(Schema.String.pipe(Schema.maxLength(64)))
})
export type Envelope = typeof Envelope.Type

const Positive = Schema.Number.pipe(Schema.finite(), Schema.positive())
const Currency = Schema.String.pipe(Schema.pattern(CURRENCY_PATTERN, { message: () => "currency must be ISO 4217, e.g. CNY" }))
const Birthday = Schema.String.pipe(
  Schema.pattern(BIRTHDAY_PATTERN, { message: () => "birthday must be YYYY-MM-DD or MM-DD" })
)
const E164 = Schema.String.pipe(Schema.pattern(E164_PATTERN, { message: () => "phone must be E.164, e.g. +8613812345678" }))
const Email = Schema.String.pipe(Schema.pattern(EMAIL_PATTERN, { message: () => "email is not an address" }))
const Timezone = Schema.String.pipe(
  Schema.filter((tz) => {
    try {
      new Intl.DateTimeFormat("en", { timeZone: tz })
      return true
    } catch {
      return `timezone "${tz}" is not an IANA time zone`
    }
  })
)
const Consent = Schema.Struct({
  sms: opt(Schema.Boolean),
  email: opt(Schema.Boolean),
  wechat: opt(Schema.Boolean)
})

/** Known keys are typed; unknown keys are kept (events.md: "unknown keys are kept"). */
const open = <F extends Schema.Struct.Fields>(fields: F) =>
  Schema.Struct(fields, Schema.Record({ key: Schema.String, value: Schema.Unknown }))

const MemberAttributes = {
  name: opt(Schema.String),
  email: opt(Email),
  phone: opt(E164),
  wechatOpenId: opt(Schema.String.pipe(Schema.minLength(1))),
  birthday: opt(Birthday),
  timezone: opt(Timezone),
  locale: opt(Schema.String),
  tier: opt(Schema.String),
  consent: opt(Consent)
}

const DateOnly = Schema.String.pipe(Schema.pattern(DATE_ONLY_PATTERN, { message: () => "expiresAt must be a date" }))

/** Property schemas of the standard types; a bad type here rejects the event. */
export const StandardProperties = {
  "member.registered": open(MemberAttributes),
  "member.updated": open(MemberAttributes),
  "consent.updated": open({
    channel: Schema.Literal("sms", "email", "wechat", "all"),
    granted: Schema.Boolean
  }),
  purchase: open({
    orderId: Id,
    amount: Positive,
    currency: Currency,
    items: opt(
      Schema.Array(
        open({
          sku: Schema.String,
          category: opt(Schema.String),
          price: opt(Schema.Number),
          quantity: opt(Schema.Number)
        })
      )
    ),
    channel: opt(Schema.Literal("online", "store"))
  }),
  refund: open({ orderId: Id, amount: Positive }),
  "points.changed": open({
    delta: Schema.Number.pipe(Schema.finite()),
    balance: Schema.Number.pipe(Schema.finite()),
    reason: opt(Schema.String),
    expiresAt: opt(Schema.NullOr(DateOnly))
  }),
  "tier.changed": open({ from: Schema.NullOr(Schema.String), to: Schema.String, reason: opt(Schema.String) }),
  "tags.updated": open({
    add: opt(Schema.Array(Schema.String)),
    remove: opt(Schema.Array(Schema.String))
  }),
  "tag.added": open({ tag: Schema.String }),
  "tag.removed": open({ tag: Schema.String }),
  "message.delivered": open({ messageId: Schema.String, channel: Schema.String, reason: opt(Schema.String) }),
  "message.opened": open({ messageId: Schema.String, channel: Schema.String, reason: opt(Schema.String) }),
  "message.clicked": open({ messageId: Schema.String, channel: Schema.String, reason: opt(Schema.String) }),
  "message.failed": open({ messageId: Schema.String, channel: Schema.String, reason: opt(Schema.String) }),
  "wechat.subscribed": open({ templateId: Schema.String, count: opt(Schema.Number.pipe(Schema.int(), Schema.positive())) })
} as const

export type StandardType = keyof typeof StandardProperties

/** A decoded, accepted event. Times are epoch milliseconds. */
export interface MemberEvent {
  readonly id: string
  readonly type: string
  readonly memberId: string
  readonly occurredAt: string
  readonly at: number
  readonly properties: Readonly<Record<string, unknown>>
  readonly source: string | undefined
}

/** An event the engine itself publishes (events.md, "Events the engine itself publishes"). */
export interface DerivedEvent {
  readonly id: string
  readonly type: string
  readonly memberId: string
  readonly occurredAt: string
  readonly properties: Readonly<Record<string, unknown>>
}
