import { Predicate } from "effect"
import type { SendOutcome } from "../../Channel.ts"
import { TwilioAnswer } from "./OriginClient.ts"

/**
 * Twilio's answers sorted into what the send policy does next (channels.md). Reasons name the code
 * in our own words: Twilio's messages quote the number ("The 'To' number +86… is not a valid phone
 * number"), so for codes we know their text is never used, and for the others it is scrubbed.
 */

const KNOWN: Readonly<Record<number, string>> = {
  20003: "authentication failed (check TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN)",
  20404: "resource not found (check TWILIO_ACCOUNT_SID and TWILIO_API_URL)",
  20429: "too many requests",
  21211: "invalid 'To' phone number",
  21408: "permission to send to this region is not enabled",
  21602: "message body is required",
  21606: "the 'From' number is not an SMS-capable number of this account",
  21610: "recipient unsubscribed (STOP)",
  21612: "the 'To' number cannot be reached from the 'From' number",
  21614: "'To' number is not a mobile number",
  21617: "message body exceeds the 1600 character limit"
}

/** What must never appear in a reason: the member's number, the message body, the auth token. */
export interface Secrets {
  readonly to: string
  readonly body: string
  readonly authToken: string
}

export const scrub = (text: string, secrets: Secrets): string => {
  let out = text
  for (const secret of [secrets.authToken, secrets.body, secrets.to]) {
    if (secret.length > 0) out = out.split(secret).join("…")
  }
  // credentials echoed back (a proxy or API that repeats the request's Authorization header)
  out = out.replace(/\b(Basic|Bearer)\s+[A-Za-z0-9+/=._-]+/gi, "$1 …")
  // anything else that looks like a phone number (7+ digits, separators allowed)
  return out.replace(/\+?\d[\d ().-]{5,}\d/g, "…").slice(0, 160)
}

const describe = (code: number, text: string | undefined, secrets: Secrets): string =>
  KNOWN[code] ?? (text === undefined || text.length === 0 ? "see https://www.twilio.com/docs/errors/" + code : scrub(text, secrets))

/** Seconds or an HTTP date (RFC 9110 §10.2.3). */
export const retryAfterMs = (header: unknown, now: number): number | undefined => {
  const value = Array.isArray(header) ? header[0] : header
  if (typeof value !== "string" && typeof value !== "number") return undefined
  const text = String(value).trim()
  if (/^\d+$/.test(text)) return Number(text) * 1000
  const at = Date.parse(text)
  return Number.isNaN(at) ? undefined : Math.max(0, at - now)
}

/** The parts of an HTTP answer the mapping needs, from our TwilioAnswer or the SDK's RestException. */
interface Answer {
  readonly status: number
  readonly code: number | undefined
  readonly text: string | undefined
  readonly retryAfterMs: number | undefined
}

const numberField = (body: unknown, key: string): number | undefined => {
  const value = Predicate.isRecord(body) ? body[key] : undefined
  return typeof value === "number" && Number.isFinite(value) ? value : undefined
}
const stringField = (body: unknown, key: string): string | undefined => {
  const value = Predicate.isRecord(body) ? body[key] : undefined
  return typeof value === "string" ? value : undefined
}

const parseBody = (body: unknown): unknown => {
  if (typeof body !== "string") return body
  try {
    return JSON.parse(body)
  } catch {
    return undefined // a proxy's HTML error page: the status alone decides
  }
}

const asAnswer = (cause: unknown, now: number): Answer | undefined => {
  if (cause instanceof TwilioAnswer) {
    const body = parseBody(cause.body)
    // legacy `{code, message}` or RFC 9457 `{code, title, detail}`
    return {
      status: cause.status,
      code: numberField(body, "code"),
      text: stringField(body, "message") ?? stringField(body, "detail") ?? stringField(body, "title"),
      retryAfterMs: retryAfterMs(cause.headers["retry-after"], now)
    }
  }
  // the SDK's RestException / TwilioServiceException for answers our client let through (3xx)
  const status = numberField(cause, "status")
  if (status === undefined) return undefined
  return { status, code: numberField(cause, "code"), text: stringField(cause, "message"), retryAfterMs: undefined }
}

const NETWORK_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "ECONNABORTED", "EPIPE", "ENOTFOUND", "EAI_AGAIN", "EHOSTUNREACH", "ENETUNREACH", "ERR_SOCKET_CONNECTION_TIMEOUT", "ECONNCLOSED"])

/** Why a request got no HTTP answer: a network code, a timeout, or the error's name. Never its message (it may hold the URL). */
const noAnswerReason = (cause: unknown): string => {
  const code = stringField(cause, "code")
  if (code === "ECONNABORTED" || code === "ETIMEDOUT" || stringField(cause, "_tag") === "TimeoutException") return "twilio: no answer in time (timeout)"
  if (code !== undefined && NETWORK_CODES.has(code)) return `twilio: network error (${code})`
  if (code !== undefined && /^[A-Z_]+$/.test(code)) return `twilio: request failed (${code})`
  return `twilio: request failed (${cause instanceof Error ? cause.name : typeof cause})`
}

export type Failure = Exclude<SendOutcome, { readonly _tag: "Sent" }>

export const outcomeOf = (cause: unknown, secrets: Secrets, now: number): Failure => {
  const answer = asAnswer(cause, now)
  if (answer === undefined) return { _tag: "Transient", reason: noAnswerReason(cause) }
  const { code, status } = answer
  const reason = code === undefined ? `twilio HTTP ${status}` : `twilio ${code}: ${describe(code, answer.text, secrets)}`
  if (code === 21610) return { _tag: "Permanent", reason, fallback: true, optOut: true }
  if (code === 21211 || code === 21614) return { _tag: "Permanent", reason, fallback: true, optOut: false }
  if (status === 429 || code === 20429 || status >= 500) {
    return answer.retryAfterMs === undefined ? { _tag: "Transient", reason } : { _tag: "Transient", reason, retryAfterMs: answer.retryAfterMs }
  }
  if (status >= 400) return { _tag: "Permanent", reason, fallback: false, optOut: false }
  // a 1xx/3xx the SDK refused: odd, and not the member's fault; worth another try
  return { _tag: "Transient", reason }
}

/** The reason alone, for a failed `recover` (the provider could not be asked). */
export const reasonOf = (cause: unknown, secrets: Secrets, now: number): string => outcomeOf(cause, secrets, now).reason
