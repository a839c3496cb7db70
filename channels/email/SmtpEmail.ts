import { Config, type ConfigError, Data, Effect, Option, Redacted, Runtime, type Scope } from "effect"
import { createHash } from "node:crypto"
import { domainToASCII } from "node:url"
import nodemailer, { type NodemailerError, type SendMailOptions } from "nodemailer"
import addressparser from "nodemailer/lib/addressparser"
import type { ChannelSender, EmailMessage, SendOutcome } from "../Channel.ts"

/** The email channel could not be set up: SMTP_URL or EMAIL_FROM is unusable. Never repeats the URL. */
export class SmtpEmailError extends Data.TaggedError("SmtpEmailError")<{ readonly message: string }> {}

export interface SmtpEmailOptions {
  /** `smtp://[user:pass@]host[:port]` (STARTTLS where offered) or `smtps://…` (TLS); query options reach nodemailer. */
  readonly url: Redacted.Redacted<string>
  /** The sender when the template names none (EMAIL_FROM); its domain also names the Message-IDs. */
  readonly from: string
}

// A dead or silent server must turn into a Transient outcome in seconds, not nodemailer's minutes.
// SMTP_URL query parameters (e.g. `?greetingTimeout=500`) override these.
const TIMEOUTS = { connectionTimeout: 10_000, greetingTimeout: 10_000, socketTimeout: 60_000 }

const DOT_ATOM_DOMAIN = /^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*$/

/** The domain of a configured sender, as it may appear on the right of a Message-ID. */
const senderDomain = (from: string): Option.Option<string> => {
  const [first, ...rest] = addressparser(from, { flatten: true })
  if (first === undefined || rest.length > 0) return Option.none()
  const at = first.address.lastIndexOf("@")
  if (at <= 0) return Option.none()
  const domain = domainToASCII(first.address.slice(at + 1).toLowerCase())
  return DOT_ATOM_DOMAIN.test(domain) ? Option.some(domain) : Option.none()
}

/**
 * The Message-ID header for a memberflow message id: `<mf-…@domain>`. Letters, digits, `-` and
 * `_` are kept; every other UTF-8 byte becomes `=XX`, so the left part is a valid RFC 5322
 * dot-atom whatever the id holds (`:` included), and different ids never share a header. An id
 * too long for a header line is hashed instead (`mf.` + SHA-256; the `.` cannot come out of the
 * encoding, so the two forms never meet). The same id always gives the same header, which lets
 * receivers that drop duplicate Message-IDs (Gmail does) discard a message handed over twice.
 */
export const messageIdHeader = (messageId: string, domain: string): string => {
  let encoded = ""
  for (const byte of Buffer.from(messageId, "utf8")) {
    const isPlain =
      (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a) || byte === 0x2d ||
      byte === 0x5f
    encoded += isPlain ? String.fromCharCode(byte) : `=${byte.toString(16).toUpperCase().padStart(2, "0")}`
  }
  const local = encoded.length <= 200 ? `mf-${encoded}` : `mf.${createHash("sha256").update(messageId, "utf8").digest("hex")}`
  return `<${local}@${domain}>`
}

/** What RFC 5321 (and RFC 7504 for 521/556) says each reply code means: safe to repeat, unlike a server's own text. */
const REPLY_MEANING: Readonly<Record<number, string>> = {
  421: "service not available",
  450: "mailbox unavailable",
  451: "local error in processing",
  452: "insufficient system storage",
  454: "TLS or authentication temporarily unavailable",
  455: "server unable to accommodate parameters",
  500: "command unrecognized",
  501: "syntax error in parameters",
  502: "command not implemented",
  503: "bad sequence of commands",
  504: "command parameter not implemented",
  521: "host does not accept mail",
  530: "authentication required",
  534: "authentication mechanism too weak",
  535: "authentication credentials invalid",
  538: "encryption required for authentication",
  550: "mailbox unavailable",
  551: "user not local",
  552: "exceeded storage allocation",
  553: "mailbox name not allowed",
  554: "transaction failed",
  555: "MAIL FROM/RCPT TO parameters not recognized",
  556: "domain does not accept mail"
}

