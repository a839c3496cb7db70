import type { Channel, Policies } from "../schemas/Program.ts"
import { localDateString, localDateTime, localInstant } from "../engine/member/LocalTime.ts"

/**
 * The rules a send obeys before anything is rendered (channels.md, "Rules every send obeys", 1–2),
 * decided inside the member's compare-and-set write, so that caps hold across journeys and engines:
 * 1. contact point and consent (marketing), a WeChat subscribe credit, else the next fallback;
 * 2. frequency caps (a "day" is the member's calendar day, longer periods roll) and quiet hours.
 * Plain data in, a decision out.
 */

export const CONTACT: Record<Channel, string> = { sms: "phone", email: "email", wechat: "wechatOpenId" }

/** A marketing message the member was queued, for the caps. */
export interface SentMark {
  readonly at: number
  readonly ch: Channel
}

export interface Reach {
  /** the member's contact point for a channel, or null */
  readonly contact: (channel: Channel) => string | null
  /** the member's consent for a channel (only asked for marketing journeys) */
  readonly consent: (channel: Channel) => boolean
  /** for a WeChat subscribe template: whether the member holds a credit for it */
  readonly wechatCredit: () => boolean
}

export interface SendRequest {
  /** the step's channel, then its fallbacks */
  readonly channels: ReadonlyArray<Channel>
  readonly marketing: boolean
  readonly timeZone: string
  readonly now: number
}

export type Decision =
  | { readonly kind: "suppressed"; readonly channel: Channel; readonly reason: string }
  /** `channels`: the one to use first, then the reachable fallbacks; `notBefore`: quiet hours end */
  | { readonly kind: "queued"; readonly channels: ReadonlyArray<Channel>; readonly notBefore: number | null }

const DAY = 86_400_000

const reachable = (request: SendRequest, reach: Reach): { channels: Array<Channel>; why: Array<string> } => {
  const channels: Array<Channel> = []
  const why: Array<string> = []
  for (const channel of new Set(request.channels)) {
    if (reach.contact(channel) === null) why.push(`${channel}: no contact point`)
    else if (request.marketing && !reach.consent(channel)) why.push(`${channel}: no consent`)
    else if (channel === "wechat" && !reach.wechatCredit()) why.push("wechat: no subscribe credit")
    else channels.push(channel)
  }
  return { channels, why }
}

/** How many of `sent` fall in a cap's period ending now: the member's calendar day for `1d`. */
export const countInPeriod = (sent: ReadonlyArray<SentMark>, channel: Channel | "any", per: number, timeZone: string, now: number): number => {
  const today = per === DAY ? localDateString(now, timeZone) : null
  let n = 0
  for (const { at, ch } of sent) {
    if (channel !== "any" && ch !== channel) continue
    if (today !== null ? localDateString(at, timeZone) === today : at > now - per) n++
  }
  return n
}

const capped = (policies: Policies, sent: ReadonlyArray<SentMark>, channel: Channel | "any", timeZone: string, now: number): boolean =>
  policies.frequencyCaps.some((cap) => cap.channel === channel && countInPeriod(sent, channel, cap.per, timeZone, now) >= cap.max)

const minutesOf = (hhmm: string): number => {
  const [h, m] = hhmm.split(":")
  return Number(h) * 60 + Number(m)
}

/** When the quiet hours the member is in end (member-local), or null outside them. */
export const quietUntil = (quiet: NonNullable<Policies["quietHours"]>, timeZone: string, now: number): number | null => {
  const local = localDateTime(now, timeZone)
  const minute = local.hour * 60 + local.minute
  const from = minutesOf(quiet.from)
  const to = minutesOf(quiet.to)
  if (from === to) return null
  const inside = from < to ? minute >= from && minute < to : minute >= from || minute < to
  if (!inside) return null
  const [h, m] = quiet.to.split(":").map(Number)
  const endsToday = localInstant(local.year, local.month, local.day, timeZone, h ?? 0, m ?? 0)
  if (endsToday > now) return endsToday
  const tomorrow = new Date(Date.UTC(local.year, local.month - 1, local.day + 1))
  return localInstant(tomorrow.getUTCFullYear(), tomorrow.getUTCMonth() + 1, tomorrow.getUTCDate(), timeZone, h ?? 0, m ?? 0)
}

/** The longest cap period: older marks can be forgotten. */
export const keepFor = (policies: Policies): number => policies.frequencyCaps.reduce((longest, cap) => Math.max(longest, cap.per), 0)

export const decide = (request: SendRequest, reach: Reach, policies: Policies, sent: ReadonlyArray<SentMark>): Decision => {
  const first = request.channels[0] ?? "sms"
  const { channels, why } = reachable(request, reach)
  if (channels.length === 0) return { kind: "suppressed", channel: first, reason: `no_reachable_channel (${why.join("; ")})` }
  if (!request.marketing) return { kind: "queued", channels, notBefore: null }
  const { timeZone, now } = request
  if (capped(policies, sent, "any", timeZone, now)) return { kind: "suppressed", channel: channels[0] ?? first, reason: "frequency_cap" }
  // A channel at its own cap is skipped for the next reachable one; all capped is suppressed.
  const open = channels.filter((channel) => !capped(policies, sent, channel, timeZone, now))
  if (open.length === 0) return { kind: "suppressed", channel: channels[0] ?? first, reason: "frequency_cap" }
  const chosen = open[0] ?? first
  const quiet = policies.quietHours
  const until = quiet !== undefined && quiet.channels.includes(chosen) ? quietUntil(quiet, timeZone, now) : null
  if (until !== null && quiet?.then === "drop") return { kind: "suppressed", channel: chosen, reason: "quiet_hours" }
  return { kind: "queued", channels: open, notBefore: until }
}
