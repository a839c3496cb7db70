import { Effect } from "effect"
import { randomBytes } from "node:crypto"
import { createServer, type IncomingMessage, type ServerResponse } from "node:http"
import { freePort } from "./engine.ts"

/**
 * A local WeChat API speaking the documented contracts of
 * - GET  /cgi-bin/token?grant_type=client_credential&appid=…&secret=…  → {access_token, expires_in}
 * - POST /cgi-bin/message/template/send?access_token=…  {touser, template_id, url?, miniprogram?, data}
 * - POST /cgi-bin/message/subscribe/send?access_token=… {touser, template_id, page?, data}
 * Answers are HTTP 200 with `{errcode, errmsg[, msgid]}` as WeChat's are, errmsg ending in a `rid`.
 * Tokens stay valid until their lifetime ends (42001) or `expireTokens` revokes them (40001 / 42001
 * until a new one is fetched); like WeChat, fetching a new token leaves the previous ones usable.
 */

export type WechatKind = "template" | "subscribe"

export interface WechatReceived {
  readonly kind: WechatKind
  readonly touser: string
  readonly template_id: string
  readonly url?: string
  readonly page?: string
  readonly miniprogram?: { readonly appid: string; readonly pagepath: string }
  readonly data: Readonly<Record<string, { readonly value: string }>>
  /** the JSON body exactly as received */
  readonly body: Readonly<Record<string, unknown>>
  /** the msgid answered, as a decimal string (an int64 beyond 2^53) */
  readonly msgid: string
}

export interface WechatRejected {
  readonly kind: WechatKind
  readonly touser: string | undefined
  readonly errcode: number
}

export interface WechatServer {
  /** the origin to use as WECHAT_API_URL */
  readonly url: string
  /** every message accepted (errcode 0), in order */
  readonly received: ReadonlyArray<WechatReceived>
  /** every send answered with a non-zero errcode (or HTTP 500), in order */
  readonly rejected: ReadonlyArray<WechatRejected>
  /** token requests seen, accepted or not */
  readonly tokenRequests: () => number
  /** every access token issued, for checking that none leaks into a reason or a log */
  readonly issuedTokens: () => ReadonlyArray<string>
  /** lifetime (expires_in) of the tokens issued from now on */
  readonly setTokenLifetime: (seconds: number) => void
  /** every token issued so far answers `errcode` (40001 invalid, 42001 expired) until a new one is fetched */
  readonly expireTokens: (errcode?: 40001 | 42001) => void
  /** sends to `openid` answer `errcode` (43004, 43101, 40003, 45009, -1, …); null clears */
  readonly failOpenId: (openid: string, errcode: number | null) => void
  /** every send answers `errcode` (e.g. 45009 once the day's quota is spent, 40001 for a token never accepted); null clears */
  readonly failAll: (errcode: number | null) => void
  /**
   * Answers this share (0..1) of sends with `errcode` (-1, system busy, unless told), at random,
   * until called with 0; the token endpoint is not affected. A refused message is not kept.
   */
  readonly failRandomly: (rate: number, errcode?: number) => void
  /**
   * For the next `ms` every endpoint (token included) is busy: `errcode` answers {errcode: -1},
   * `http500` answers HTTP 500, `hang` holds each request until the window ends and then handles it
   * normally (a client that timed out may still have had its message accepted). null ends it now.
   */
  readonly busy: (ms: number | null, how?: "errcode" | "http500" | "hang") => void
  readonly close: () => Promise<void>
}

export interface WechatServerOptions {
  readonly appId: string
  readonly appSecret: string
  /** expires_in of issued tokens, 7200 s by default like WeChat's */
  readonly tokenLifetimeSeconds?: number
}

const errmsgs: Readonly<Record<number, string>> = {
  [-1]: "system error",
  40001: "invalid credential, access_token is invalid or not latest",
  40002: "invalid grant_type",
  40003: "invalid openid",
  40013: "invalid appid",
  40037: "invalid template_id",
  40125: "invalid appsecret",
  41001: "access_token missing",
  42001: "access_token expired",
  43002: "require POST method",
  43004: "require subscribe",
  43101: "user refuse to accept the msg",
  45009: "reach max api daily quota limit",
  47001: "data format error",
  47003: "argument invalid! data.value invalid",
  48001: "api unauthorized"
}

