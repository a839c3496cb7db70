import { randomUUID } from "node:crypto"
import { createServer, type IncomingMessage, type ServerResponse } from "node:http"
import { freePort } from "./engine.ts"
import { API, type BasicAuth, basicAuth, dateRange, E164, rfc2822, segments, sid, type TwilioError, twilioError, twilioSignature } from "./twilio/contract.ts"

/**
 * A local Twilio Programmable Messaging API, as Twilio documents it
 * (https://www.twilio.com/docs/messaging/api/message-resource): create and list Messages under
 * `/2010-04-01/Accounts/{AccountSid}/Messages.json` with HTTP basic auth, Twilio's JSON shapes and
 * error bodies, paged lists, and signed status callbacks (`sent`, then `delivered`). It shares no
 * code with the twilio package, so a test that passes against it checks our use of the SDK against
 * the documented contract, not the SDK against itself.
 *
 * Failures are programmable: per number (`failNumber`), everything for a while (`failAll`), at
 * random (`failRandomly`), slow answers (`slow`), and delivery failures (`failDelivery`).
 */

export { type BasicAuth, rfc2822, twilioSignature }

export interface TwilioServerOptions {
  readonly accountSid: string
  readonly authToken: string
  /** Serve under a path prefix, as a proxy in front of Twilio would; `url` then ends with it. */
  readonly pathPrefix?: string
  /** Time from accepted to `sent`, and from `sent` to `delivered` (default 5 ms). */
  readonly statusDelayMs?: number
}

/** A message the server accepted (201), and where Twilio has taken it since. */
export interface ReceivedMessage {
  readonly sid: string
  /** the AccountSid of the request path */
  readonly accountSid: string
  readonly auth: BasicAuth
  /** the form body exactly as received */
  readonly form: Readonly<Record<string, string>>
  readonly to: string
  readonly from: string | null
  readonly messagingServiceSid: string | null
  readonly body: string
  readonly statusCallback: string | null
  readonly createdAt: number
  readonly status: string
  readonly sentAt: number | null
  readonly errorCode: number | null
}

/** Every API request, whatever it was answered. */
export interface ApiRequest {
  readonly method: string
  /** the path after the prefix, with its query */
  readonly path: string
  readonly auth: BasicAuth | null
  readonly status: number
  /** Twilio's error code when the answer was an error */
  readonly code: number | null
}

export interface StatusCallbackDelivery {
  readonly url: string
  readonly params: Readonly<Record<string, string>>
  readonly signature: string
  /** the receiver's HTTP status, or the network error when it could not be reached */
  readonly answer: number | string
}

export interface TwilioServer {
  /** the value for TWILIO_API_URL */
  readonly url: string
  readonly accountSid: string
  readonly authToken: string
  readonly received: ReadonlyArray<ReceivedMessage>
  readonly requests: ReadonlyArray<ApiRequest>
  readonly callbacks: ReadonlyArray<StatusCallbackDelivery>
  /**
   * Answer every create for `to` with a Twilio error: 21610 (unsubscribed), 21211 (invalid number),
   * 21614 (not mobile) as 400, 20429 as 429, 500 / 503 as that status; any other code as a 400.
   * `retryAfter` is sent as the Retry-After header. `null` clears it.
   */
  readonly failNumber: (to: string, code: number | null, options?: { readonly retryAfter?: string }) => void
  /** Answer every API request with this status until `failAll(null)`, or for `forMs` only. */
  readonly failAll: (status: 500 | 503 | null, forMs?: number) => void
  /** Answer this share of API requests (0..1) with `status` (default 503), at random. */
  readonly failRandomly: (rate: number, status?: 429 | 500 | 503) => void
  /** After `sent`, report `undelivered` or `failed` with this error code (default 30003) instead of `delivered`. */
  readonly failDelivery: (to: string, status: "undelivered" | "failed" | null, errorCode?: number) => void
  /** Hold every API answer this long (0 to stop). */
  readonly slow: (ms: number) => void
  readonly close: () => Promise<void>
}

/** The sender a Messaging Service picks from its pool when the message names none. */
const POOL_NUMBER = "+15017122661"

const readBody = (request: IncomingMessage): Promise<string> =>
  new Promise((ok, fail) => {
    const chunks: Array<Buffer> = []
    request.on("data", (chunk: Buffer) => chunks.push(chunk))
    request.on("end", () => ok(Buffer.concat(chunks).toString("utf8")))
    request.on("error", fail)
  })

interface Stored {
  sid: string
  accountSid: string
  auth: BasicAuth
  form: Record<string, string>
  to: string
  from: string | null
  messagingServiceSid: string | null
  body: string
  statusCallback: string | null
  createdAt: number
  updatedAt: number
  status: string
  sentAt: number | null
  errorCode: number | null
}

