import { Clock, Config, ConfigError, Data, Effect, Either, Option, Redacted } from "effect"
import type twilio from "twilio"
import type { MessageListInstanceCreateOptions } from "twilio/lib/rest/api/v2010/account/message.js"
import type { ChannelSender, SendOutcome, SmsMessage } from "../Channel.ts"
import { originClientClass } from "./TwilioSms/OriginClient.ts"
import { outcomeOf, type Secrets } from "./TwilioSms/Outcomes.ts"

/**
 * SMS through the official twilio SDK (channels.md): `client.messages.create` to hand a message
 * over, `client.messages.list` to ask after a crash whether it was. Every request goes to
 * TWILIO_API_URL (see OriginClient) with HTTP basic auth (account SID, auth token).
 */

export const DEFAULT_API_URL = "https://api.twilio.com"
const DEFAULT_TIMEOUT_MS = 10_000

export interface TwilioSmsOptions {
  readonly accountSid: string
  readonly authToken: Redacted.Redacted<string>
  /** a number, short code or alphanumeric sender of the account; sent with the service when both are set */
  readonly from?: string
  readonly messagingServiceSid?: string
  /** replaces the origin https://api.twilio.com; a path prefix is kept (default https://api.twilio.com) */
  readonly apiUrl?: string
  /** MEMBERFLOW_PUBLIC_URL: when set, each message asks for status callbacks at `<base>/webhooks/twilio?messageId=…` */
  readonly statusCallbackBase?: string
  /** how long the socket may stay silent before the send counts as a timeout (Transient); default 10 s */
  readonly timeoutMs?: number
}

export class TwilioRequestError extends Data.TaggedError("TwilioRequestError")<{ readonly cause: unknown }> {}

/** `recover` could not ask Twilio; `reason` follows the same rules as a send's. */
export class TwilioRecoverError extends Data.TaggedError("TwilioRecoverError")<{ readonly reason: string }> {}

export const statusCallbackUrl = (base: string, messageId: string): string =>
  `${base.replace(/\/+$/, "")}/webhooks/twilio?messageId=${encodeURIComponent(messageId)}`

const httpUrl = (text: string): Either.Either<URL, string> =>
  Either.try({ try: () => new URL(text), catch: () => "not a URL" }).pipe(
    Either.filterOrLeft((url) => url.protocol === "http:" || url.protocol === "https:", () => "not an http(s) URL")
  )

type TwilioClient = ReturnType<typeof twilio>

/**
 * The SDK, loaded once per process when a sender first asks for it (`ready`, at an engine's start
 * with Twilio configured): it is half of the engine's bundle by size, so it stays out of the bundle
 * (bin/build.js) and out of every start without Twilio, sandbox and most tests among them (README,
 * Commands). A failed load is kept: node_modules does not change under a running process.
 */
let sdk: Promise<{ readonly twilio: typeof twilio; readonly OriginClient: ReturnType<typeof originClientClass> }> | null = null
const loadSdk = () =>
  (sdk ??= import("twilio").then((module) => ({ twilio: module.default, OriginClient: originClientClass(module.default.RequestClient) })))

/**
 * The sender never fails. Settings the types cannot rule out (a SID the SDK refuses, no sender,
 * a bad API URL) make every send Permanent with a fallback, naming the setting; the config
 * reader below refuses them at start-up instead, so in the engine this is only a safety net.
 */
