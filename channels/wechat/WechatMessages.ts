import { createHash } from "node:crypto"
import { type HttpClient, HttpClientRequest } from "@effect/platform"
import { Clock, Config, ConfigError, Effect, Either, Option, Redacted, type Scope } from "effect"
import type { ChannelSender, SendOutcome, WechatMessage } from "../Channel.ts"
import {
  apiOrigin,
  callWechat,
  DEFAULT_API_URL,
  DEFAULT_TIMEOUT,
  nextShanghaiMidnight,
  scrubbedErrmsg,
  wechatClient,
  type WechatHttpError
} from "./WechatApi.ts"
import { makeWechatToken, type WechatTokenError, type WechatTokenOptions } from "./WechatToken.ts"

/**
 * The WeChat channel (channels.md): official-account template messages and mini-program subscribe
 * messages through WeChat's documented HTTP API, one shared access token (WechatToken.ts).
 *
 * Outcomes:
 * - errcode 0 → Sent, provider id = WeChat's `msgid` (read from the raw body: it is an int64), or
 *   `wechat-<messageId>` when WeChat answers without one.
 * - 40001 / 40014 / 42001 (token refused) → the token is refreshed once and the send retried once;
 *   refused again → Transient.
 * - 43004 (not following), 43101 (user refused), 40003 (bad openid) → Permanent, fallback.
 * - -1 (busy), HTTP 429 / 5xx, timeouts, network errors → Transient.
 * - 45009 (daily quota spent) → Paused until the next 00:00 Asia/Shanghai, when WeChat resets it.
 * - any other errcode, or another HTTP error status → Permanent without fallback.
 * - the token itself cannot be had: busy / network → Transient; its daily quota (45009) → Paused;
 *   credentials refused (40013 bad app id, 40125 bad secret, IP not whitelisted, …) → Permanent with
 *   fallback, since no WeChat message can leave with this configuration but another channel can.
 */

export interface WechatOptions extends WechatTokenOptions {}

const TOKEN_REFUSED = new Set([40001, 40014, 42001])

const fallbackErrors: Readonly<Record<number, string>> = {
  43004: "user is not following the official account",
  43101: "user refused the subscription",
  40003: "invalid openid"
}

/** Codes we do not act on but can name better than WeChat's errmsg. */
const otherErrors: Readonly<Record<number, string>> = {
  40037: "invalid template_id",
  41028: "invalid or expired form_id",
  41030: "invalid page",
  47001: "data format error",
  47003: "invalid template data"
}

/** memberflow's message id as WeChat's `client_msg_id` (a short, stable hex digest). */
export const clientMsgId = (messageId: string): string => createHash("sha256").update(messageId).digest("hex").slice(0, 32)

/** The JSON WeChat documents for each kind; optional fields only when the message has them. */
export const wechatBody = (message: WechatMessage): Record<string, unknown> => {
  const data = Object.fromEntries(Object.entries(message.data).map(([key, value]) => [key, { value }]))
  return message.kind === "template"
    ? {
        touser: message.touser,
        template_id: message.templateId,
        ...(message.url !== undefined ? { url: message.url } : {}),
        ...(message.miniprogram !== undefined
          ? { miniprogram: { appid: message.miniprogram.appid, pagepath: message.miniprogram.pagepath } }
          : {}),
        data,
        // WeChat's anti-reentry id: one message per openid + client_msg_id within 10 minutes, so a
        // hand-over repeated after a crash is not sent twice.
        client_msg_id: clientMsgId(message.messageId)
      }
    : {
        touser: message.touser,
        template_id: message.templateId,
        ...(message.page !== undefined ? { page: message.page } : {}),
        data
      }
}

const pathOf = (message: WechatMessage): string =>
  message.kind === "template" ? "/cgi-bin/message/template/send" : "/cgi-bin/message/subscribe/send"

/** The int64 msgid as WeChat wrote it (JSON.parse would round it), when there is one. */
const msgidOf = (text: string): string | undefined => /"msgid"\s*:\s*"?(\d+)/.exec(text)?.[1]

const transient = (reason: string, retryAfterMs?: number): SendOutcome =>
  retryAfterMs !== undefined ? { _tag: "Transient", reason, retryAfterMs } : { _tag: "Transient", reason }

const permanent = (reason: string, fallback: boolean): SendOutcome => ({ _tag: "Permanent", reason, fallback, optOut: false })

const paused = (reason: string) =>
  Effect.map(Clock.currentTimeMillis, (now): SendOutcome => ({ _tag: "Paused", reason, until: nextShanghaiMidnight(now) }))

const tokenOutcome = (error: WechatTokenError): Effect.Effect<SendOutcome> =>
  error.errcode === 45009
    ? paused(error.reason)
    : Effect.succeed(error.transient ? transient(error.reason, error.retryAfterMs) : permanent(error.reason, true))

const httpOutcome = (error: WechatHttpError): SendOutcome =>
  error.transient ? transient(`wechat: ${error.reason}`, error.retryAfterMs) : permanent(`wechat: ${error.reason}`, false)

