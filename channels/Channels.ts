import { Config, Context, Effect, Layer } from "effect"
import type { Channel } from "../schemas/Program.ts"
import type { ChannelSender, OutgoingMessage, SendOutcome } from "./Channel.ts"

/**
 * The senders the engine hands messages to: `CHANNELS_MODE=live` (the default) builds each provider
 * from its configuration — a provider left unconfigured is a channel the engine cannot use, so its
 * messages fall back or fail with the reason; `sandbox` renders and records everything but hands
 * nothing over (provider id `sandbox-<message id>`), for demos and rehearsals.
 */

export type ChannelsMode = "live" | "sandbox"

export interface ChannelsShape {
  readonly mode: ChannelsMode
  /** null: the channel is not configured (live mode) */
  readonly sender: (channel: Channel) => ChannelSender | null
  /** what is configured, for the start-up log and /readyz */
  readonly describe: Readonly<Record<Channel, string>>
}

const sandboxSender = (channel: Channel): ChannelSender => ({
  channel,
  send: (message: OutgoingMessage): Effect.Effect<SendOutcome> => Effect.succeed({ _tag: "Sent", providerMessageId: `sandbox-${message.messageId}` }),
  // Nothing left the engine: a hand-over cut short is simply done again.
  recover: (message: OutgoingMessage) => Effect.succeed(`sandbox-${message.messageId}`)
})

export const sandboxChannels: ChannelsShape = {
  mode: "sandbox",
  sender: sandboxSender,
  describe: { sms: "sandbox", email: "sandbox", wechat: "sandbox" }
}

/** Live channels from already built senders (tests, and the live layer below). */
export const liveChannels = (senders: Partial<Record<Channel, ChannelSender>>): ChannelsShape => ({
  mode: "live",
  sender: (channel) => senders[channel] ?? null,
  describe: {
    sms: senders.sms === undefined ? "not configured (TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN)" : "twilio",
    email: senders.email === undefined ? "not configured (SMTP_URL)" : "smtp",
    wechat: senders.wechat === undefined ? "not configured (WECHAT_APP_ID, WECHAT_APP_SECRET)" : "wechat"
  }
})

/** `CHANNELS_MODE`: `live` hands messages to the providers, `sandbox` renders and records them only. */
export const ChannelsModeConfig = Config.literal("live", "sandbox")("CHANNELS_MODE").pipe(Config.withDefault("live" as const))

export class Channels extends Context.Tag("memberflow/Channels")<Channels, ChannelsShape>() {
  static readonly sandbox = Layer.succeed(Channels, sandboxChannels)

  /** `live`: senders from `build`, which reads each provider's configuration. */
  static readonly layer = (build: Effect.Effect<Partial<Record<Channel, ChannelSender>>, unknown, import("effect").Scope.Scope>) =>
    Layer.scoped(
      Channels,
      Effect.gen(function* () {
        const mode = yield* ChannelsModeConfig
        return mode === "sandbox" ? sandboxChannels : liveChannels(yield* build)
      })
    )
}
