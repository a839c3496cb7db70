import type { NatsConnection } from "@nats-io/transport-node"
import { createServer, type Server } from "node:http"
import type { AddressInfo } from "node:net"
import { SMTPServer } from "smtp-server"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type EngineProcess, eventually, startEngine } from "../support/engine.ts"
import { dropTopology, natsConnect, publishEvents, type TestTopology, uniqueTopology } from "../support/nats.ts"
import { journeysFolder } from "./journeys/fixtures.ts"
import { SEND_ALL_CHANNELS } from "./security/fixtures.ts"

/**
 * operations.md: "secrets never logged"; channels.md: reasons never hold an auth token or app
 * secret. An engine in live mode whose providers all fail — and echo back, in their error
 * messages, every credential they were sent (the request URL with WeChat's `secret=`, Twilio's
 * basic auth, the SMTP login) — is asked wrong things on its admin API and given bad SQL: none of
 * its secrets shows up in its log, in an HTTP answer, or in any table (messages.reason above all).
 */

const ADMIN_TOKEN = "adm-Zq8Secret-Tok-4471-xyz"
const TWILIO_TOKEN = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
const TWILIO_SID = "AC7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d"
const WECHAT_SECRET = "wcs9Secret5531AppSecretQ"
const SMTP_PASSWORD = "smtpSecretPw7788"

const SECRETS: ReadonlyArray<readonly [string, string]> = [
  ["MEMBERFLOW_ADMIN_TOKEN", ADMIN_TOKEN],
  ["TWILIO_AUTH_TOKEN", TWILIO_TOKEN],
  ["WECHAT_APP_SECRET", WECHAT_SECRET],
  ["SMTP_URL password", SMTP_PASSWORD]
]

/** Any 10 characters of a secret: a reason cut short still leaks what it kept. */
const pieces = (secret: string): ReadonlyArray<string> => Array.from({ length: secret.length - 9 }, (_, i) => secret.slice(i, i + 10))

/**
 * The secrets found in `text`: in clear, URL-encoded, or inside base64 (HTTP basic auth, SMTP
 * AUTH PLAIN), whole or in part.
 */
const leaked = (text: string): Array<string> => {
  const decoded = [...text.matchAll(/[A-Za-z0-9+/]{16,}={0,2}/g)].map(([run]) => Buffer.from(run.slice(0, run.length - (run.length % 4)), "base64").toString("latin1"))
  const haystacks = [text, decodeURIComponent(text.replace(/%(?![0-9a-fA-F]{2})/g, "%25")), ...decoded]
  return SECRETS.filter(([, secret]) => pieces(secret).some((piece) => haystacks.some((h) => h.includes(piece)))).map(([name]) => name)
}

/** Twilio and WeChat, as badly as can be: every request refused with itself, URL and headers, as the error. */
const startEchoProvider = async (): Promise<{ url: string; requests: Array<string>; close: () => Promise<void> }> => {
  const requests: Array<string> = []
  const server: Server = createServer((request, response) => {
    let body = ""
    request.on("data", (chunk: Buffer) => (body += chunk.toString()))
    request.on("end", () => {
      const echo = `${request.method} ${request.url} authorization=${request.headers.authorization ?? ""} body=${body}`
      requests.push(echo)
      // WeChat answers 200 with an errcode; Twilio an HTTP error with a code
      const wechat = request.url?.startsWith("/cgi-bin/") === true
      response.writeHead(wechat ? 200 : 400, { "content-type": "application/json" })
      response.end(JSON.stringify(wechat ? { errcode: 40999, errmsg: echo } : { code: 21999, message: echo, more_info: echo, status: 400 }))
    })
  })
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests, close: () => new Promise((ok) => server.close(() => ok())) }
}

/** An SMTP server that refuses every login, quoting the login it was given. */
const startEchoSmtp = async (): Promise<{ port: number; logins: Array<string>; close: () => Promise<void> }> => {
  const logins: Array<string> = []
  const server = new SMTPServer({
    disabledCommands: ["STARTTLS"],
    allowInsecureAuth: true,
    onAuth: (auth, _session, callback) => {
      logins.push(`${auth.username}:${auth.password}`)
      callback(Object.assign(new Error(`Authentication failed for ${auth.username}:${auth.password}`), { responseCode: 535 }))
    }
  })
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok))
  return { port: (server.server.address() as AddressInfo).port, logins, close: () => new Promise((ok) => server.close(() => ok())) }
}

