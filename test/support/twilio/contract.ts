import { createHmac, randomBytes } from "node:crypto"

/** The parts of Twilio's documented contract the local server speaks: paths, errors, dates, signatures, SIDs. */

export interface BasicAuth {
  readonly username: string
  readonly password: string
}

export const API = "/2010-04-01"
export const E164 = /^\+[1-9]\d{6,14}$/

export interface TwilioError {
  readonly status: number
  readonly code: number
  readonly message: string
}

/** The errors as Twilio words them; several quote the number, as the real ones do. */
export const twilioError = (code: number, to: string): TwilioError => {
  switch (code) {
    case 21610:
      return { status: 400, code, message: "Attempt to send to unsubscribed recipient" }
    case 21211:
      return { status: 400, code, message: `The 'To' number ${to} is not a valid phone number.` }
    case 21614:
      return { status: 400, code, message: `'To' number ${to} is not a valid mobile number` }
    case 20429:
      return { status: 429, code, message: "Too Many Requests" }
    case 500:
      return { status: 500, code: 20500, message: "An internal server error has occurred" }
    case 503:
      return { status: 503, code: 20503, message: "Service Unavailable" }
    case 429:
      return { status: 429, code: 20429, message: "Too Many Requests" }
    default:
      return { status: 400, code, message: `Error ${code} sending to ${to}` }
  }
}

/** RFC 2822 with a numeric zone, as Twilio writes dates: "Thu, 24 Aug 2023 05:01:45 +0000". */
export const rfc2822 = (ms: number): string => new Date(ms).toUTCString().replace("GMT", "+0000")

/** Twilio's documented request signature: HMAC-SHA1 keyed by the auth token over the URL then each POST parameter's name and value, sorted by name; base64. */
export const twilioSignature = (authToken: string, url: string, params: Readonly<Record<string, string>>): string =>
  createHmac("sha1", authToken)
    .update(Object.keys(params).sort().reduce((data, name) => data + name + params[name], url), "utf8")
    .digest("base64")

export const sid = (prefix: string): string => prefix + randomBytes(16).toString("hex")

export const segments = (body: string): number => {
  // GSM-7 basic set, roughly: ASCII printable and newlines; anything else is UCS-2
  const gsm = /^[\n\r\x20-\x7e£¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ¤¡ÄÖÑÜ§¿äöñüà]*$/.test(body)
  const length = [...body].length
  const [single, part] = gsm ? [160, 153] : [70, 67]
  return length <= single ? 1 : Math.ceil(length / part)
}

export const basicAuth = (header: string | undefined): BasicAuth | null => {
  const match = /^Basic\s+(\S+)$/i.exec(header ?? "")
  if (!match?.[1]) return null
  const decoded = Buffer.from(match[1], "base64").toString("utf8")
  const colon = decoded.indexOf(":")
  return colon < 0 ? null : { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) }
}

/** A DateSent filter value: a day (`YYYY-MM-DD`, whole UTC day) or an instant (`YYYY-MM-DDTHH:mm:ssZ`). */
export const dateRange = (value: string): { readonly from: number; readonly until: number } | null => {
  if (/^\d{4}-\d{2}-\d{2}$/.test(value)) {
    const from = Date.parse(`${value}T00:00:00Z`)
    return Number.isNaN(from) ? null : { from, until: from + 86_400_000 }
  }
  if (/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})$/.test(value)) {
    const at = Date.parse(value)
    return Number.isNaN(at) ? null : { from: at, until: at + 1000 }
  }
  return null
}
