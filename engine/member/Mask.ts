/**
 * Masked forms of contact points (clickhouse.md: no analytics table, log line or admin answer
 * holds a phone, email or WeChat openid in clear).
 */

// ITU-T E.164 country codes of one and two digits; every other code has three.
const ONE_DIGIT = new Set(["1", "7"])
const TWO_DIGIT = new Set([
  "20", "27", "30", "31", "32", "33", "34", "36", "39", "40", "41", "43", "44", "45", "46", "47", "48", "49",
  "51", "52", "53", "54", "55", "56", "57", "58", "60", "61", "62", "63", "64", "65", "66", "81", "82", "84",
  "86", "90", "91", "92", "93", "94", "95", "98"
])

const countryCodeLength = (digits: string): number =>
  ONE_DIGIT.has(digits.slice(0, 1)) ? 1 : TWO_DIGIT.has(digits.slice(0, 2)) ? 2 : 3

/**
 * `+8613812345678` → `138****5678`: the national number's first 3 and last 4 digits, the country
 * code left out. A fixed run of 4 stars hides the length too. Short numbers show less.
 */
export const maskPhone = (phone: string): string => {
  const digits = phone.replace(/\D/g, "")
  const national = phone.trim().startsWith("+") ? digits.slice(countryCodeLength(digits)) : digits
  if (national.length >= 9) return `${national.slice(0, 3)}****${national.slice(-4)}`
  if (national.length >= 4) return `${national.slice(0, 1)}****${national.slice(-2)}`
  return "****"
}

/** `lily@example.com` → `l***@example.com`. */
export const maskEmail = (email: string): string => {
  const at = email.lastIndexOf("@")
  if (at <= 0) return "***"
  return `${email.slice(0, 1)}***${email.slice(at)}`
}

/** A WeChat openid keeps its first 4 characters (fewer for very short ids). */
export const maskOpenId = (openId: string): string =>
  `${openId.slice(0, Math.min(4, Math.floor(openId.length / 2)))}***`

/**
 * Attribute names that hold contact points, with their masks. No prototype: looked up with keys
 * from events, where `constructor`, `hasOwnProperty` or `__proto__` would otherwise find
 * Object.prototype's members and call them as masks (a TypeError that stopped ingestion).
 */
export const contactMasks: Readonly<Record<string, (value: string) => string>> = Object.assign(Object.create(null), {
  phone: maskPhone,
  email: maskEmail,
  wechatOpenId: maskOpenId
})

/**
 * Free attributes (or an event's properties) with every contact point masked: under a contact key
 * at any depth (`delivery.phone`), and whatever its type (a phone sent as a number). Where nothing
 * needed masking the result shares the input's objects (the input itself when nothing at all did):
 * read it, do not change it.
 */
export const maskAttributes = (attributes: Readonly<Record<string, unknown>>): Record<string, unknown> =>
  maskDeep(attributes, 0) as Record<string, unknown>

// The lookbehind starts a match only where a word starts: without it every position of a long run
// without "@" rescanned the rest of the run (quadratic: a 200 KB refused payload froze the engine).
const EMAIL = /(?<![^\s"'<>@,;:])[^\s"'<>@,;:]+@[^\s"'<>@,;:]+\.[a-z]{2,}/gi
/** A run of 8 to 15 digits, with an optional +: a phone number. */
const PHONE = /\+?\b\d{8,15}\b/g

/**
 * Sets a key as Object.fromEntries does: a "__proto__" key stays a key instead of replacing the
 * prototype (assignment would replace it); any other key is a plain assignment, which is cheaper.
 */
const setKey = (out: Record<string, unknown>, key: string, value: unknown): void => {
  if (key === "__proto__") Object.defineProperty(out, key, { value, writable: true, enumerable: true, configurable: true })
  else out[key] = value
}

/** Nesting below this depth is left as it is by the masks (maskRaw masks such a payload as text). */
const MAX_DEPTH = 64

const deeperThan = (value: unknown, limit: number): boolean => {
  if (value === null || typeof value !== "object") return false
  if (limit < 0) return true
  for (const item of Array.isArray(value) ? value : Object.values(value)) if (deeperThan(item, limit - 1)) return true
  return false
}

/** A contact point's value of any shape: every string and number in it masked. */
const maskContact = (mask: (value: string) => string, value: unknown, depth: number): unknown => {
  if (typeof value === "string") return mask(value)
  if (typeof value === "number") return mask(String(value))
  if (depth > MAX_DEPTH || value === null || typeof value !== "object") return value
  if (Array.isArray(value)) return value.map((item) => maskContact(mask, item, depth + 1))
  const source = value as Readonly<Record<string, unknown>>
  const out: Record<string, unknown> = {}
  for (const key of Object.keys(source)) setKey(out, key, maskContact(mask, source[key], depth + 1))
  return out
}

/**
 * The value with every contact point under it masked; the value itself (no copy) when there is none,
 * as in nearly every event: a copy of each event's properties was 2% of what ingestion allocated.
 */
const maskDeep = (value: unknown, depth: number): unknown => {
  if (depth > MAX_DEPTH || value === null || typeof value !== "object") return value
  if (Array.isArray(value)) {
    let out: Array<unknown> | null = null
    for (let i = 0; i < value.length; i++) {
      const item: unknown = value[i]
      const masked = maskDeep(item, depth + 1)
      if (out === null && masked !== item) out = value.slice(0, i)
      out?.push(masked)
    }
    return out ?? value
  }
  const source = value as Readonly<Record<string, unknown>>
  const keys = Object.keys(source)
  let out: Record<string, unknown> | null = null
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i]!
    const mask = contactMasks[key]
    const item = source[key]
    const masked = mask === undefined ? maskDeep(item, depth + 1) : maskContact(mask, item, depth + 1)
    if (out === null && masked !== item) {
      out = {}
      for (let j = 0; j < i; j++) setKey(out, keys[j]!, source[keys[j]!])
    }
    if (out !== null) setKey(out, key, masked)
  }
  return out ?? value
}

/** Email addresses and phone-like digit runs in free text, masked. */
export const maskText = (text: string): string => text.replace(EMAIL, (email) => maskEmail(email)).replace(PHONE, (phone) => maskPhone(phone))

/**
 * The raw bytes of a refused message as `rejected_events` keeps them: JSON with every contact
 * attribute (`phone`, `email`, `wechatOpenId`, at any depth) masked, or, when it is not JSON, the
 * text with emails and phone-like numbers masked; the bytes as they came when nothing needed it. So a bad `member.registered` does not put a phone number in clear into an
 * analytics table (clickhouse.md), at the price of not keeping those bytes exactly (events.md).
 */
export const maskRaw = (raw: string): string => {
  let parsed: unknown
  try {
    parsed = JSON.parse(raw)
  } catch {
    return maskText(raw)
  }
  // Deeper than maskDeep looks: whatever is down there is masked as text.
  if (deeperThan(parsed, MAX_DEPTH)) return maskText(raw)
  const masked = maskDeep(parsed, 0)
  // Untouched bytes when there was nothing to mask. No deeper than MAX_DEPTH (above), so
  // JSON.stringify cannot run out of stack.
  return masked === parsed ? raw : JSON.stringify(masked)
}
