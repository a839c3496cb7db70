import { NodeHttpClient } from "@effect/platform-node"
import type { HttpClient } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { ConfigProvider, Effect, Fiber, Option, Redacted, type Scope, TestClock } from "effect"
import type { SendOutcome, WechatMessage } from "../../channels/Channel.ts"
import { nextShanghaiMidnight, scrubbedErrmsg } from "../../channels/wechat/WechatApi.ts"
import { clientMsgId, makeWechat, makeWechatFromConfig, type WechatOptions, WechatConfig } from "../../channels/wechat/WechatMessages.ts"
import { makeWechatToken } from "../../channels/wechat/WechatToken.ts"
import { freePort } from "../support/engine.ts"
import { type WechatServer, type WechatServerOptions, wechatServer } from "../support/wechat.ts"

const APP = { appId: "wx5f3c0e1a9b7d2468", appSecret: "9c1e7a3b5d0f2468ace13579bdf02468" }
const OPENID = "oXk2Y5aQ1bC3dE4fG6hI7jK8lM9n"

let counter = 0
const template = (touser = OPENID): WechatMessage => ({
  channel: "wechat",
  kind: "template",
  messageId: `points-expiry:1:enr-${++counter}:0`,
  memberId: "m-1",
  touser,
  templateId: "TPL_points_expiry_001",
  url: "https://club.example.com/points?from=wechat",
  miniprogram: { appid: "wxmini0000000001", pagepath: "pages/points/index?tab=expiring" },
  data: { first: "您的积分即将过期", keyword1: "1,200 分", keyword2: "2024-12-31", remark: "点击查看详情" }
})
const subscribe = (touser = OPENID): WechatMessage => ({
  channel: "wechat",
  kind: "subscribe",
  messageId: `tier-up:2:enr-${++counter}:1`,
  memberId: "m-2",
  touser,
  templateId: "SUB_tier_change_7",
  page: "pages/tier/index",
  data: { thing1: "金卡会员", time2: "2024-06-01 10:00" }
})

/** A WeChat server and a sender pointed at it, both living as long as the test's scope. */
const setup = (server: Partial<WechatServerOptions> = {}, sender: Partial<WechatOptions> = {}) =>
  Effect.gen(function* () {
    const wechat = yield* wechatServer({ ...APP, ...server })
    const channel = yield* makeWechat({ appId: APP.appId, appSecret: Redacted.make(APP.appSecret), apiUrl: wechat.url, ...sender })
    return { wechat, channel }
  })

/** Tests talk to the local server through the platform's Node client, as the engine does. */
const http = <A, E>(effect: Effect.Effect<A, E, HttpClient.HttpClient | Scope.Scope>): Effect.Effect<A, E, Scope.Scope> =>
  Effect.provide(effect, NodeHttpClient.layer)

/** No reason, id or anything else in an outcome carries an openid, the app secret or a token. */
const expectClean = (outcome: SendOutcome, wechat: WechatServer | undefined, ...openids: Array<string>) => {
  const text = JSON.stringify(outcome)
  for (const secret of [APP.appSecret, OPENID, ...openids, ...(wechat?.issuedTokens() ?? [])]) expect(text).not.toContain(secret)
}

