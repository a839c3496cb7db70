import { NodeHttpClient } from "@effect/platform-node"
import { Effect, Layer, Option } from "effect"
import type { Channel } from "../schemas/Program.ts"
import type { ChannelSender } from "./Channel.ts"
import { SmtpEmail } from "./email/SmtpEmail.ts"
import { makeTwilioSmsFromConfig } from "./sms/TwilioSms.ts"
import { makeWechatFromConfig } from "./wechat/WechatMessages.ts"

/**
 * The providers configured in the environment (operations.md), each built from its own variables.
 * A provider left unset is a channel the engine cannot use; one set by half stops the start with
 * the variable named.
 */
export const liveSenders = Effect.gen(function* () {
  const senders: Partial<Record<Channel, ChannelSender>> = {}
  const email = yield* SmtpEmail.fromConfig
  if (Option.isSome(email)) senders.email = email.value as ChannelSender
  const sms = yield* makeTwilioSmsFromConfig
  if (Option.isSome(sms)) senders.sms = sms.value as ChannelSender
  // Built in the caller's scope: `Effect.provide(layer)` alone would close the undici dispatcher as
  // soon as the sender is built, and every later send would fail (UND_ERR_DESTROYED).
  const http = yield* Layer.build(NodeHttpClient.layerUndici)
  const wechat = yield* makeWechatFromConfig.pipe(Effect.provide(http))
  if (Option.isSome(wechat)) senders.wechat = wechat.value as ChannelSender
  return senders
})