const rid = () => `${randomBytes(4).toString("hex")}-${randomBytes(4).toString("hex")}`

const readBody = (req: IncomingMessage): Promise<string> =>
  new Promise((ok, fail) => {
    let text = ""
    req.setEncoding("utf8")
    req.on("data", (chunk: string) => (text += chunk))
    req.on("end", () => ok(text))
    req.on("error", fail)
  })

const isStringRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value)

/** Checks the body against the documented shape; an errcode when WeChat would refuse it. */
const validate = (kind: WechatKind, body: Record<string, unknown>): number => {
  if (typeof body["touser"] !== "string" || body["touser"] === "") return 40003
  if (typeof body["template_id"] !== "string" || body["template_id"] === "") return 40037
  const data = body["data"]
  if (!isStringRecord(data)) return 47001
  for (const entry of Object.values(data)) if (!isStringRecord(entry) || typeof entry["value"] !== "string") return 47003
  if (kind === "template") {
    if (body["url"] !== undefined && typeof body["url"] !== "string") return 47001
    const mp = body["miniprogram"]
    if (mp !== undefined && (!isStringRecord(mp) || typeof mp["appid"] !== "string" || typeof mp["pagepath"] !== "string")) return 47001
  } else if (body["page"] !== undefined && typeof body["page"] !== "string") return 47001
  return 0
}