export const makeWechat = (
  options: WechatOptions
): Effect.Effect<ChannelSender<WechatMessage>, never, HttpClient.HttpClient | Scope.Scope> =>
  Effect.gen(function* () {
    const apiUrl = options.apiUrl.replace(/\/+$/, "")
    const client = yield* wechatClient
    const token = yield* makeWechatToken({ ...options, apiUrl })
    const timeout = options.timeout ?? DEFAULT_TIMEOUT

    const attempt = (message: WechatMessage, mayRefresh: boolean): Effect.Effect<SendOutcome> =>
      Effect.gen(function* () {
        const got = yield* Effect.either(token.get)
        if (Either.isLeft(got)) return yield* tokenOutcome(got.left)
        const accessToken = got.right
        const request = HttpClientRequest.post(`${apiUrl}${pathOf(message)}`).pipe(
          HttpClientRequest.setUrlParams({ access_token: Redacted.value(accessToken) }),
          HttpClientRequest.bodyUnsafeJson(wechatBody(message))
        )
        const answered = yield* Effect.either(callWechat(client, request, timeout))
        if (Either.isLeft(answered)) return httpOutcome(answered.left)
        const { errcode, errmsg, text } = answered.right
        if (errcode === 0) return { _tag: "Sent", providerMessageId: msgidOf(text) ?? `wechat-${message.messageId}` } as const
        if (TOKEN_REFUSED.has(errcode)) {
          if (!mayRefresh) return transient(`wechat ${errcode}: access token refused again after a refresh`)
          yield* token.invalidate(accessToken)
          return yield* attempt(message, false)
        }
        const fallback = fallbackErrors[errcode]
        if (fallback !== undefined) return permanent(`wechat ${errcode}: ${fallback}`, true)
        if (errcode === -1) return transient("wechat -1: system busy")
        if (errcode === 45009) return yield* paused("wechat 45009: daily quota reached")
        const known = otherErrors[errcode]
        const secrets = [message.touser, Redacted.value(accessToken), Redacted.value(options.appSecret)]
        return permanent(`wechat ${errcode}: ${known ?? (scrubbedErrmsg(errmsg, secrets) || "refused")}`, false)
      })

    const send = Effect.fn("Wechat.send")(function* (message: WechatMessage) {
      yield* Effect.annotateCurrentSpan({ "wechat.kind": message.kind, "wechat.template": message.templateId })
      return yield* attempt(message, true)
    })

    // A template message cut short by a crash is sent again with the same client_msg_id: WeChat sends
    // it at most once (within 10 minutes). Subscribe messages have no such id: nobody can be asked.
    const recover = (message: WechatMessage, since: number) =>
      Effect.gen(function* () {
        const now = yield* Clock.currentTimeMillis
        // past WeChat's 10-minute window a repeat would be a second message
        if (now - since > 9 * 60_000) return yield* Effect.fail({ reason: "wechat: too late to repeat safely", unknowable: true })
        const outcome = yield* attempt(message, true)
        if (outcome._tag === "Sent") return outcome.providerMessageId
        if (outcome._tag === "Permanent") return null
        return yield* Effect.fail({ reason: outcome.reason })
      })
    const recoverable = (message: WechatMessage) => message.kind === "template"

    return { channel: "wechat", send, recover, recoverable } satisfies ChannelSender<WechatMessage>
  })

/**
 * WECHAT_APP_ID, WECHAT_APP_SECRET (redacted) and WECHAT_API_URL (default https://api.weixin.qq.com).
 * None when neither the app id nor the secret is set (empty counts as unset): the channel is simply
 * not configured. One without the other, or an API URL that is not http(s), is a ConfigError naming
 * the variable.
 */
export const WechatConfig: Config.Config<Option.Option<WechatOptions>> = Config.all({
  appId: Config.string("WECHAT_APP_ID").pipe(Config.withDefault("")),
  appSecret: Config.option(Config.redacted("WECHAT_APP_SECRET")),
  apiUrl: Config.string("WECHAT_API_URL").pipe(Config.withDefault(DEFAULT_API_URL))
}).pipe(
  Config.mapOrFail(({ apiUrl, appId, appSecret }) => {
    const id = appId.trim()
    const secret = Option.filter(appSecret, (s) => Redacted.value(s).trim() !== "")
    if (id === "" && Option.isNone(secret)) return Either.right(Option.none())
    if (id === "") return Either.left(ConfigError.MissingData(["WECHAT_APP_ID"], "WECHAT_APP_ID is required when WECHAT_APP_SECRET is set"))
    if (Option.isNone(secret)) {
      return Either.left(ConfigError.MissingData(["WECHAT_APP_SECRET"], "WECHAT_APP_SECRET is required when WECHAT_APP_ID is set"))
    }
    return Option.match(apiOrigin(apiUrl === "" ? DEFAULT_API_URL : apiUrl), {
      onNone: () => Either.left(ConfigError.InvalidData(["WECHAT_API_URL"], "WECHAT_API_URL must be an http:// or https:// URL")),
      onSome: (origin) => Either.right(Option.some({ appId: id, appSecret: secret.value, apiUrl: origin }))
    })
  })
)

/** The WeChat sender from the environment, or None when WeChat is not configured (see WechatConfig). */
export const makeWechatFromConfig: Effect.Effect<
  Option.Option<ChannelSender<WechatMessage>>,
  ConfigError.ConfigError,
  HttpClient.HttpClient | Scope.Scope
> = Effect.flatMap(
  WechatConfig,
  Option.match({
    onNone: () => Effect.succeedNone,
    onSome: (options) => Effect.map(makeWechat(options), Option.some)
  })
)
