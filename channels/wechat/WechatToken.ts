import { type HttpClient, HttpClientRequest } from "@effect/platform"
import { Cause, Clock, Data, Deferred, Duration, Effect, Exit, Option, Redacted, Ref, type Scope } from "effect"
import { callWechat, DEFAULT_TIMEOUT, wechatClient } from "./WechatApi.ts"

/**
 * The access token every WeChat send needs (`GET /cgi-bin/token`), fetched once and shared:
 *
 * - Cached until `expires_in` minus a margin of 5 minutes, or half the lifetime when that is shorter
 *   (WeChat issues 7200 s tokens, refreshed after 6900 s; a 60 s test token after 30 s). The lifetime
 *   is counted from when the request left, not when the answer came.
 * - Single flight: while a token is being fetched every caller waits for that one request. The
 *   request runs in the service's own scope, so a caller that is interrupted does not abort it for
 *   the others.
 * - `invalidate(token)` forgets the cached token only if it is still the one given, so a burst of
 *   sends all answered 40001 with the same stale token causes one refresh, not one each.
 * - A failed fetch is remembered for `failureHold` (10 s by default): every send in that window gets
 *   the same error without another request, since the token API has its own daily quota (2000).
 */

export interface WechatTokenOptions {
  readonly appId: string
  readonly appSecret: Redacted.Redacted<string>
  /** the origin replacing https://api.weixin.qq.com, without a trailing slash */
  readonly apiUrl: string
  /** for one token request; 10 s by default */
  readonly timeout?: Duration.DurationInput
  /** how long a failed fetch is answered from memory; 10 s by default */
  readonly failureHold?: Duration.DurationInput
}

/** The token could not be had. The reason never contains the app secret or a token. */
export class WechatTokenError extends Data.TaggedError("WechatTokenError")<{
  readonly reason: string
  /** WeChat's errcode when it answered with one */
  readonly errcode?: number
  /** retrying later may help: network, timeout, HTTP 5xx / 429, WeChat busy (-1) or rate limited (45011) */
  readonly transient: boolean
  readonly retryAfterMs?: number
}> {}

export interface WechatToken {
  /** the cached token, or the one being fetched, or a fresh one */
  readonly get: Effect.Effect<Redacted.Redacted<string>, WechatTokenError>
  /** an API refused `token` (40001 / 40014 / 42001): the next `get` fetches a new one unless that already happened */
  readonly invalidate: (token: Redacted.Redacted<string>) => Effect.Effect<void>
}

type State =
  | { readonly _tag: "Empty" }
  | { readonly _tag: "Ready"; readonly token: Redacted.Redacted<string>; readonly refreshAt: number }
  | { readonly _tag: "Fetching"; readonly done: Deferred.Deferred<Redacted.Redacted<string>, WechatTokenError> }
  | { readonly _tag: "Failed"; readonly error: WechatTokenError; readonly retryAt: number }

type Next =
  | { readonly _tag: "Use"; readonly token: Redacted.Redacted<string> }
  | { readonly _tag: "Fail"; readonly error: WechatTokenError }
  | { readonly _tag: "Await"; readonly done: Deferred.Deferred<Redacted.Redacted<string>, WechatTokenError> }
  | { readonly _tag: "Fetch"; readonly done: Deferred.Deferred<Redacted.Redacted<string>, WechatTokenError> }

/** The token API's own codes (https://developers.weixin.qq.com/doc/offiaccount/Basic_Information/Get_access_token.html). */
const tokenErrors: Readonly<Record<number, string>> = {
  [-1]: "system busy",
  40001: "app secret wrong or not of this app",
  40002: "invalid grant_type",
  40013: "invalid app id",
  40125: "invalid app secret",
  40164: "calling IP not in the API IP whitelist",
  40243: "app secret frozen",
  45009: "daily quota of the token API reached",
  45011: "token API called too often",
  89503: "calling IP needs the administrator's confirmation"
}
const transientTokenCodes = new Set([-1, 45011])

/** The refresh margin: 5 minutes, or half the lifetime for short-lived tokens. */
export const refreshDelayMs = (expiresInSeconds: number): number => {
  const lifetime = expiresInSeconds * 1000
  return lifetime - Math.min(300_000, lifetime / 2)
}