const AUTH_CODES = new Set([530, 534, 535, 538])

const STAGE: Readonly<Record<string, string>> = {
  "MAIL FROM": "sender refused",
  "RCPT TO": "recipient refused",
  DATA: "message refused"
}

/**
 * Sorts a nodemailer failure into an outcome. The reason is built only from codes (the reply
 * code, its enhanced status code, nodemailer's error code), never from the server's text or
 * nodemailer's message: those name the recipient ("<bob@example.com>: Recipient address
 * rejected") or the host and the login.
 */
export const outcomeOf = (error: unknown): SendOutcome => {
  const e: NodemailerError = error instanceof Error ? error : new Error("unknown")
  const code = e.responseCode
  if (code !== undefined && code >= 400 && code < 600) {
    const enhanced = /^\d{3}[ -]([245]\.\d{1,3}\.\d{1,3})\b/.exec(e.response ?? "")?.[1]
    const stage = e.command === undefined ? undefined : STAGE[e.command]
    const meaning = REPLY_MEANING[code] ?? (code < 500 ? "transient failure" : "permanent failure")
    const reason = `smtp ${code}${enhanced === undefined ? "" : ` ${enhanced}`}: ${meaning}${stage === undefined ? "" : ` (${stage})`}`
    // A refused login and a 503 say the session went wrong, not the message: the same message
    // goes through once SMTP_URL is fixed or on a new connection, so they are not Permanent.
    if (code < 500 || code === 503 || AUTH_CODES.has(code)) return { _tag: "Transient", reason }
    // A refused sender is our configuration, the same for every member: falling back would quietly
    // move the whole email programme to the next channel, so it stops here. Everything else
    // (mailbox, recipient, content refused) is about this member's mail: the next channel may try.
    return { _tag: "Permanent", reason, fallback: e.command !== "MAIL FROM", optOut: false }
  }
  switch (e.code) {
    case "EENVELOPE":
      // nodemailer found no usable recipient before talking to the server.
      return { _tag: "Permanent", reason: "smtp: no valid recipient address", fallback: true, optOut: false }
    case "EMESSAGE":
    case "ESTREAM":
      return { _tag: "Permanent", reason: `smtp ${e.code}: message could not be built`, fallback: true, optOut: false }
    case "ETIMEDOUT":
      return { _tag: "Transient", reason: `smtp timeout: ${(e.timeoutType ?? "ETIMEDOUT").toLowerCase().replace(/_/g, " ")}` }
    case "EAUTH":
    case "ENOAUTH":
      return { _tag: "Transient", reason: `smtp ${e.code}: login refused (check SMTP_URL)` }
    case "EABORT":
      return { _tag: "Transient", reason: "smtp: send interrupted" }
    default:
      // ESOCKET (ECONNREFUSED, ECONNRESET, …), ECONNECTION, EDNS, ETLS, EPROTOCOL and anything unknown.
      return { _tag: "Transient", reason: `smtp connection: ${e.originalCode ?? e.code ?? "failed"}` }
  }
}

/**
 * The email channel over a pooled SMTP transport (channels.md), closed with the scope. A message
 * goes out with the template's sender or `from`, its HTML and derived text parts, a Message-ID
 * from its memberflow id and List-Unsubscribe (with one-click POST for an https address).
 * `Sent` carries the Message-ID the receiving side will see: the server's own when it replaces
 * the header (Microsoft 365, Amazon SES), else ours.
 */
