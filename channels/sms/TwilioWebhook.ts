import { Data, Either, Option, ParseResult, Redacted, Schema } from "effect"
// The SDK's webhook module alone: the SDK's main module is loaded only with a Twilio sender (TwilioSms.ts).
import { validateRequest } from "twilio/lib/webhooks/webhooks.js"

/**
 * Twilio's status callbacks (`POST /webhooks/twilio?messageId=…`, channels.md): accepted only with
 * a valid X-Twilio-Signature, then decoded into the few fields the engine records.
 */

export type FormParams = Readonly<Record<string, string | ReadonlyArray<string>>>

/** An `application/x-www-form-urlencoded` body as Twilio signs it: a repeated name keeps all its values. */
export const formParams = (body: string): FormParams => {
  const params: Record<string, string | Array<string>> = {}
  for (const [name, value] of new URLSearchParams(body)) {
    const seen = params[name]
    params[name] = seen === undefined ? value : [...(typeof seen === "string" ? [seen] : seen), value]
  }
  return params
}

/**
 * `url` is the full URL Twilio requested, as the public sees it (MEMBERFLOW_PUBLIC_URL + path and
 * query), not the one behind a proxy. The SDK implements Twilio's documented algorithm (HMAC-SHA1
 * over the URL and the sorted parameters) and its tolerance of default ports and query encodings.
 */
export const verifyTwilioSignature = (input: {
  readonly authToken: Redacted.Redacted<string>
  readonly url: string
  readonly params: FormParams
  readonly signature: string | undefined
}): boolean =>
  input.signature !== undefined && input.signature.length > 0 &&
  // the SDK parses the URL and throws on one it cannot: that is a refusal, not a crash
  Either.try(() => validateRequest(Redacted.value(input.authToken), input.signature ?? "", input.url, input.params)).pipe(
    Either.getOrElse(() => false)
  )

/** The `messageId` memberflow put in the StatusCallback URL (see TwilioSms.statusCallbackUrl). */
export const callbackMessageId = (url: string): Option.Option<string> =>
  Either.try(() => new URL(url, "http://localhost")).pipe(
    Either.getRight,
    Option.flatMapNullable((parsed) => parsed.searchParams.get("messageId")),
    Option.filter((id) => id.length > 0)
  )

export const TwilioMessageStatus = Schema.Literal(
  "accepted",
  "scheduled",
  "queued",
  "sending",
  "sent",
  "delivered",
  "undelivered",
  "failed",
  "read",
  "canceled",
  "partially_delivered",
  "receiving",
  "received"
).annotations({
  // one line for the whole union rather than one per literal
  message: (issue) => ({
    message: `expected a Twilio message status (queued, sent, delivered, undelivered, failed, …), got ${JSON.stringify(issue.actual)}`,
    override: true
  })
})
export type TwilioMessageStatus = typeof TwilioMessageStatus.Type

export const TwilioStatusUpdate = Schema.Struct({
  messageSid: Schema.propertySignature(
    Schema.String.pipe(Schema.pattern(/^(SM|MM)[0-9a-fA-F]{32}$/, { message: () => "expected a message SID: SM or MM and 32 hex digits" }))
  ).pipe(Schema.fromKey("MessageSid")),
  status: Schema.propertySignature(TwilioMessageStatus).pipe(Schema.fromKey("MessageStatus")),
  /** set on `undelivered` / `failed` (e.g. 30003 unreachable, 30006 landline) */
  errorCode: Schema.optionalWith(Schema.NumberFromString.pipe(Schema.int()), { exact: true }).pipe(Schema.fromKey("ErrorCode"))
})
export type TwilioStatusUpdate = typeof TwilioStatusUpdate.Type

export class TwilioCallbackError extends Data.TaggedError("TwilioCallbackError")<{ readonly message: string }> {}

const decodeForm = Schema.decodeUnknownEither(TwilioStatusUpdate, { errors: "all", onExcessProperty: "ignore" })

/** A status callback's form body (raw or parsed) into `{ messageSid, status, errorCode? }`, or an error naming each bad field. */
export const decodeTwilioStatusCallback = (form: string | FormParams): Either.Either<TwilioStatusUpdate, TwilioCallbackError> => {
  const params = typeof form === "string" ? formParams(form) : form
  // some carriers' receipts come back with an empty ErrorCode: that is no code, not a bad one
  const present = Object.fromEntries(Object.entries(params).filter(([, value]) => value !== ""))
  return decodeForm(present).pipe(
    Either.mapLeft((error) =>
      new TwilioCallbackError({
        message: "Twilio status callback: " +
          ParseResult.ArrayFormatter.formatErrorSync(error)
            .map((issue) => `${issueName(issue.path)}: ${issue.message}`)
            .join("; ")
      })
    )
  )
}

const FORM_NAMES: Readonly<Record<string, string>> = { messageSid: "MessageSid", status: "MessageStatus", errorCode: "ErrorCode" }
const issueName = (path: ReadonlyArray<PropertyKey>): string => path.map((key) => FORM_NAMES[String(key)] ?? String(key)).join(".") || "body"