export const makeWechatToken = (
  options: WechatTokenOptions
): Effect.Effect<WechatToken, never, HttpClient.HttpClient | Scope.Scope> =>
  Effect.gen(function* () {
    const client = yield* wechatClient
    const scope = yield* Effect.scope
    const state = yield* Ref.make<State>({ _tag: "Empty" })
    const timeout = options.timeout ?? DEFAULT_TIMEOUT
    const holdMs = Duration.toMillis(options.failureHold ?? "10 seconds")

    const fetchToken: Effect.Effect<{ token: Redacted.Redacted<string>; refreshAt: number }, WechatTokenError> = Effect.gen(
      function* () {
        const sentAt = yield* Clock.currentTimeMillis
        const request = HttpClientRequest.get(`${options.apiUrl}/cgi-bin/token`).pipe(
          HttpClientRequest.setUrlParams({
            grant_type: "client_credential",
            appid: options.appId,
            secret: Redacted.value(options.appSecret)
          })
        )
        const answer = yield* callWechat(client, request, timeout).pipe(
          Effect.mapError(
            (error) =>
              new WechatTokenError({
                reason: `wechat token: ${error.reason}`,
                transient: error.transient,
                ...(error.retryAfterMs !== undefined ? { retryAfterMs: error.retryAfterMs } : {})
              })
          )
        )
        if (answer.errcode !== 0) {
          return yield* new WechatTokenError({
            reason: `wechat token ${answer.errcode}: ${tokenErrors[answer.errcode] ?? "token request refused"}`,
            errcode: answer.errcode,
            transient: transientTokenCodes.has(answer.errcode)
          })
        }
        const token = answer.body["access_token"]
        const expiresIn = answer.body["expires_in"]
        if (typeof token !== "string" || token.length === 0 || typeof expiresIn !== "number" || !(expiresIn > 0)) {
          return yield* new WechatTokenError({ reason: "wechat token: answer without access_token / expires_in", transient: true })
        }
        return { token: Redacted.make(token), refreshAt: sentAt + refreshDelayMs(expiresIn) }
      }
    )

    const refresh = (done: Deferred.Deferred<Redacted.Redacted<string>, WechatTokenError>) =>
      Effect.gen(function* () {
        const exit = yield* Effect.exit(fetchToken)
        const now = yield* Clock.currentTimeMillis
        yield* Ref.set(
          state,
          Exit.match(exit, {
            onSuccess: ({ refreshAt, token }): State => ({ _tag: "Ready", token, refreshAt }),
            onFailure: (cause): State =>
              Option.match(Cause.failureOption(cause), {
                onNone: () => ({ _tag: "Empty" }),
                onSome: (error) => ({ _tag: "Failed", error, retryAt: now + holdMs })
              })
          })
        )
        yield* Deferred.done(done, Exit.map(exit, ({ token }) => token))
      }).pipe(
        // the channel is shutting down: nobody waits forever on a fetch that will never finish
        Effect.onInterrupt(() =>
          Ref.set(state, { _tag: "Empty" }).pipe(
            Effect.zipRight(Deferred.fail(done, new WechatTokenError({ reason: "wechat token: channel closed", transient: true })))
          )
        )
      )

    const get: WechatToken["get"] = Effect.uninterruptibleMask((restore) =>
      Effect.gen(function* () {
        const now = yield* Clock.currentTimeMillis
        const current = yield* Ref.get(state)
        if (current._tag === "Ready" && now < current.refreshAt) return current.token
        const fresh = yield* Deferred.make<Redacted.Redacted<string>, WechatTokenError>()
        const next = yield* Ref.modify(state, (s): [Next, State] => {
          switch (s._tag) {
            case "Ready":
              return now < s.refreshAt ? [{ _tag: "Use", token: s.token }, s] : [{ _tag: "Fetch", done: fresh }, { _tag: "Fetching", done: fresh }]
            case "Failed":
              return now < s.retryAt ? [{ _tag: "Fail", error: s.error }, s] : [{ _tag: "Fetch", done: fresh }, { _tag: "Fetching", done: fresh }]
            case "Fetching":
              return [{ _tag: "Await", done: s.done }, s]
            case "Empty":
              return [{ _tag: "Fetch", done: fresh }, { _tag: "Fetching", done: fresh }]
          }
        })
        switch (next._tag) {
          case "Use":
            return next.token
          case "Fail":
            return yield* next.error
          case "Fetch":
            yield* Effect.forkIn(refresh(next.done), scope)
            return yield* restore(Deferred.await(next.done))
          case "Await":
            return yield* restore(Deferred.await(next.done))
        }
      })
    )

    const invalidate: WechatToken["invalidate"] = (token) =>
      Ref.update(state, (s): State =>
        s._tag === "Ready" && Redacted.value(s.token) === Redacted.value(token) ? { _tag: "Empty" } : s
      )

    return { get, invalidate } satisfies WechatToken
  })