export const makeTwilioSms = (options: TwilioSmsOptions): ChannelSender<SmsMessage> & { readonly ready: Effect.Effect<void> } => {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS
  const settings = Either.gen(function*() {
    const apiUrl = yield* httpUrl(options.apiUrl ?? DEFAULT_API_URL).pipe(Either.mapLeft((why) => `TWILIO_API_URL is ${why}`))
    if (options.from === undefined && options.messagingServiceSid === undefined) {
      return yield* Either.left("neither TWILIO_FROM nor TWILIO_MESSAGING_SERVICE_SID is set")
    }
    return apiUrl
  })
  let made: Promise<Either.Either<TwilioClient, string>> | null = null
  // Settles, never rejects: what went wrong is the Left.
  const clientOf = (): Promise<Either.Either<TwilioClient, string>> =>
    (made ??= Either.isLeft(settings)
      ? Promise.resolve(Either.left(settings.left))
      : loadSdk().then(
        ({ twilio, OriginClient }) =>
          Either.try({
            try: () => {
              const client = twilio(options.accountSid, Redacted.value(options.authToken), { httpClient: new OriginClient(settings.right, timeoutMs), autoRetry: false })
              // The SDK loads its REST modules at the first use of each (a few hundred files from
              // disk for the Messages resource): here, not inside the first send.
              void client.messages
              return client
            },
            catch: (cause) => `client refused its settings (${cause instanceof Error ? cause.message : String(cause)})`
          }),
        (cause: unknown) => Either.left(`the SDK could not be loaded (${cause instanceof Error ? cause.message : String(cause)})`)
      ))

  const secretsOf = (message: SmsMessage): Secrets => ({ to: message.to, body: message.body, authToken: Redacted.value(options.authToken) })

  const createParams = (message: SmsMessage): MessageListInstanceCreateOptions => ({
    to: message.to,
    body: message.body,
    ...(options.from === undefined ? {} : { from: options.from }),
    ...(options.messagingServiceSid === undefined ? {} : { messagingServiceSid: options.messagingServiceSid }),
    ...(options.statusCallbackBase === undefined ? {} : { statusCallback: statusCallbackUrl(options.statusCallbackBase, message.messageId) })
  })

  const send = Effect.fn("TwilioSms.send")(function*(message: SmsMessage) {
    const client = yield* Effect.promise(clientOf)
    if (Either.isLeft(client)) {
      return { _tag: "Permanent", reason: `twilio: ${client.left}`, fallback: true, optOut: false } satisfies SendOutcome
    }
    const sdk = client.right
    const created = yield* Effect.tryPromise({
      try: () => sdk.messages.create(createParams(message)),
      catch: (cause) => new TwilioRequestError({ cause })
    }).pipe(Effect.either)
    if (Either.isRight(created)) return { _tag: "Sent", providerMessageId: created.right.sid } satisfies SendOutcome
    const outcome = outcomeOf(created.left.cause, secretsOf(message), yield* Clock.currentTimeMillis)
    yield* Effect.logDebug("twilio refused a message").pipe(Effect.annotateLogs({ messageId: message.messageId, outcome: outcome._tag, reason: outcome.reason }))
    return outcome
  })

  const recover = Effect.fn("TwilioSms.recover")(function*(message: SmsMessage, since: number) {
    const client = yield* Effect.promise(clientOf)
    if (Either.isLeft(client)) return yield* new TwilioRecoverError({ reason: `twilio: ${client.left}` })
    const sdk = client.right
    // Not filtered by DateSent: a message Twilio took but still holds in its queue has no sent date
    // yet, and sending it again would be a second SMS. The newest 200 to the number, created since.
    const sent = yield* Effect.tryPromise({
      try: () => sdk.messages.list({ to: message.to, limit: 200, pageSize: 50 }),
      catch: (cause) => new TwilioRequestError({ cause })
    }).pipe(
      Effect.catchAll((error) =>
        Effect.flatMap(Clock.currentTimeMillis, (now) => new TwilioRecoverError({ reason: outcomeOf(error.cause, secretsOf(message), now).reason }))
      )
    )
    return sent.find((candidate) => candidate.body === message.body && candidate.dateCreated.getTime() >= since - 1_000)?.sid ?? null
  })

  // The SDK loaded and its client made (or what stops it found): `makeTwilioSmsFromConfig` waits for
  // this, so that an engine with Twilio configured is ready only once the SDK is. A first send would
  // otherwise load it (0.5 s or more on a busy machine) with its ledger entry already written.
  const ready = Effect.asVoid(Effect.promise(clientOf))

  return { channel: "sms", send, recover, ready }
}

const present = (value: Option.Option<string>): Option.Option<string> => Option.filter(value, (text) => text.trim().length > 0)

const SID = (prefix: string) => new RegExp(`^${prefix}[0-9a-fA-F]{32}$`)

interface TwilioEnv {
  readonly accountSid: Option.Option<string>
  readonly authToken: Option.Option<Redacted.Redacted<string>>
  readonly from: Option.Option<string>
  readonly messagingServiceSid: Option.Option<string>
  readonly apiUrl: string
  readonly publicUrl: Option.Option<string>
}

