import { jetstreamManager } from "@nats-io/jetstream"
import { Kvm } from "@nats-io/kv"
import type { NatsConnection } from "@nats-io/transport-node"
import { randomBytes } from "node:crypto"
import { mkdirSync, readFileSync, writeFileSync } from "node:fs"
import { createServer, type IncomingMessage } from "node:http"
import { dirname, join } from "node:path"
import { type EngineProcess, freePort, ROOT, tempDir } from "./engine.ts"
import type { TestTopology } from "./nats.ts"
import { type SmtpTestServer, startSmtpServer } from "./smtp.ts"
import { startTwilioServer, type TwilioServer } from "./twilio.ts"
import { startWechatServer, type WechatServer } from "./wechat.ts"

/**
 * What an end-to-end test of the channels needs around a `memberflow run` engine in LIVE mode: the
 * three local providers, a public URL in front of the engine for Twilio's status callbacks, and a
 * journeys folder holding only the test's own journeys and templates.
 */

export interface Providers {
  readonly smtp: SmtpTestServer
  readonly twilio: TwilioServer
  readonly wechat: WechatServer
  /** the provider settings of operations.md, pointing at the local servers */
  readonly env: Record<string, string>
  readonly close: () => Promise<void>
}

export const EMAIL_FROM = "Maison Members <members@maison.example>"
export const TWILIO_FROM = "+15005550006"

export interface ProviderOptions {
  /** Twilio's time from accepted (queued, no date_sent) to sent, and from sent to delivered */
  readonly twilioStatusDelayMs?: number
}

export const startProviders = async (options: ProviderOptions = {}): Promise<Providers> => {
  const accountSid = `AC${randomBytes(16).toString("hex")}`
  const authToken = randomBytes(16).toString("hex")
  const appId = `wx${randomBytes(8).toString("hex")}`
  const appSecret = randomBytes(16).toString("hex")
  const [smtp, twilio, wechat] = await Promise.all([
    startSmtpServer(),
    startTwilioServer({ accountSid, authToken, ...(options.twilioStatusDelayMs === undefined ? {} : { statusDelayMs: options.twilioStatusDelayMs }) }),
    startWechatServer({ appId, appSecret })
  ])
  return {
    smtp,
    twilio,
    wechat,
    env: {
      CHANNELS_MODE: "live",
      SMTP_URL: smtp.url,
      EMAIL_FROM,
      TWILIO_ACCOUNT_SID: accountSid,
      TWILIO_AUTH_TOKEN: authToken,
      TWILIO_FROM,
      TWILIO_API_URL: twilio.url,
      WECHAT_APP_ID: appId,
      WECHAT_APP_SECRET: appSecret,
      WECHAT_API_URL: wechat.url
    },
    close: async () => {
      await Promise.all([smtp.close(), twilio.close(), wechat.close()])
    }
  }
}

const readBody = (request: IncomingMessage): Promise<string> =>
  new Promise((ok, fail) => {
    const chunks: Array<Buffer> = []
    request.on("data", (chunk: Buffer) => chunks.push(chunk))
    request.on("end", () => ok(Buffer.concat(chunks).toString("utf8")))
    request.on("error", fail)
  })

/**
 * MEMBERFLOW_PUBLIC_URL: a reverse proxy in front of whichever engine runs now (engines restart on
 * new ports), as a load balancer is in production. Callbacks for a `held` number are answered 503
 * without reaching the engine, as when the network between Twilio and us is down.
 */
export interface CallbackProxy {
  readonly url: string
  readonly target: (engine: EngineProcess | null) => void
  readonly hold: (to: string) => void
  readonly close: () => Promise<void>
}

export const startCallbackProxy = async (): Promise<CallbackProxy> => {
  let port: number | null = null
  const held = new Set<string>()
  const server = createServer((request, response) => {
    void (async () => {
      const body = await readBody(request)
      const to = new URLSearchParams(body).get("To")
      if (port === null || (to !== null && held.has(to))) {
        response.writeHead(503).end()
        return
      }
      const headers: Record<string, string> = {}
      for (const name of ["content-type", "x-twilio-signature", "i-twilio-idempotency-token", "user-agent"]) {
        const value = request.headers[name]
        if (typeof value === "string") headers[name] = value
      }
      const answer = await fetch(`http://127.0.0.1:${port}${request.url ?? "/"}`, {
        method: request.method ?? "POST",
        headers,
        ...(request.method === "GET" || request.method === "HEAD" ? {} : { body })
      })
      response.writeHead(answer.status, { "content-type": answer.headers.get("content-type") ?? "text/plain" })
      response.end(Buffer.from(await answer.arrayBuffer()))
    })().catch(() => {
      if (!response.headersSent) response.writeHead(502)
      response.end()
    })
  })
  const listenOn = await freePort()
  await new Promise<void>((ok) => server.listen(listenOn, "127.0.0.1", ok))
  return {
    url: `http://127.0.0.1:${listenOn}`,
    target: (engine) => {
      port = engine === null ? null : engine.port
    },
    hold: (to) => {
      held.add(to)
    },
    close: () =>
      new Promise<void>((ok) => {
        server.closeAllConnections()
        server.close(() => ok())
      })
  }
}