export const startWechatServer = async (options: WechatServerOptions): Promise<WechatServer> => {
  const port = await freePort()
  const received: Array<WechatReceived> = []
  const rejected: Array<WechatRejected> = []
  const tokens = new Map<string, { expiresAt: number; revoked: 40001 | 42001 | null }>()
  const openIdErrors = new Map<string, number>()
  let lifetime = options.tokenLifetimeSeconds ?? 7200
  let tokenRequests = 0
  let failAll: number | null = null
  let randomRate = 0
  let randomErrcode = -1
  let busy: { until: number; how: "errcode" | "http500" | "hang" } | null = null
  // beyond 2^53 on purpose: a client that parses msgid as a JSON number loses it
  let nextMsgid = 3_147_483_648_000_000_001n
  const sentByClientId = new Map<string, { msgid: string; at: number }>()

  const answer = (res: ServerResponse, errcode: number, extra = "") => {
    res.writeHead(200, { "content-type": "application/json; encoding=utf-8" })
    res.end(`{"errcode":${errcode},"errmsg":${JSON.stringify(`${errmsgs[errcode] ?? "error"} rid: ${rid()}`)}${extra}}`)
  }

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? "/", "http://localhost")
    const kind: WechatKind | "token" | undefined =
      url.pathname === "/cgi-bin/token"
        ? "token"
        : url.pathname === "/cgi-bin/message/template/send"
          ? "template"
          : url.pathname === "/cgi-bin/message/subscribe/send"
            ? "subscribe"
            : undefined
    const text = await readBody(req)
    if (kind === undefined) {
      res.writeHead(404, { "content-type": "text/plain" })
      res.end("not found")
      return
    }
    if (kind === "token") tokenRequests++
    if (busy !== null && Date.now() < busy.until) {
      if (busy.how === "hang") {
        const wait = busy.until - Date.now()
        await new Promise((ok) => setTimeout(ok, wait))
      } else {
        if (kind !== "token") rejected.push({ kind, touser: undefined, errcode: -1 })
        if (busy.how === "http500") {
          res.writeHead(500, { "content-type": "text/html" })
          res.end("<html><body>500 Internal Server Error</body></html>")
        } else answer(res, -1)
        return
      }
    }
    if (kind === "token") {
      if (req.method !== "GET") return answer(res, 43002)
      if (url.searchParams.get("grant_type") !== "client_credential") return answer(res, 40002)
      if (url.searchParams.get("appid") !== options.appId) return answer(res, 40013)
      if (url.searchParams.get("secret") !== options.appSecret) return answer(res, 40125)
      const token = randomBytes(64).toString("base64url")
      tokens.set(token, { expiresAt: Date.now() + lifetime * 1000, revoked: null })
      res.writeHead(200, { "content-type": "application/json; encoding=utf-8" })
      res.end(JSON.stringify({ access_token: token, expires_in: lifetime }))
      return
    }
    const reject = (errcode: number, touser?: string) => {
      rejected.push({ kind, touser, errcode })
      answer(res, errcode)
    }
    if (req.method !== "POST") return reject(43002)
    const accessToken = url.searchParams.get("access_token")
    if (accessToken === null || accessToken === "") return reject(41001)
    const issued = tokens.get(accessToken)
    if (issued === undefined) return reject(40001)
    if (issued.revoked !== null) return reject(issued.revoked)
    if (Date.now() >= issued.expiresAt) return reject(42001)
    let parsed: unknown
    try {
      parsed = JSON.parse(text)
    } catch {
      return reject(47001)
    }
    if (!isStringRecord(parsed)) return reject(47001)
    const touser = typeof parsed["touser"] === "string" ? parsed["touser"] : undefined
    const invalid = validate(kind, parsed)
    if (invalid !== 0) return reject(invalid, touser)
    if (failAll !== null) return reject(failAll, touser)
    if (randomRate > 0 && Math.random() < randomRate) return reject(randomErrcode, touser)
    const forOpenId = touser === undefined ? undefined : openIdErrors.get(touser)
    if (forOpenId !== undefined) return reject(forOpenId, touser)
    // WeChat: for one openid + client_msg_id only one template message is sent (10 minutes); a
    // repeat is answered like the first and not sent again.
    const clientMsgId = kind === "template" && typeof parsed["client_msg_id"] === "string" ? `${touser}|${parsed["client_msg_id"]}` : null
    const earlier = clientMsgId === null ? undefined : sentByClientId.get(clientMsgId)
    if (earlier !== undefined && Date.now() - earlier.at < 10 * 60_000) return answer(res, 0, `,"msgid":${earlier.msgid}`)
    const msgid = String(nextMsgid++)
    if (clientMsgId !== null) sentByClientId.set(clientMsgId, { msgid, at: Date.now() })
    const body = parsed as Record<string, unknown> & Omit<WechatReceived, "kind" | "body" | "msgid">
    received.push({
      kind,
      touser: body.touser,
      template_id: body.template_id,
      ...(body.url !== undefined ? { url: body.url } : {}),
      ...(body.page !== undefined ? { page: body.page } : {}),
      ...(body.miniprogram !== undefined ? { miniprogram: body.miniprogram } : {}),
      data: body.data,
      body: parsed,
      msgid
    })
    answer(res, 0, `,"msgid":${msgid}`)
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (!res.headersSent) res.writeHead(500)
      res.end(String(error))
    })
  })
  await new Promise<void>((ok) => server.listen(port, "127.0.0.1", ok))

  return {
    url: `http://127.0.0.1:${port}`,
    received,
    rejected,
    tokenRequests: () => tokenRequests,
    issuedTokens: () => [...tokens.keys()],
    setTokenLifetime: (seconds) => (lifetime = seconds),
    expireTokens: (errcode = 40001) => {
      for (const issued of tokens.values()) issued.revoked = errcode
    },
    failOpenId: (openid, errcode) => {
      if (errcode === null) openIdErrors.delete(openid)
      else openIdErrors.set(openid, errcode)
    },
    failAll: (errcode) => {
      failAll = errcode
    },
    failRandomly: (rate, errcode = -1) => {
      randomRate = Math.min(1, Math.max(0, rate))
      randomErrcode = errcode
    },
    busy: (ms, how = "errcode") => {
      busy = ms === null ? null : { until: Date.now() + ms, how }
    },
    close: () =>
      new Promise<void>((ok) => {
        server.closeAllConnections()
        server.close(() => ok())
      })
  }
}

/** The server for the length of a scope. */
export const wechatServer = (options: WechatServerOptions) =>
  Effect.acquireRelease(
    Effect.promise(() => startWechatServer(options)),
    (server) => Effect.promise(() => server.close())
  )