export const makeSmtpEmail = (
  options: SmtpEmailOptions
): Effect.Effect<ChannelSender<EmailMessage>, SmtpEmailError, Scope.Scope> =>
  Effect.gen(function* () {
    const url = Redacted.value(options.url).trim()
    // Checked here so a typo fails at start-up with a clear message, not as a Transient per send.
    const parsed = URL.canParse(url) ? new URL(url) : undefined
    if (parsed === undefined) return yield* new SmtpEmailError({ message: "SMTP_URL is not a URL" })
    if (parsed.protocol !== "smtp:" && parsed.protocol !== "smtps:") {
      // The "scheme" of `user:password@host` is the user name, so what was found is not repeated.
      return yield* new SmtpEmailError({ message: "SMTP_URL must start with smtp:// or smtps://" })
    }
    if (parsed.hostname === "") return yield* new SmtpEmailError({ message: "SMTP_URL names no host" })
    const domain = senderDomain(options.from)
    if (Option.isNone(domain)) {
      return yield* new SmtpEmailError({ message: `EMAIL_FROM is not one email address with a domain: ${JSON.stringify(options.from)}` })
    }
    const transport = yield* Effect.acquireRelease(
      Effect.try({
        try: () =>
          nodemailer.createTransport({
            pool: true,
            url,
            ...TIMEOUTS,
            // Templates render into strings; nothing in them may make nodemailer read a file or fetch a URL.
            disableFileAccess: true,
            disableUrlAccess: true
          }),
        catch: () => new SmtpEmailError({ message: "SMTP_URL could not configure an SMTP transport" })
      }),
      (transport) => Effect.sync(() => transport.close())
    )
    // An 'error' event nobody listens to would crash the process; the failed send already has its outcome.
    const runFork = Runtime.runFork(yield* Effect.runtime<never>())
    transport.on("error", (error: NodemailerError) => {
      runFork(Effect.logWarning("SMTP transport error", outcomeOf(error)))
    })

    const send = (message: EmailMessage): Effect.Effect<SendOutcome> => {
      const messageId = messageIdHeader(message.messageId, domain.value)
      const unsubscribe = message.unsubscribe.trim()
      const mail: SendMailOptions = {
        from: message.from ?? options.from,
        to: message.to,
        replyTo: message.replyTo,
        subject: message.subject,
        html: message.html,
        text: message.text,
        messageId,
        ...(unsubscribe === "" ? {} : { list: { unsubscribe } }),
        // RFC 8058 one-click unsubscribe needs an https address to POST to.
        ...(unsubscribe.startsWith("https://") ? { headers: { "List-Unsubscribe-Post": "List-Unsubscribe=One-Click" } } : {})
      }
      return Effect.tryPromise({
        // The signal lets an interrupted send leave the pool's queue instead of going out later.
        try: (signal) => transport.sendMail({ ...mail, signal }),
        catch: outcomeOf
      }).pipe(
        Effect.map((info): SendOutcome => ({ _tag: "Sent", providerMessageId: info.serverMessageId ?? info.messageId })),
        Effect.merge,
        Effect.withSpan("SmtpEmail.send", { attributes: { messageId: message.messageId } })
      )
    }

    return { channel: "email", send } satisfies ChannelSender<EmailMessage>
  })

const nonBlank = <A>(config: Config.Config<A>, text: (a: A) => string) =>
  Config.option(config).pipe(Config.map(Option.filter((a) => text(a).trim() !== "")))

/**
 * The email channel from SMTP_URL and EMAIL_FROM. `None` when SMTP_URL is unset or blank: email
 * is simply not configured and the engine treats the channel as unusable (sends fall back).
 * SMTP_URL without EMAIL_FROM, or either one unusable, is a `SmtpEmailError` at start-up: a
 * half-configured channel is a mistake to show, not to run with.
 */
export const smtpEmailFromConfig: Effect.Effect<
  Option.Option<ChannelSender<EmailMessage>>,
  SmtpEmailError | ConfigError.ConfigError,
  Scope.Scope
> = Effect.gen(function* () {
  const url = yield* nonBlank(Config.redacted("SMTP_URL"), Redacted.value)
  const from = yield* nonBlank(Config.string("EMAIL_FROM"), (s) => s)
  if (Option.isNone(url)) return Option.none()
  if (Option.isNone(from)) {
    return yield* new SmtpEmailError({ message: "EMAIL_FROM must be set when SMTP_URL is (the sender of emails whose template names none)" })
  }
  return Option.some(yield* makeSmtpEmail({ url: url.value, from: from.value.trim() }))
})

export const SmtpEmail = { make: makeSmtpEmail, fromConfig: smtpEmailFromConfig } as const