/**
 * A journeys folder: the shipped program.yaml with its `policies:` block replaced, and only the
 * given files (journeys and `templates/<channel>/…`), so no shipped journey sends to the test's members.
 */
export const journeysFolder = (policies: string, files: Readonly<Record<string, string>>): string => {
  const dir = tempDir("channels")
  const shipped = readFileSync(join(ROOT, "journeys/program.yaml"), "utf8")
  const cut = shipped.indexOf("\npolicies:")
  if (cut < 0) throw new Error("the shipped program.yaml has no policies block to replace")
  writeFileSync(join(dir, "program.yaml"), `${shipped.slice(0, cut)}\n${policies.trim()}\n`)
  for (const channel of ["email", "sms", "wechat"]) mkdirSync(join(dir, "templates", channel), { recursive: true })
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true })
    writeFileSync(join(dir, path), text)
  }
  return dir
}

/** `HH:MM` of an instant in UTC (quiet hours are member-local; the test's members live in UTC). */
export const utcClock = (ms: number): string => new Date(ms).toISOString().slice(11, 16)

/** The analyst tables (clickhouse.md), each read whole to look for contact points in clear. */
export const ANALYST_TABLES = [
  "events",
  "rejected_events",
  "member_profiles",
  "member_tags",
  "journey_enrollments",
  "journey_steps",
  "messages",
  "conversions"
] as const

/** Which of `contacts` some row of `table` holds in clear, e.g. `["+8613900000001"]`. */
export const contactsInClear = async (engine: EngineProcess, table: string, contacts: ReadonlyArray<string>): Promise<Array<string>> => {
  const text = JSON.stringify(await engine.sql(`SELECT * FROM ${table}`))
  return contacts.filter((contact) => text.includes(contact) || text.includes(JSON.stringify(contact).slice(1, -1)))
}

export interface MessageRow {
  readonly message_id: string
  readonly member_id: string
  readonly journey_id: string
  readonly step_id: string
  readonly channel: string
  readonly template: string
  readonly status: string
  readonly reason: string
  readonly provider_message_id: string
}

/** The latest state of the messages matching `where` (messages is a ReplacingMergeTree). */
export const messageRows = (engine: EngineProcess, where: string): Promise<Array<MessageRow>> =>
  engine.sql<MessageRow>(
    `SELECT message_id, member_id, journey_id, step_id, channel, template, status, reason, provider_message_id FROM messages FINAL WHERE ${where} ORDER BY member_id, step_id`
  )

/** `<mf-…@domain>` back to the memberflow message id it encodes (`=XX` is one UTF-8 byte). */
export const decodeMessageIdHeader = (header: string): string | null => {
  const match = /^<mf-([A-Za-z0-9_=-]+)@[^>]+>$/.exec(header)
  if (match === null) return null
  const bytes: Array<number> = []
  const local = match[1] ?? ""
  for (let i = 0; i < local.length; i++) {
    if (local[i] === "=") {
      bytes.push(Number.parseInt(local.slice(i + 1, i + 3), 16))
      i += 2
    } else bytes.push(local.charCodeAt(i))
  }
  return Buffer.from(bytes).toString("utf8")
}

/** The memberflow message id in a Twilio StatusCallback URL. */
export const callbackMessageId = (statusCallback: string | null): string | null =>
  statusCallback === null ? null : new URL(statusCallback).searchParams.get("messageId")

export interface LedgerView {
  readonly status: string
  readonly channel: string
  readonly messageId: string
  /** Attempts made on this channel so far, when the entry says. */
  readonly n?: number | undefined
  /** When a `retry` is due (epoch ms), when the entry says. */
  readonly next?: number | undefined
  /** Why the last attempt did not send, when the entry says. */
  readonly reason?: string | undefined
}

/**
 * The engine's send ledger (KV `<prefix>_messages`) for one journey: read by the crash tests only to
 * time a kill while hand-overs are in flight (`attempt`), never to judge the outcome.
 *
 * The keys come from the stream's subjects as they are now (stream info), then each entry's latest
 * value. `kv.keys()` read them through a consumer that ends when it has seen the last message or an
 * idle heartbeat: while the engine kept writing the ledger (hand-overs failing and retried), one call
 * took 18 s and more, a wait with a 20 s budget ran for 38 s, and in CI a test ran past its time-out
 * before the kill it was timing.
 */
export const ledgerEntries = async (nc: NatsConnection, topology: TestTopology, journeyId: string): Promise<Array<LedgerView>> => {
  const bucket = `${topology.kvPrefix}_messages`
  const kv = await new Kvm(nc).open(bucket)
  const prefix = `$KV.${bucket}.`
  const info = await (await jetstreamManager(nc)).streams.info(`KV_${bucket}`, { subjects_filter: `${prefix}>` })
  const entries: Array<LedgerView> = []
  for (const subject of Object.keys(info.state.subjects ?? {})) {
    const entry = await kv.get(subject.slice(prefix.length))
    if (entry === null || entry.operation !== "PUT") continue
    const value = entry.json<{ status: string; channel: string; n?: number; next?: number; reason?: string; row: { message_id: string; journey_id: string } }>()
    if (value.row.journey_id !== journeyId) continue
    entries.push({ status: value.status, channel: value.channel, messageId: value.row.message_id, n: value.n, next: value.next, reason: value.reason })
  }
  return entries
}