const fromEnv = (env: TwilioEnv): Either.Either<Option.Option<TwilioSmsOptions>, ConfigError.ConfigError> => {
  const accountSid = present(env.accountSid)
  const authToken = Option.filter(env.authToken, (token) => Redacted.value(token).trim().length > 0)
  if (Option.isNone(accountSid) && Option.isNone(authToken)) return Either.right(Option.none())
  const both = "set both TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN to send SMS, or neither to leave SMS off"
  if (Option.isNone(accountSid)) return Either.left(ConfigError.MissingData(["TWILIO_ACCOUNT_SID"], `TWILIO_AUTH_TOKEN is set but TWILIO_ACCOUNT_SID is not: ${both}`))
  if (Option.isNone(authToken)) return Either.left(ConfigError.MissingData(["TWILIO_AUTH_TOKEN"], `TWILIO_ACCOUNT_SID is set but TWILIO_AUTH_TOKEN is not: ${both}`))
  if (!SID("AC").test(accountSid.value)) {
    return Either.left(ConfigError.InvalidData(["TWILIO_ACCOUNT_SID"], `TWILIO_ACCOUNT_SID must be "AC" followed by 32 hex digits (the Account SID in the Twilio console)`))
  }
  const from = present(env.from)
  const service = present(env.messagingServiceSid)
  if (Option.isNone(from) && Option.isNone(service)) {
    return Either.left(ConfigError.MissingData(["TWILIO_FROM"], "SMS needs a sender: set TWILIO_FROM (a number of the account) or TWILIO_MESSAGING_SERVICE_SID"))
  }
  if (Option.isSome(service) && !SID("MG").test(service.value)) {
    return Either.left(ConfigError.InvalidData(["TWILIO_MESSAGING_SERVICE_SID"], `TWILIO_MESSAGING_SERVICE_SID must be "MG" followed by 32 hex digits`))
  }
  if (Either.isLeft(httpUrl(env.apiUrl))) {
    return Either.left(ConfigError.InvalidData(["TWILIO_API_URL"], `TWILIO_API_URL must be an http(s) URL such as ${DEFAULT_API_URL}, got "${env.apiUrl}"`))
  }
  const publicUrl = present(env.publicUrl)
  if (Option.isSome(publicUrl) && Either.isLeft(httpUrl(publicUrl.value))) {
    return Either.left(ConfigError.InvalidData(["MEMBERFLOW_PUBLIC_URL"], `MEMBERFLOW_PUBLIC_URL must be an http(s) URL such as https://memberflow.example.com, got "${publicUrl.value}"`))
  }
  return Either.right(Option.some({
    accountSid: accountSid.value,
    authToken: authToken.value,
    apiUrl: env.apiUrl,
    ...(Option.isSome(from) ? { from: from.value } : {}),
    ...(Option.isSome(service) ? { messagingServiceSid: service.value } : {}),
    ...(Option.isSome(publicUrl) ? { statusCallbackBase: publicUrl.value } : {})
  }))
}

/**
 * The SMS settings of operations.md. `None` when neither TWILIO_ACCOUNT_SID nor TWILIO_AUTH_TOKEN
 * is set (blank counts as unset): SMS is simply not configured. Half a configuration (one of the
 * two, no sender, a malformed SID or URL) is a ConfigError naming the variable, so a typo stops
 * the engine at start-up instead of failing every message.
 */
export const TwilioSmsConfig: Config.Config<Option.Option<TwilioSmsOptions>> = Config.all({
  accountSid: Config.option(Config.string("TWILIO_ACCOUNT_SID")),
  authToken: Config.option(Config.redacted("TWILIO_AUTH_TOKEN")),
  from: Config.option(Config.string("TWILIO_FROM")),
  messagingServiceSid: Config.option(Config.string("TWILIO_MESSAGING_SERVICE_SID")),
  apiUrl: Config.string("TWILIO_API_URL").pipe(Config.withDefault(DEFAULT_API_URL)),
  publicUrl: Config.option(Config.string("MEMBERFLOW_PUBLIC_URL"))
}).pipe(Config.mapOrFail(fromEnv))

/** The SMS sender from the environment: `None` when SMS is not configured. */
export const makeTwilioSmsFromConfig: Effect.Effect<Option.Option<ChannelSender<SmsMessage>>, ConfigError.ConfigError> = Effect.flatMap(
  TwilioSmsConfig,
  Option.match({
    onNone: () => Effect.succeedNone,
    onSome: (options) => {
      const sender = makeTwilioSms(options)
      return Effect.as(sender.ready, Option.some(sender))
    }
  })
)
