import { Config, Option, Redacted } from "effect"
import { createHmac, timingSafeEqual } from "node:crypto"
import { Channel } from "../schemas/Program.ts"

/**
 * The unsubscribe links in messages (`{{unsubscribeUrl}}`, and an email's `List-Unsubscribe`):
 * `<MEMBERFLOW_PUBLIC_URL>/unsubscribe?member=…&channel=…&sig=…`, signed with
 * MEMBERFLOW_UNSUBSCRIBE_KEY so that nobody can opt a member out by guessing an id. Made where
 * messages are rendered (engine/journeys/Context.ts), checked where they are followed
 * (engine/Unsubscribe.ts).
 */

/** MEMBERFLOW_UNSUBSCRIBE_KEY: signs and checks unsubscribe links; without it (or empty, as docker-compose passes an unset one) links are unsigned and refused. */
export const unsubscribeKeyConfig: Config.Config<Option.Option<Redacted.Redacted>> = Config.option(Config.redacted("MEMBERFLOW_UNSUBSCRIBE_KEY")).pipe(
  Config.map(Option.filter((key) => Redacted.value(key).length > 0)),
  Config.validate({
    message: "MEMBERFLOW_UNSUBSCRIBE_KEY must be at least 16 characters (a random secret)",
    validation: (key) => Option.isNone(key) || Redacted.value(key.value).length >= 16
  })
)

/** The link's signature: HMAC-SHA256 over the member and the channel, 128 bits in base64url. */
export const unsubscribeSignature = (key: Redacted.Redacted, memberId: string, channel: string): string =>
  createHmac("sha256", Redacted.value(key)).update(`unsubscribe\n${memberId}\n${channel}`, "utf8").digest("base64url").slice(0, 22)

/** The member's link for `channel`: signed when there is a key. */
export const unsubscribeUrl = (base: string, key: Redacted.Redacted | null, memberId: string, channel: string): string => {
  const url = `${base}?member=${encodeURIComponent(memberId)}&channel=${channel}`
  return key === null ? url : `${url}&sig=${unsubscribeSignature(key, memberId, channel)}`
}

export type LinkCheck =
  | { readonly ok: true; readonly memberId: string; readonly channel: Channel }
  | { readonly ok: false; readonly status: 400 | 403; readonly reason: string }

/** Checks a link's query (`URLSearchParams`) against the key, in constant time. */
export const checkLink = (key: Redacted.Redacted, query: URLSearchParams): LinkCheck => {
  const memberId = query.get("member") ?? ""
  const channel = query.get("channel") ?? ""
  const sig = query.get("sig") ?? ""
  if (memberId.length === 0 || memberId.length > 128 || !(Channel.literals as ReadonlyArray<string>).includes(channel) || sig.length === 0) {
    return { ok: false, status: 400, reason: "This unsubscribe link is incomplete. Please use the link from your message as it was sent." }
  }
  const expected = Buffer.from(unsubscribeSignature(key, memberId, channel))
  const presented = Buffer.from(sig)
  if (presented.length !== expected.length || !timingSafeEqual(presented, expected)) {
    return { ok: false, status: 403, reason: "This unsubscribe link is not valid. Please use the link from your message as it was sent." }
  }
  return { ok: true, memberId, channel: channel as Channel }
}