export const startTwilioServer = async (options: TwilioServerOptions): Promise<TwilioServer> => {
  const { accountSid, authToken } = options
  const prefix = (options.pathPrefix ?? "").replace(/\/+$/, "")
  const statusDelayMs = options.statusDelayMs ?? 5
  const messages: Array<Stored> = []
  const requests: Array<ApiRequest> = []
  const callbacks: Array<StatusCallbackDelivery> = []
  const numberFailures = new Map<string, { code: number; retryAfter?: string }>()
  const deliveryFailures = new Map<string, { status: "undelivered" | "failed"; errorCode: number }>()
  const timers = new Set<NodeJS.Timeout>()
  let failAllStatus: 500 | 503 | null = null
  let failAllUntil = Infinity
  let randomRate = 0
  let randomStatus: 429 | 500 | 503 = 503
  let delayMs = 0
  let closed = false

  const later = (ms: number): Promise<void> =>
    new Promise((ok) => {
      const timer = setTimeout(() => {
        timers.delete(timer)
        ok()
      }, ms)
      timers.add(timer)
    })

  const resource = (m: Stored) => ({
    account_sid: m.accountSid,
    api_version: "2010-04-01",
    body: m.body,
    date_created: rfc2822(m.createdAt),
    date_sent: m.sentAt === null ? null : rfc2822(m.sentAt),
    date_updated: rfc2822(m.updatedAt),
    direction: "outbound-api",
    error_code: m.errorCode,
    error_message: m.errorCode === null ? null : m.errorCode === 30003 ? "Unreachable destination handset" : `Error ${m.errorCode}`,
    from: m.from,
    messaging_service_sid: m.messagingServiceSid,
    num_media: "0",
    num_segments: String(segments(m.body)),
    price: null,
    price_unit: "USD",
    sid: m.sid,
    status: m.status,
    subresource_uris: { media: `${API}/Accounts/${m.accountSid}/Messages/${m.sid}/Media.json` },
    to: m.to,
    uri: `${API}/Accounts/${m.accountSid}/Messages/${m.sid}.json`
  })

  const sendCallback = async (m: Stored): Promise<void> => {
    if (m.statusCallback === null || closed) return
    const params: Record<string, string> = {
      AccountSid: m.accountSid,
      ApiVersion: "2010-04-01",
      From: m.from ?? "",
      MessageSid: m.sid,
      MessageStatus: m.status,
      SmsSid: m.sid,
      SmsStatus: m.status,
      To: m.to,
      ...(m.messagingServiceSid === null ? {} : { MessagingServiceSid: m.messagingServiceSid }),
      ...(m.errorCode === null ? {} : { ErrorCode: String(m.errorCode) }),
      ...(m.status === "delivered" ? { RawDlrDoneDate: new Date().toISOString().replace(/\D/g, "").slice(2, 12) } : {})
    }
    const signature = twilioSignature(authToken, m.statusCallback, params)
    let answer: number | string
    try {
      const response = await fetch(m.statusCallback, {
        method: "POST",
        headers: {
          "content-type": "application/x-www-form-urlencoded; charset=utf-8",
          "x-twilio-signature": signature,
          "i-twilio-idempotency-token": randomUUID(),
          "user-agent": "TwilioProxy/1.1"
        },
        body: new URLSearchParams(params).toString(),
        signal: AbortSignal.timeout(15_000) // Twilio gives a callback 15 s
      })
      await response.arrayBuffer()
      answer = response.status
    } catch (error) {
      const cause = error instanceof Error && error.cause instanceof Error ? error.cause : error
      answer = cause instanceof Error ? ("code" in cause && typeof cause.code === "string" ? cause.code : cause.name) : String(cause)
    }
    callbacks.push({ url: m.statusCallback, params, signature, answer })
  }

  /** accepted/queued → sent → delivered (or the delivery failure set for the number), one callback per step. */
  const progress = async (m: Stored): Promise<void> => {
    await later(statusDelayMs)
    if (closed) return
    m.status = "sent"
    m.sentAt = m.updatedAt = Date.now()
    m.from ??= POOL_NUMBER // a Messaging Service picks a sender from its pool
    await sendCallback(m)
    await later(statusDelayMs)
    if (closed) return
    const failure = deliveryFailures.get(m.to)
    m.status = failure?.status ?? "delivered"
    m.errorCode = failure?.errorCode ?? null
    m.updatedAt = Date.now()
    await sendCallback(m)
  }

  const json = (response: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void => {
    response.writeHead(status, { "content-type": "application/json; charset=utf-8", "twilio-request-id": sid("RQ"), ...headers })
    response.end(JSON.stringify(body))
  }

  const create = (account: string, auth: BasicAuth, raw: string, contentType: string | undefined): { status: number; body: unknown; headers?: Record<string, string> } => {
    const fail = (e: TwilioError, headers?: Record<string, string>) => ({
      status: e.status,
      body: { code: e.code, message: e.message, more_info: `https://www.twilio.com/docs/errors/${e.code}`, status: e.status },
      ...(headers === undefined ? {} : { headers })
    })
    if (!/^application\/x-www-form-urlencoded\b/i.test(contentType ?? "")) {
      return fail({ status: 400, code: 20001, message: "Content-Type must be application/x-www-form-urlencoded" })
    }
    const form = Object.fromEntries(new URLSearchParams(raw))
    const to = form["To"] ?? ""
    if (to === "") return fail({ status: 400, code: 21604, message: "A 'To' phone number is required." })
    if (!form["Body"] && !form["MediaUrl"] && !form["ContentSid"]) return fail({ status: 400, code: 21602, message: "Message body is required." })
    if (!form["From"] && !form["MessagingServiceSid"]) return fail({ status: 400, code: 21603, message: "A 'From' phone number is required." })
    if (form["MessagingServiceSid"] && !/^MG[0-9a-fA-F]{32}$/.test(form["MessagingServiceSid"])) {
      return fail({ status: 400, code: 21701, message: `The Messaging Service Sid ${form["MessagingServiceSid"]} is invalid.` })
    }
    if ([...(form["Body"] ?? "")].length > 1600) return fail({ status: 400, code: 21617, message: "The concatenated message body exceeds the 1600 character limit." })
    if (!E164.test(to)) return fail(twilioError(21211, to))
    const planned = numberFailures.get(to)
    if (planned !== undefined) return fail(twilioError(planned.code, to), planned.retryAfter === undefined ? undefined : { "retry-after": planned.retryAfter })
    const now = Date.now()
    const m: Stored = {
      sid: sid("SM"),
      accountSid: account,
      auth,
      form,
      to,
      from: form["From"] ?? null,
      messagingServiceSid: form["MessagingServiceSid"] ?? null,
      body: form["Body"] ?? "",
      statusCallback: form["StatusCallback"] ?? null,
      createdAt: now,
      updatedAt: now,
      // with a Messaging Service Twilio first answers `accepted`, while it picks a sender
      status: form["MessagingServiceSid"] && !form["From"] ? "accepted" : "queued",
      sentAt: null,
      errorCode: null
    }
    messages.push(m)
    void progress(m)
    return { status: 201, body: resource(m) }
  }

  const list = (account: string, query: URLSearchParams): { status: number; body: unknown } => {
    const bad = (message: string) => ({ status: 400, body: { code: 20001, message, more_info: "https://www.twilio.com/docs/errors/20001", status: 400 } })
    const filters = new URLSearchParams()
    let selected = messages.filter((m) => m.accountSid === account)
    for (const name of ["To", "From"] as const) {
      const wanted = query.get(name)
      if (wanted === null) continue
      filters.set(name, wanted)
      selected = selected.filter((m) => (name === "To" ? m.to : m.from) === wanted)
    }
    for (const name of ["DateSent", "DateSent>", "DateSent<"] as const) {
      const value = query.get(name)
      if (value === null) continue
      const range = dateRange(value)
      if (range === null) return bad(`Invalid ${name}: ${value}; expected YYYY-MM-DD or YYYY-MM-DDTHH:mm:ssZ`)
      filters.set(name, value)
      selected = selected.filter((m) =>
        m.sentAt !== null &&
        (name === "DateSent" ? m.sentAt >= range.from && m.sentAt < range.until : name === "DateSent>" ? m.sentAt >= range.from : m.sentAt < range.until)
      )
    }
    const pageSize = Number(query.get("PageSize") ?? 50)
    const page = Number(query.get("Page") ?? 0)
    if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > 1000) return bad("PageSize must be an integer from 1 to 1000")
    if (!Number.isInteger(page) || page < 0) return bad("Page must be a non-negative integer")
    // newest first, as Twilio lists them
    const ordered = selected.map((m, index) => ({ m, index })).sort((a, b) => b.m.createdAt - a.m.createdAt || b.index - a.index).map(({ m }) => m)
    const start = page * pageSize
    const slice = ordered.slice(start, start + pageSize)
    const base = `${API}/Accounts/${account}/Messages.json`
    const pageUri = (n: number, token?: string) => {
      const q = new URLSearchParams(filters)
      q.set("PageSize", String(pageSize))
      q.set("Page", String(n))
      if (token !== undefined) q.set("PageToken", token)
      return `${base}?${q}`
    }
    const last = slice.at(-1)
    return {
      status: 200,
      body: {
        first_page_uri: pageUri(0),
        end: start + Math.max(slice.length, 1) - 1,
        previous_page_uri: page > 0 ? pageUri(page - 1) : null,
        messages: slice.map(resource),
        uri: pageUri(page),
        page_size: pageSize,
        start,
        next_page_uri: start + pageSize < ordered.length && last !== undefined ? pageUri(page + 1, `PA${last.sid}`) : null,
        page
      }
    }
  }

  const handle = async (request: IncomingMessage, response: ServerResponse): Promise<void> => {
    const raw = await readBody(request)
    if (delayMs > 0) await later(delayMs)
    const url = new URL(request.url ?? "/", "http://twilio.local")
    const path = url.pathname.startsWith(prefix) ? url.pathname.slice(prefix.length) : null
    const auth = basicAuth(request.headers.authorization)
    const answer = (status: number, body: unknown, headers?: Record<string, string>) => {
      const code = typeof body === "object" && body !== null && "code" in body && typeof body.code === "number" && status >= 400 ? body.code : null
      requests.push({ method: request.method ?? "", path: `${path ?? url.pathname}${url.search}`, auth, status, code })
      json(response, status, body, headers)
    }
    const error = (e: TwilioError, headers?: Record<string, string>) =>
      answer(e.status, { code: e.code, message: e.message, more_info: `https://www.twilio.com/docs/errors/${e.code}`, status: e.status }, headers)

    if (failAllStatus !== null && Date.now() >= failAllUntil) failAllStatus = null
    if (failAllStatus !== null) return error(twilioError(failAllStatus, ""))
    if (randomRate > 0 && Math.random() < randomRate) return error(twilioError(randomStatus, ""))
    if (auth === null || auth.username !== accountSid || auth.password !== authToken) {
      return error({ status: 401, code: 20003, message: "Authenticate" }, { "www-authenticate": 'Basic realm="Twilio API"' })
    }
    const route = path === null ? null : new RegExp(`^${API}/Accounts/([^/]+)/Messages(?:/([^/]+))?\\.json$`).exec(path)
    const notFound = () => error({ status: 404, code: 20404, message: `The requested resource ${url.pathname} was not found` })
    if (route === null || route[1] !== accountSid) return notFound()
    const [, account, messageSid] = route
    if (messageSid !== undefined) {
      const m = request.method === "GET" ? messages.find((x) => x.sid === messageSid) : undefined
      return m === undefined ? notFound() : answer(200, resource(m))
    }
    if (request.method === "POST") {
      const result = create(account, auth, raw, request.headers["content-type"])
      return answer(result.status, result.body, result.headers)
    }
    if (request.method === "GET") {
      const result = list(account, url.searchParams)
      return answer(result.status, result.body)
    }
    return error({ status: 405, code: 20004, message: "Method not allowed" })
  }

  const server = createServer((request, response) => {
    handle(request, response).catch((error: unknown) => {
      if (!response.headersSent) json(response, 500, { code: 20500, message: String(error), more_info: "", status: 500 })
    })
  })
  const port = await freePort()
  await new Promise<void>((ok, fail) => {
    server.once("error", fail)
    server.listen(port, "127.0.0.1", () => ok())
  })

  return {
    url: `http://127.0.0.1:${port}${prefix}`,
    accountSid,
    authToken,
    received: messages,
    requests,
    callbacks,
    failNumber: (to, code, failOptions) => {
      if (code === null) numberFailures.delete(to)
      else numberFailures.set(to, { code, ...(failOptions?.retryAfter === undefined ? {} : { retryAfter: failOptions.retryAfter }) })
    },
    failAll: (status, forMs) => {
      failAllStatus = status
      failAllUntil = status !== null && forMs !== undefined ? Date.now() + forMs : Infinity
    },
    failRandomly: (rate, status = 503) => {
      randomRate = Math.min(1, Math.max(0, rate))
      randomStatus = status
    },
    failDelivery: (to, status, errorCode = 30003) => {
      if (status === null) deliveryFailures.delete(to)
      else deliveryFailures.set(to, { status, errorCode })
    },
    slow: (ms) => {
      delayMs = ms
    },
    close: () => {
      closed = true
      for (const timer of timers) clearTimeout(timer)
      timers.clear()
      return new Promise((ok) => {
        server.close(() => ok())
        server.closeAllConnections()
      })
    }
  }
}