describe("secrets never reach logs, error answers or tables", () => {
  let provider: Awaited<ReturnType<typeof startEchoProvider>>
  let smtp: Awaited<ReturnType<typeof startEchoSmtp>>
  let topology: TestTopology
  let nc: NatsConnection
  let engine: EngineProcess
  let base: string
  const answers: Array<string> = []

  /** An admin request; its status and body are kept for the scan. */
  const ask = async (path: string, init: { method?: string; headers?: Record<string, string>; body?: string } = {}) => {
    const response = await fetch(`${base}${path}`, { method: init.method ?? "GET", headers: init.headers ?? {}, ...(init.body === undefined ? {} : { body: init.body }) })
    const body = await response.text()
    // what the engine said (headers and body), not what it was asked: some requests carry the token
    answers.push(`${response.status} ${JSON.stringify([...response.headers])} ${body}`)
    return { status: response.status, body }
  }
  const bearer = (token: string) => ({ authorization: `Bearer ${token}` })

  beforeAll(async () => {
    topology = uniqueTopology("secrets")
    nc = await natsConnect()
    provider = await startEchoProvider()
    smtp = await startEchoSmtp()
    engine = await startEngine(
      {
        ...topology.env,
        JOURNEYS_DIR: journeysFolder(SEND_ALL_CHANNELS),
        CHANNELS_MODE: "live",
        MEMBERFLOW_ADMIN_TOKEN: ADMIN_TOKEN,
        MEMBERFLOW_PUBLIC_URL: "http://127.0.0.1:9",
        TWILIO_ACCOUNT_SID: TWILIO_SID,
        TWILIO_AUTH_TOKEN: TWILIO_TOKEN,
        TWILIO_FROM: "+15005550006",
        TWILIO_API_URL: provider.url,
        WECHAT_APP_ID: "wx5f1c2a9d8e7b6c30",
        WECHAT_APP_SECRET: WECHAT_SECRET,
        WECHAT_API_URL: provider.url,
        SMTP_URL: `smtp://mf-mailer:${SMTP_PASSWORD}@127.0.0.1:${smtp.port}`,
        EMAIL_FROM: "members@maison.example"
      },
      "secrets"
    )
    base = `http://127.0.0.1:${engine.port}`
    const at = new Date(Date.now() - 60_000).toISOString()
    await publishEvents(nc, topology, [
      {
        id: "reg-s1",
        type: "member.registered",
        memberId: "s1",
        occurredAt: at,
        properties: { name: "S1", phone: "+8613911112222", email: "s1@maison-sec.example", wechatOpenId: "oSecretTestOpenId000001", consent: { sms: true, email: true, wechat: true } }
      },
      { id: "ping-s1", type: "sec.ping", memberId: "s1", occurredAt: at, properties: { marker: "m1" } }
    ])
    // Every provider was sent the credentials and answered with them.
    await eventually(async () => provider.requests.some((r) => r.includes("/Messages.json")) && provider.requests.some((r) => r.includes(WECHAT_SECRET)) && smtp.logins.length > 0, 60_000, "every provider asked")
    await eventually(async () => (await engine.sql("SELECT DISTINCT channel FROM messages FINAL WHERE member_id = 's1' AND reason != ''")).length >= 2, 60_000, "failure reasons")
  }, 120_000)

  afterAll(async () => {
    await engine?.kill("SIGTERM")
    await provider?.close()
    await smtp?.close()
    await nc?.close()
    if (topology) await dropTopology(topology)
  })

  it("a missing, wrong, truncated, extended, differently cased or misplaced admin token gets 401 on every admin route", async () => {
    const wrong: ReadonlyArray<Record<string, string>> = [
      {},
      bearer(""),
      bearer(ADMIN_TOKEN.slice(0, -1)),
      bearer(ADMIN_TOKEN.slice(0, 8)),
      bearer(`${ADMIN_TOKEN}x`),
      bearer(ADMIN_TOKEN.toUpperCase()),
      { authorization: `Basic ${Buffer.from(`admin:${ADMIN_TOKEN}`).toString("base64")}` },
      { authorization: `Token ${ADMIN_TOKEN}` },
      { authorization: ADMIN_TOKEN },
      { "x-admin-token": ADMIN_TOKEN }
    ]
    for (const headers of wrong) {
      for (const [method, path] of [["GET", "/members/s1"], ["GET", "/journeys"], ["POST", "/sql"], ["GET", `/members/s1?token=${ADMIN_TOKEN}`]] as const) {
        const answer = await ask(path, { method, headers, ...(method === "POST" ? { body: "SELECT 1" } : {}) })
        expect(answer.status, `${method} ${path} with ${JSON.stringify(headers)}`).toBe(401)
      }
    }
    expect((await ask("/members/s1", { headers: bearer(ADMIN_TOKEN) })).status).toBe(200)
  })

  it("bad SQL, attempts to read the environment and other bad requests are answered without a secret", async () => {
    const statements = [
      "SELECT * FROM nowhere",
      "SELECT 1 +",
      "SELECT * FROM file('/proc/self/environ', 'RawBLOB')",
      'SELECT * FROM "file"(\'/proc/self/environ\')',
      "SELECT * FROM url('http://127.0.0.1:9/', 'RawBLOB')",
      "SELECT * FROM system.environment",
      "SELECT getSetting('password')",
      "SELECT * FROM system.settings WHERE name ILIKE '%password%'",
      "SELECT name, value FROM system.server_settings WHERE name ILIKE '%secret%' OR name ILIKE '%password%'"
    ]
    for (const sql of statements) {
      const answer = await ask("/sql", { method: "POST", headers: { ...bearer(ADMIN_TOKEN), "content-type": "text/plain" }, body: sql })
      expect([200, 400], sql).toContain(answer.status)
    }
    expect((await ask("/sql", { method: "POST", headers: { ...bearer(ADMIN_TOKEN), "content-type": "application/json" }, body: "{not json" })).status).toBe(400)
    expect((await ask("/members/nobody", { headers: bearer(ADMIN_TOKEN) })).status).toBe(404)
    // the member's recent messages, with their failure reasons
    expect((await ask("/members/s1", { headers: bearer(ADMIN_TOKEN) })).status).toBe(200)
    // A forged Twilio status callback: refused, and the refusal names no token.
    const forged = await ask("/webhooks/twilio?messageId=x", { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded", "x-twilio-signature": "forged" }, body: "MessageStatus=delivered&MessageSid=SM1" })
    expect(forged.status).toBe(403)
    expect(leaked(answers.join("\n"))).toEqual([])
  })

  it("the providers really were sent the secrets they echoed (the scan finds them there)", () => {
    expect(leaked(provider.requests.join("\n"))).toEqual(["TWILIO_AUTH_TOKEN", "WECHAT_APP_SECRET"])
    expect(leaked(smtp.logins.join("\n"))).toEqual(["SMTP_URL password"])
    // a reason cut short after the basic-auth header's first 60 characters still shows 20 of the token's 32
    expect(leaked(`Basic ${Buffer.from(`${TWILIO_SID}:${TWILIO_TOKEN}`).toString("base64").slice(0, 60)}`)).toEqual(["TWILIO_AUTH_TOKEN"])
  })

  it("sends refused by every provider fail or wait with a reason that holds no secret, in any table", async () => {
    const tables = await engine.sql<{ name: string }>("SHOW TABLES")
    const contents = await Promise.all(tables.map(async ({ name }) => `${name}: ${JSON.stringify(await engine.sql(`SELECT * FROM \`${name}\``))}`))
    expect(leaked(contents.join("\n"))).toEqual([])
    const messages = await engine.sql<{ channel: string; status: string }>("SELECT channel, status FROM messages FINAL WHERE member_id = 's1' ORDER BY channel")
    expect(messages.map((m) => m.channel)).toEqual(["email", "sms", "wechat"])
    // nothing was handed over: no provider listened
    for (const message of messages) expect(message.status).not.toBe("sent")
  })

  it("the engine's whole log holds none of them", () => {
    const log = engine.output()
    expect(log.length).toBeGreaterThan(0)
    expect(leaked(log)).toEqual([])
  })
})
