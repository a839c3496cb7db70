import { HttpClient, type HttpClientRequest } from "@effect/platform"
import { Data, Duration, Effect, Option } from "effect"

/**
 * One call to WeChat's HTTP API, shared by the token service and the senders: what WeChat answered
 * (`errcode` / `errmsg` and the raw JSON), or why nothing usable came back. Every URL we call carries
 * the app secret or the access token in its query string, so nothing here keeps the request, the
 * URL or the client's own error (whose message embeds the URL), and tracing of these requests is
 * off: a span's `url.full` would carry them too.
 */

export const DEFAULT_API_URL = "https://api.weixin.qq.com"
export const DEFAULT_TIMEOUT: Duration.DurationInput = "10 seconds"

/** Nothing usable came back: the network, a timeout, an HTTP error status or a body that is not WeChat JSON. */
export class WechatHttpError extends Data.TaggedError("WechatHttpError")<{
  readonly reason: string
  /** the HTTP status when WeChat (or a proxy) answered with an error status */
  readonly status?: number
  /** from a `Retry-After` header on a 429 / 503 */
  readonly retryAfterMs?: number
}> {
  /** network, timeout, 429 and 5xx are worth retrying; any other status is a configuration problem */
  get transient(): boolean {
    return this.status === undefined || this.status === 429 || this.status >= 500
  }
}

export interface WechatAnswer {
  /** 0 when WeChat answered without one (the token endpoint's success) */
  readonly errcode: number
  readonly errmsg: string
  readonly body: Readonly<Record<string, unknown>>
  /** the body as sent: int64 ids (msgid) lose precision in JSON.parse, so they are read from here */
  readonly text: string
}

const errorCode = (cause: unknown): string | undefined => {
  // undici wraps the socket error; node:http hands it over directly
  for (let at: unknown = cause, depth = 0; typeof at === "object" && at !== null && depth < 4; depth++) {
    const code = (at as { code?: unknown }).code
    if (typeof code === "string" && /^[A-Z_]+$/.test(code)) return code
    at = (at as { cause?: unknown }).cause
  }
  return undefined
}

const retryAfter = (value: string | undefined): number | undefined => {
  const seconds = value === undefined ? Number.NaN : Number(value)
  return Number.isFinite(seconds) && seconds >= 0 ? seconds * 1000 : undefined
}

const parseObject = (text: string): Record<string, unknown> | undefined => {
  try {
    const value: unknown = JSON.parse(text)
    return typeof value === "object" && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined
  } catch {
    return undefined
  }
}

/** A client whose requests open no span: `url.full` would hold the secret or the access token. */
export const wechatClient: Effect.Effect<HttpClient.HttpClient, never, HttpClient.HttpClient> = Effect.map(
  HttpClient.HttpClient,
  HttpClient.withTracerDisabledWhen(() => true)
)

/** Executes `request` within `timeout` and reads WeChat's JSON answer. */
export const callWechat = (
  client: HttpClient.HttpClient,
  request: HttpClientRequest.HttpClientRequest,
  timeout: Duration.DurationInput
): Effect.Effect<WechatAnswer, WechatHttpError> =>
  Effect.gen(function* () {
    const response = yield* client.execute(request)
    const text = yield* response.text
    if (response.status < 200 || response.status >= 300) {
      const after = retryAfter(response.headers["retry-after"])
      return yield* new WechatHttpError({
        reason: `HTTP ${response.status}`,
        status: response.status,
        ...(after !== undefined ? { retryAfterMs: after } : {})
      })
    }
    const body = parseObject(text)
    if (body === undefined) return yield* new WechatHttpError({ reason: `HTTP ${response.status} with a body that is not JSON` })
    const errcode = typeof body["errcode"] === "number" ? body["errcode"] : 0
    const errmsg = typeof body["errmsg"] === "string" ? body["errmsg"] : ""
    return { errcode, errmsg, body, text } satisfies WechatAnswer
  }).pipe(
    Effect.catchTag("RequestError", (error) => {
      const code = errorCode(error.cause)
      return Effect.fail(new WechatHttpError({ reason: code !== undefined ? `request failed (${code})` : `request failed (${error.reason})` }))
    }),
    Effect.catchTag("ResponseError", (error) => Effect.fail(new WechatHttpError({ reason: `reading the answer failed (${error.reason})` }))),
    Effect.timeoutFail({
      duration: timeout,
      onTimeout: () => new WechatHttpError({ reason: `no answer within ${Duration.format(Duration.decode(timeout))}` })
    })
  )

/**
 * WeChat's daily quotas reset at midnight China Standard Time (UTC+8, no daylight saving since 1991),
 * so a fixed offset gives the next reset exactly.
 */
const SHANGHAI_OFFSET_MS = 8 * 3_600_000
const DAY_MS = 86_400_000
export const nextShanghaiMidnight = (now: number): number =>
  Math.floor((now + SHANGHAI_OFFSET_MS) / DAY_MS) * DAY_MS + DAY_MS - SHANGHAI_OFFSET_MS

/**
 * WeChat's `errmsg` for an errcode we do not know, kept short and with the values that must never
 * appear in a reason cut out in case WeChat echoes one of them.
 */
export const scrubbedErrmsg = (errmsg: string, secrets: ReadonlyArray<string>): string => {
  let text = errmsg
  for (const secret of secrets) if (secret.length > 0) text = text.split(secret).join("…")
  return text.length > 120 ? `${text.slice(0, 120)}…` : text
}

/** The origin from WECHAT_API_URL (or the default) without a trailing slash; None when it is no http(s) URL. */
export const apiOrigin = (url: string): Option.Option<string> => {
  const trimmed = url.trim().replace(/\/+$/, "")
  try {
    const parsed = new URL(trimmed)
    return parsed.protocol === "http:" || parsed.protocol === "https:" ? Option.some(trimmed) : Option.none()
  } catch {
    return Option.none()
  }
}
