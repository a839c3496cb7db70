import type { Effect } from "effect"
import type { Channel } from "../schemas/Program.ts"

/**
 * What the three providers have in common (channels.md): a message fully rendered and addressed,
 * handed over once, and the provider's answer sorted into what the send policy does next.
 * A sender never fails: every provider error is mapped to an outcome here, with a reason that
 * names the provider's code and never the member's contact point or a secret.
 */

interface Addressed {
  /** memberflow's deterministic message id (journey, version, enrollment, step) */
  readonly messageId: string
  readonly memberId: string
}

export interface EmailMessage extends Addressed {
  readonly channel: "email"
  readonly to: string
  /** the template's `from`, else EMAIL_FROM */
  readonly from?: string
  readonly replyTo?: string
  readonly subject: string
  readonly html: string
  /** the plain-text part derived from the HTML */
  readonly text: string
  /** for the List-Unsubscribe header: a mailto: or https: address */
  readonly unsubscribe: string
}

export interface SmsMessage extends Addressed {
  readonly channel: "sms"
  /** E.164 */
  readonly to: string
  readonly body: string
}

export interface WechatMessage extends Addressed {
  readonly channel: "wechat"
  readonly kind: "template" | "subscribe"
  /** the member's openid */
  readonly touser: string
  readonly templateId: string
  readonly url?: string
  readonly page?: string
  readonly miniprogram?: { readonly appid: string; readonly pagepath: string }
  /** rendered field values: sent as `{ <key>: { value } }` */
  readonly data: Readonly<Record<string, string>>
}

export type OutgoingMessage = EmailMessage | SmsMessage | WechatMessage

export type SendOutcome =
  /** The provider took it. */
  | { readonly _tag: "Sent"; readonly providerMessageId: string }
  /** Worth trying again later (5xx, 429/20429, WeChat -1, timeouts, connection refused). */
  | { readonly _tag: "Transient"; readonly reason: string; readonly retryAfterMs?: number }
  /**
   * Never worth repeating on this channel (21211, 21614, 43004, 43101, 40003, a refused address).
   * `fallback`: the next channel of the step may be tried. `optOut`: the member said STOP (21610).
   */
  | { readonly _tag: "Permanent"; readonly reason: string; readonly fallback: boolean; readonly optOut: boolean }
  /** The channel can take nothing until `until` (WeChat 45009: the daily quota is spent). */
  | { readonly _tag: "Paused"; readonly reason: string; readonly until: number }

/** The provider could not be asked now (`unknowable`: and never will be, e.g. too late). */
export interface RecoverError {
  readonly reason: string
  readonly unknowable?: boolean
}

export interface ChannelSender<M extends OutgoingMessage = OutgoingMessage> {
  readonly channel: Channel
  readonly send: (message: M) => Effect.Effect<SendOutcome>
  /**
   * After a crash in the middle of a hand-over the engine cannot know whether the provider took
   * the message. Where the provider can be asked (Twilio lists the messages sent to a number),
   * this answers with the provider's id of an identical message handed over since `since`
   * (epoch ms), or null when there is none; `Transient` when the provider could not be asked.
   * Channels that cannot be asked leave it out.
   */
  readonly recover?: (message: M, since: number) => Effect.Effect<string | null, RecoverError>
  /** Whether `recover` can answer for this message (default: every message). */
  readonly recoverable?: (message: M) => boolean
}