describe("WeChat channel", () => {
  describe("messages leave with the documented bodies", () => {
    it.scopedLive("a template message arrives with exactly touser, template_id, url, miniprogram and data", () =>
      Effect.gen(function* () {
        const { channel, wechat } = yield* setup()
        const message = template()
        const outcome = yield* channel.send(message)
        expect(wechat.received).toHaveLength(1)
        const got = wechat.received[0]
        expect(got?.kind).toBe("template")
        expect(got?.body).toStrictEqual({
          client_msg_id: clientMsgId(message.messageId),
          touser: OPENID,
          template_id: "TPL_points_expiry_001",
          url: "https://club.example.com/points?from=wechat",
          miniprogram: { appid: "wxmini0000000001", pagepath: "pages/points/index?tab=expiring" },
          data: {
            first: { value: "您的积分即将过期" },
            keyword1: { value: "1,200 分" },
            keyword2: { value: "2024-12-31" },
            remark: { value: "点击查看详情" }
          }
        })
        // WeChat's msgid is an int64: kept digit for digit, not rounded through a JS number
        expect(outcome).toStrictEqual({ _tag: "Sent", providerMessageId: got?.msgid })
        expect(got?.msgid).toBe("3147483648000000001")
      }).pipe(http))

    it.scopedLive("a template message without url or miniprogram sends neither field", () =>
      Effect.gen(function* () {
        const { channel, wechat } = yield* setup()
        const bare: WechatMessage = {
          channel: "wechat",
          kind: "template",
          messageId: "bare-1",
          memberId: "m-3",
          touser: OPENID,
          templateId: "TPL_benefit",
          data: { first: "权益已到账" }
        }
        expect((yield* channel.send(bare))._tag).toBe("Sent")
        expect(wechat.received[0]?.body).toStrictEqual({
          touser: OPENID,
          template_id: "TPL_benefit",
          data: { first: { value: "权益已到账" } },
          client_msg_id: clientMsgId("bare-1")
        })
      }).pipe(http))

    it.scopedLive("a subscribe message arrives with exactly touser, template_id, page and data", () =>
      Effect.gen(function* () {
        const { channel, wechat } = yield* setup()
        const outcome = yield* channel.send(subscribe())
        expect(wechat.received.map((r) => [r.kind, r.body])).toStrictEqual([
          [
            "subscribe",
            {
              touser: OPENID,
              template_id: "SUB_tier_change_7",
              page: "pages/tier/index",
              data: { thing1: { value: "金卡会员" }, time2: { value: "2024-06-01 10:00" } }
            }
          ]
        ])
        expect(outcome).toStrictEqual({ _tag: "Sent", providerMessageId: wechat.received[0]?.msgid })
      }).pipe(http))

    it.scopedLive("a template message handed over again after a crash reaches the member once (client_msg_id), a subscribe message is not recoverable", () =>
      Effect.gen(function* () {
        const { channel, wechat } = yield* setup()
        const message = template()
        const first = yield* channel.send(message)
        const recovered = yield* channel.recover?.(message, Date.now() - 1_000) ?? Effect.succeed(null)
        expect(wechat.received).toHaveLength(1)
        expect(first).toStrictEqual({ _tag: "Sent", providerMessageId: wechat.received[0]?.msgid })
        expect(recovered).toBe(wechat.received[0]?.msgid)
        expect(channel.recoverable?.(message)).toBe(true)
        expect(channel.recoverable?.(subscribe())).toBe(false)
        // past WeChat's 10-minute window a repeat could be a second message: unknowable, not resent
        const late = yield* Effect.either(channel.recover?.(message, Date.now() - 11 * 60_000) ?? Effect.succeed(null))
        expect(late._tag === "Left" && late.left.unknowable).toBe(true)
        expect(wechat.received).toHaveLength(1)
      }).pipe(http))
  })

  describe("the access token", () => {
    it.scopedLive("twenty concurrent sends with no token yet cause exactly one token request", () =>
      Effect.gen(function* () {
        const { channel, wechat } = yield* setup()
        const outcomes = yield* Effect.all(
          Array.from({ length: 20 }, (_, i) => channel.send(i % 2 === 0 ? template(`openid-${i}`) : subscribe(`openid-${i}`))),
          { concurrency: "unbounded" }
        )
        expect(outcomes.every((o) => o._tag === "Sent")).toBe(true)
        expect(wechat.tokenRequests()).toBe(1)
        expect(new Set(wechat.received.map((r) => r.touser)).size).toBe(20)
        expect(new Set(outcomes.map((o) => (o._tag === "Sent" ? o.providerMessageId : "")))).toHaveProperty("size", 20)
      }).pipe(http))

    it.scopedLive("a token revoked mid-run (40001) is refreshed once for a burst of sends and every send goes out", () =>
      Effect.gen(function* () {
        const { channel, wechat } = yield* setup()
        expect((yield* channel.send(template()))._tag).toBe("Sent")
        wechat.expireTokens(40001)
        const outcomes = yield* Effect.all(
          Array.from({ length: 10 }, (_, i) => channel.send(template(`openid-${i}`))),
          { concurrency: "unbounded" }
        )
        expect(outcomes.map((o) => o._tag)).toStrictEqual(Array(10).fill("Sent"))
        expect(wechat.tokenRequests()).toBe(2)
        expect(wechat.received).toHaveLength(11)
        expect(wechat.rejected.length).toBeGreaterThan(0)
        expect(wechat.rejected.every((r) => r.errcode === 40001)).toBe(true)
      }).pipe(http))

    it.scopedLive("an expired token (42001) is refreshed and the send retried", () =>
      Effect.gen(function* () {
        const { channel, wechat } = yield* setup()
        yield* channel.send(subscribe())
        wechat.expireTokens(42001)
        expect((yield* channel.send(subscribe()))._tag).toBe("Sent")
        expect(wechat.tokenRequests()).toBe(2)
        expect(wechat.rejected.map((r) => r.errcode)).toStrictEqual([42001])
      }).pipe(http))

    it.scopedLive("a token refused again right after a refresh is a transient failure, after one refresh only", () =>
      Effect.gen(function* () {
        const { channel, wechat } = yield* setup()
        wechat.failAll(40001)
        const outcome = yield* channel.send(template())
        expect(outcome).toStrictEqual({ _tag: "Transient", reason: "wechat 40001: access token refused again after a refresh" })
        expect(wechat.tokenRequests()).toBe(2)
        expectClean(outcome, wechat)
      }).pipe(http))

    it.scoped("the token is reused until five minutes before expires_in, then fetched again", () =>
      Effect.gen(function* () {
        const { channel, wechat } = yield* setup({ tokenLifetimeSeconds: 7200 })
        yield* channel.send(template())
        yield* TestClock.adjust("6899 seconds")
        yield* channel.send(template())
        expect(wechat.tokenRequests()).toBe(1)
        yield* TestClock.adjust("2 seconds")
        yield* channel.send(template())
        expect(wechat.tokenRequests()).toBe(2)
        expect(wechat.received).toHaveLength(3)
      }).pipe(http))

    it.scoped("a short-lived token is refreshed after half its lifetime", () =>
      Effect.gen(function* () {
        const { channel, wechat } = yield* setup({ tokenLifetimeSeconds: 60 })
        yield* channel.send(template())
        yield* TestClock.adjust("29 seconds")
        yield* channel.send(template())
        expect(wechat.tokenRequests()).toBe(1)
        yield* TestClock.adjust("2 seconds")
        yield* channel.send(template())
        expect(wechat.tokenRequests()).toBe(2)
      }).pipe(http))

    it.scopedLive("a send interrupted while the token is being fetched does not stop the others from getting it", () =>
      Effect.gen(function* () {
        const { channel, wechat } = yield* setup()
        wechat.busy(300, "hang")
        const first = yield* Effect.fork(channel.send(template("openid-a")))
        const second = yield* Effect.fork(channel.send(template("openid-b")))
        yield* Effect.sleep("50 millis")
        yield* Fiber.interrupt(first)
        expect((yield* Fiber.join(second))._tag).toBe("Sent")
        expect(wechat.tokenRequests()).toBe(1)
        expect(wechat.received.map((r) => r.touser)).toStrictEqual(["openid-b"])
      }).pipe(http))

    it.scoped("a wrong app secret is a clear error naming WeChat's code, without the secret, asked once for a burst", () =>
      Effect.gen(function* () {
        const wechat = yield* wechatServer(APP)
        const wrong = "0000wrong-secret-0000"
        const channel = yield* makeWechat({ appId: APP.appId, appSecret: Redacted.make(wrong), apiUrl: wechat.url })
        const outcomes = yield* Effect.all(
          Array.from({ length: 20 }, () => channel.send(template())),
          { concurrency: "unbounded" }
        )
        for (const outcome of outcomes) {
          expect(outcome).toStrictEqual({ _tag: "Permanent", reason: "wechat token 40125: invalid app secret", fallback: true, optOut: false })
          expect(JSON.stringify(outcome)).not.toContain(wrong)
        }
        expect(wechat.tokenRequests()).toBe(1)
        // a failed fetch is answered from memory for a while (the token API has a daily quota), then asked again
        yield* channel.send(template())
        expect(wechat.tokenRequests()).toBe(1)
        yield* TestClock.adjust("11 seconds")
        yield* channel.send(template())
        expect(wechat.tokenRequests()).toBe(2)
        expect(wechat.received).toHaveLength(0)
      }).pipe(http))

    it.scopedLive("a wrong app id is refused with 40013 and the token service says so with a typed error", () =>
      Effect.gen(function* () {
        const wechat = yield* wechatServer(APP)
        const token = yield* makeWechatToken({ appId: "wx-not-ours", appSecret: Redacted.make(APP.appSecret), apiUrl: wechat.url })
        const error = yield* Effect.flip(token.get)
        expect(error._tag).toBe("WechatTokenError")
        expect(error.reason).toBe("wechat token 40013: invalid app id")
        expect(error.errcode).toBe(40013)
        expect(error.transient).toBe(false)
        expect(error.reason).not.toContain(APP.appSecret)
      }).pipe(http))
  })

  describe("WeChat's answers sorted into outcomes", () => {
    it.scopedLive("a member who unfollowed, refused the subscription or has a bad openid fails permanently and falls back", () =>
      Effect.gen(function* () {
        const { channel, wechat } = yield* setup()
        const cases = [
          ["o-unfollowed", 43004, "wechat 43004: user is not following the official account"],
          ["o-refused", 43101, "wechat 43101: user refused the subscription"],
          ["o-bad", 40003, "wechat 40003: invalid openid"]
        ] as const
        for (const [openid, errcode, reason] of cases) {
          wechat.failOpenId(openid, errcode)
          const outcome = yield* channel.send(errcode === 43101 ? subscribe(openid) : template(openid))
          expect(outcome).toStrictEqual({ _tag: "Permanent", reason, fallback: true, optOut: false })
          expectClean(outcome, wechat, openid)
        }
        expect(wechat.received).toHaveLength(0)
      }).pipe(http))

    it.scopedLive("WeChat busy (-1) is retried later", () =>
      Effect.gen(function* () {
        const { channel, wechat } = yield* setup()
        wechat.failOpenId("o-busy", -1)
        const outcome = yield* channel.send(template("o-busy"))
        expect(outcome).toStrictEqual({ _tag: "Transient", reason: "wechat -1: system busy" })
        expectClean(outcome, wechat, "o-busy")
      }).pipe(http))

    it.scopedLive("HTTP 500 from WeChat is retried later", () =>
      Effect.gen(function* () {
        const { channel, wechat } = yield* setup()
        yield* channel.send(template())
        wechat.busy(5_000, "http500")
        const outcome = yield* channel.send(template())
        expect(outcome).toStrictEqual({ _tag: "Transient", reason: "wechat: HTTP 500" })
        expectClean(outcome, wechat)
      }).pipe(http))

    it.scopedLive("a send with no answer within the timeout is retried later (and WeChat may still take it)", () =>
      Effect.gen(function* () {
        const { channel, wechat } = yield* setup({}, { timeout: "200 millis" })
        yield* channel.send(template())
        wechat.busy(600, "hang")
        const outcome = yield* channel.send(template())
        expect(outcome).toStrictEqual({ _tag: "Transient", reason: "wechat: no answer within 200ms" })
        yield* Effect.sleep("800 millis")
        expect(wechat.received).toHaveLength(2)
      }).pipe(http))

    it.scoped("the daily quota spent (45009) pauses the channel until the next midnight in Shanghai", () =>
      Effect.gen(function* () {
        const { channel, wechat } = yield* setup()
        yield* TestClock.setTime(Date.parse("2024-03-10T15:59:00Z")) // 23:59 in Shanghai
        wechat.failAll(45009)
        const outcome = yield* channel.send(template())
        expect(outcome).toStrictEqual({ _tag: "Paused", reason: "wechat 45009: daily quota reached", until: Date.parse("2024-03-10T16:00:00Z") })
        yield* TestClock.setTime(Date.parse("2024-03-10T16:00:00Z")) // 00:00 the next day in Shanghai
        expect(yield* channel.send(subscribe())).toHaveProperty("until", Date.parse("2024-03-11T16:00:00Z"))
      }).pipe(http))

    it.scopedLive("any other errcode fails the message without fallback, naming the code", () =>
      Effect.gen(function* () {
        const { channel, wechat } = yield* setup()
        wechat.failOpenId("o-unauth", 48001)
        const outcome = yield* channel.send(template("o-unauth"))
        expect(outcome._tag === "Permanent" && outcome.fallback === false && outcome.reason.startsWith("wechat 48001: api unauthorized")).toBe(true)
        expectClean(outcome, wechat, "o-unauth")
      }).pipe(http))

    it.scopedLive("WeChat unreachable is retried later, whether the token or the send cannot get through", () =>
      Effect.gen(function* () {
        const nobody = `http://127.0.0.1:${yield* Effect.promise(freePort)}`
        const unreachable = yield* makeWechat({ appId: APP.appId, appSecret: Redacted.make(APP.appSecret), apiUrl: nobody })
        const noToken = yield* unreachable.send(template())
        expect(noToken).toStrictEqual({ _tag: "Transient", reason: "wechat token: request failed (ECONNREFUSED)" })
        expectClean(noToken, undefined)

        const wechat = yield* wechatServer(APP)
        const channel = yield* makeWechat({ appId: APP.appId, appSecret: Redacted.make(APP.appSecret), apiUrl: wechat.url })
        yield* channel.send(template())
        const tokens = wechat.issuedTokens()
        yield* Effect.promise(() => wechat.close())
        const noSend = yield* channel.send(template())
        expect(noSend).toStrictEqual({ _tag: "Transient", reason: "wechat: request failed (ECONNREFUSED)" })
        for (const token of tokens) expect(JSON.stringify(noSend)).not.toContain(token)
      }).pipe(http))
  })

  describe("configuration", () => {
    const withEnv = (env: Record<string, string>) => Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))

    it.scoped("WeChat with neither app id nor secret is simply not configured", () =>
      Effect.gen(function* () {
        expect(yield* WechatConfig.pipe(withEnv({}))).toStrictEqual(Option.none())
        expect(yield* WechatConfig.pipe(withEnv({ WECHAT_APP_ID: "", WECHAT_APP_SECRET: " " }))).toStrictEqual(Option.none())
        expect(yield* makeWechatFromConfig.pipe(withEnv({}))).toStrictEqual(Option.none())
      }).pipe(http))

    /** The ConfigError's text for `env`, or "no error" so a missing failure shows in the assertion. */
    const configError = (env: Record<string, string>) =>
      WechatConfig.pipe(
        withEnv(env),
        Effect.match({ onFailure: (error) => String(error), onSuccess: () => "no error" })
      )

    it.effect("an app id without a secret, a secret without an app id, or a bad API URL is a clear error", () =>
      Effect.gen(function* () {
        expect(yield* configError({ WECHAT_APP_ID: APP.appId })).toContain("WECHAT_APP_SECRET is required when WECHAT_APP_ID is set")
        const noId = yield* configError({ WECHAT_APP_SECRET: APP.appSecret })
        expect(noId).toContain("WECHAT_APP_ID is required when WECHAT_APP_SECRET is set")
        expect(noId).not.toContain(APP.appSecret)
        const badUrl = yield* configError({ WECHAT_APP_ID: APP.appId, WECHAT_APP_SECRET: APP.appSecret, WECHAT_API_URL: "api.weixin.qq.com" })
        expect(badUrl).toContain("WECHAT_API_URL must be an http:// or https:// URL")
        expect(yield* configError({ WECHAT_APP_ID: APP.appId, WECHAT_APP_SECRET: APP.appSecret, WECHAT_API_URL: "ftp://x" })).toContain("WECHAT_API_URL")
      }))

    it.effect("the API URL defaults to WeChat's and the secret stays redacted", () =>
      Effect.gen(function* () {
        const options = yield* WechatConfig.pipe(withEnv({ WECHAT_APP_ID: APP.appId, WECHAT_APP_SECRET: APP.appSecret }))
        expect(Option.map(options, (o) => o.apiUrl)).toStrictEqual(Option.some("https://api.weixin.qq.com"))
        expect(Option.map(options, (o) => Redacted.value(o.appSecret))).toStrictEqual(Option.some(APP.appSecret))
        expect(String(options)).not.toContain(APP.appSecret)
      }))

    it.scopedLive("a sender built from the environment sends through WECHAT_API_URL", () =>
      Effect.gen(function* () {
        const wechat = yield* wechatServer(APP)
        const channel = yield* makeWechatFromConfig.pipe(
          withEnv({ WECHAT_APP_ID: APP.appId, WECHAT_APP_SECRET: APP.appSecret, WECHAT_API_URL: `${wechat.url}/` })
        )
        expect(Option.isSome(channel)).toBe(true)
        if (Option.isSome(channel)) expect((yield* channel.value.send(subscribe()))._tag).toBe("Sent")
        expect(wechat.received).toHaveLength(1)
      }).pipe(http))
  })
})

describe("WeChat helpers", () => {
  it("the next quota reset is the next 00:00 in Shanghai (UTC+8)", () => {
    expect(nextShanghaiMidnight(Date.parse("2024-03-10T00:00:00Z"))).toBe(Date.parse("2024-03-10T16:00:00Z"))
    expect(nextShanghaiMidnight(Date.parse("2024-03-10T15:59:59.999Z"))).toBe(Date.parse("2024-03-10T16:00:00Z"))
    expect(nextShanghaiMidnight(Date.parse("2024-03-10T16:00:00Z"))).toBe(Date.parse("2024-03-11T16:00:00Z"))
    expect(nextShanghaiMidnight(Date.parse("2024-12-31T17:30:00Z"))).toBe(Date.parse("2025-01-01T16:00:00Z"))
  })

  it("an unknown errmsg that echoes an openid or token has them cut out", () => {
    expect(scrubbedErrmsg(`invalid touser ${OPENID} hint: [tok-123]`, [OPENID, "tok-123"])).toBe("invalid touser … hint: […]")
  })
})
