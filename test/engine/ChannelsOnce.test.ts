import { jetstream, jetstreamManager, type StoredMsg } from "@nats-io/jetstream"
import type { NatsConnection } from "@nats-io/transport-node"
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from "vitest"
import { type EngineProcess, engineState, eventually, startEngine, tempDir } from "../support/engine.ts"
import {
  callbackMessageId,
  type CallbackProxy,
  decodeMessageIdHeader,
  journeysFolder,
  type LedgerView,
  ledgerEntries,
  type MessageRow,
  messageRows,
  type Providers,
  startCallbackProxy,
  startProviders,
  utcClock
} from "../support/liveChannels.ts"
import { dropTopology, type EventInput, natsConnect, publishEvents, type TestTopology, uniqueTopology } from "../support/nats.ts"

/**
 * Issue 4 end to end, the promises that span journeys and processes: caps and quiet hours hold
 * across journeys, and each message reaches its provider once — through an engine SIGKILLed in the
 * middle of hand-overs and restarted, and through providers that refuse one request in five.
 */

const RECEIPT_TEMPLATE = "Rc4tP9wQ2mX7bK1vL8nY3hD6jF0sA5eG2uI7oZ4tV9M"

const FILES: Record<string, string> = {
  "templates/sms/t-offer.hbs": "{{brand.name}} offer from {{journey.id}} [{{event.marker}}]\n",
  "templates/email/t-offer.hbs": `---
subject: "{{brand.name}} offer from {{journey.id}} [{{event.marker}}]"
---
<p>Offer for {{member.name}} [{{event.marker}}]</p>
`,
  "templates/sms/t-receipt.hbs": "{{brand.name}} receipt {{event.marker}} (sms)\n",
  "templates/email/t-receipt.hbs": `---
subject: "{{brand.name}} receipt {{event.marker}}"
---
<p>Receipt {{event.marker}} for {{member.name}}</p>
`,
  "templates/wechat/t-receipt.yaml": `kind: template
templateId: ${RECEIPT_TEMPLATE}
data:
  keyword1: "{{event.marker}}"
  keyword2: "{{member.name}}"
`,
  "offer-sms.yaml": `id: offer-sms
name: offer by SMS (test)
status: active
category: marketing
trigger: { event: { type: offer.test } }
steps:
  - { id: offer, send: { channel: sms, template: t-offer } }
`,
  "offer-email.yaml": `id: offer-email
name: offer by email (test)
status: active
category: marketing
trigger: { event: { type: offer.test } }
steps:
  - { id: offer, send: { channel: email, template: t-offer } }
`,
  "receipt.yaml": `id: receipt
name: receipt on every channel (test)
status: active
category: transactional
trigger: { event: { type: buy.test } }
steps:
  - { id: r-email, send: { channel: email, template: t-receipt } }
  - { id: r-sms, send: { channel: sms, template: t-receipt } }
  - { id: r-wechat, send: { channel: wechat, template: t-receipt } }
`
}

const now = () => new Date().toISOString()
const phoneOf = (n: number) => `+86137${String(n).padStart(8, "0")}`
const emailOf = (memberId: string) => `${memberId}@once-test.example`
const openIdOf = (memberId: string) => `oOnce${memberId.padEnd(6, "z")}Kq2Wm8Rt5Yb1`

const register = (memberId: string, n: number, timezone?: string): EventInput => ({
  id: `reg-${memberId}`,
  type: "member.registered",
  memberId,
  occurredAt: now(),
  properties: {
    name: `會員${n}`,
    phone: phoneOf(n),
    email: emailOf(memberId),
    wechatOpenId: openIdOf(memberId),
    consent: { sms: true, email: true, wechat: true },
    ...(timezone === undefined ? {} : { timezone })
  }
})

const trigger = (type: string, memberId: string): EventInput => ({
  id: `${type}-${memberId}`,
  type,
  memberId,
  occurredAt: now(),
  properties: { marker: `mk-${memberId}` }
})

const members = (prefix: string, from: number, count: number) =>
  Array.from({ length: count }, (_, i) => ({ id: `${prefix}${i + 1}`, n: from + i }))

describe("each message reaches its provider once: caps across journeys, a SIGKILL mid-hand-over, flaky providers", () => {
  let topology: TestTopology
  let nc: NatsConnection
  let providers: Providers
  let proxy: CallbackProxy
  let dir: string
  let dataDir: string
  const engines: Array<EngineProcess> = []
  const engine = () => engines[engines.length - 1]!

  const start = async () => {
    const started = await startEngine(
      {
        ...topology.env,
        ...providers.env,
        JOURNEYS_DIR: dir,
        MEMBERFLOW_DATA_DIR: dataDir,
        MEMBERFLOW_PUBLIC_URL: proxy.url,
        MEMBERFLOW_BRAND_NAME: "Maison",
        MEMBERFLOW_ACK_WAIT_MS: "3000"
      },
      "channels-once"
    )
    engines.push(started)
    proxy.target(started)
    return started
  }

  beforeAll(async () => {
    topology = uniqueTopology("chonce")
    nc = await natsConnect()
    providers = await startProviders()
    proxy = await startCallbackProxy()
    // Members in UTC are inside quiet hours for the next hour; the others live in Asia/Shanghai.
    const policies = `policies:
  globalControl: 0
  frequencyCaps:
    - { channel: any, max: 1, per: 1d }
  quietHours: { from: "${utcClock(Date.now() - 3_600_000)}", to: "${utcClock(Date.now() + 3_600_000)}", channels: [sms, email, wechat], then: drop }
  rateLimits: { sms: 50/s, email: 100/s, wechat: 100/s }
`
    dir = journeysFolder(policies, FILES)
    dataDir = tempDir("channels-once")
    await start()
  })

  afterAll(async () => {
    await Promise.all(engines.map((e) => e.kill("SIGKILL")))
    await proxy?.close()
    await providers?.close()
    await nc?.close()
    if (topology) await dropTopology(topology)
  })

  /**
   * For a time-out: the rows by status, the receipts' ledger (status, attempts, when a retry is due),
   * the providers' counts, and the engine's warnings. A CI failure is then readable without a rerun.
   */
  const explain = (where: string) => async () => {
    const tally = (values: ReadonlyArray<string>) =>
      Object.entries(values.reduce<Record<string, number>>((acc, v) => ({ ...acc, [v]: (acc[v] ?? 0) + 1 }), {}))
        .map(([v, n]) => `${v} ×${n}`)
        .join(", ")
    const rows = await messageRows(engine(), where)
    const now = Date.now()
    const ledger = (await ledgerEntries(nc, topology, "receipt")).filter((e) => e.status !== "sent" && e.status !== "delivered")
    const { smtp, twilio, wechat } = providers
    return [
      `engines started: ${engines.length}; rows (${where}): ${tally(rows.map((r) => `${r.channel}:${r.status}`)) || "none"}`,
      `receipts' ledger not sent: ${tally(ledger.map((e) => `${e.channel}:${e.status}:n=${e.n ?? "-"}:due ${e.next === undefined ? "-" : `${Math.round((e.next - now) / 1000)} s`}`)) || "none"}`,
      // Why each was not sent at its last attempt (a message refused many times in a row once ran past the wait on a CI run).
      `their last reasons: ${tally(ledger.map((e) => `${e.channel}: ${e.reason ?? "-"}`)) || "none"}`,
      `received: sms ${twilio.received.length}, email ${smtp.received.length}, wechat ${wechat.received.length}`,
      await engineState(engine())
    ].join("\n")
  }

  const settled = (where: string, count: number, what: string, ms = 30_000) =>
    eventually(
      async () => {
        const rows = await messageRows(engine(), where)
        return rows.length === count && rows.every((row) => row.status !== "queued")
      },
      ms,
      what,
      explain(where)
    )

  /** What the provider received for a receipt: by message id (SMS callback URL, email Message-ID) or, for WeChat, recipient and marker. */
  const receivedFor = (row: MessageRow): Array<string> => {
    const { smtp, twilio, wechat } = providers
    switch (row.channel) {
      case "sms":
        return twilio.received.filter((sms) => callbackMessageId(sms.statusCallback) === row.message_id).map((sms) => sms.sid)
      case "email":
        return smtp.received.filter((mail) => decodeMessageIdHeader(mail.parsed.messageId ?? "") === row.message_id).map((mail) => mail.parsed.messageId ?? "")
      default:
        return wechat.received.filter((w) => w.touser === openIdOf(row.member_id) && w.data["keyword1"]?.value === `mk-${row.member_id}`).map((w) => w.msgid)
    }
  }

  it("a frequency cap and quiet hours hold across two journeys triggered by the same event", async () => {
    const { smtp, twilio } = providers
    const capped = members("c", 101, 4)
    const quiet = members("u", 201, 2)
    await publishEvents(nc, topology, [...capped.map((m) => register(m.id, m.n)), ...quiet.map((m) => register(m.id, m.n, "UTC"))])
    await publishEvents(nc, topology, [...capped, ...quiet].map((m) => trigger("offer.test", m.id)))
    await settled("journey_id LIKE 'offer-%'", 12, "the offers decided")
    const rows = await messageRows(engine(), "journey_id LIKE 'offer-%'")
    for (const m of capped) {
      const mine = rows.filter((r) => r.member_id === m.id)
      // cap `any: 1 per 1d`: one of the two journeys sends, the other is suppressed
      expect(mine.map((r) => (r.status === "suppressed" ? r.reason : "out")).sort()).toEqual(["frequency_cap", "out"])
      const out = mine.find((r) => r.status !== "suppressed")!
      expect(["sent", "delivered"]).toContain(out.status)
      const texts = twilio.received.filter((sms) => sms.to === phoneOf(m.n))
      const mails = smtp.received.filter((mail) => mail.envelope.to.includes(emailOf(m.id)))
      expect(texts.length + mails.length).toBe(1)
      expect(out.channel === "sms" ? texts.length : mails.length).toBe(1)
    }
    for (const m of quiet) {
      expect(rows.filter((r) => r.member_id === m.id).map((r) => `${r.status}:${r.reason}`)).toEqual(["suppressed:quiet_hours", "suppressed:quiet_hours"])
      expect(twilio.received.filter((sms) => sms.to === phoneOf(m.n))).toEqual([])
      expect(smtp.received.filter((mail) => mail.envelope.to.includes(emailOf(m.id)))).toEqual([])
    }
  })

  it("SIGKILLed between recording a hand-over and hearing back, then restarted: no message is received twice", { timeout: 180_000 }, async () => {
    const { smtp, twilio, wechat } = providers
    const buyers = members("k", 301, 12)
    // Each phase's time, printed as it ends: a time-out on a loaded machine then says where it was.
    const began = Date.now()
    const phase = (what: string) => console.log(`SIGKILL mid-hand-over: ${what} at ${((Date.now() - began) / 1000).toFixed(1)} s`)
    // However this case ends, the next ones find the providers well (once, a time-out here left
    // WeChat holding every request 8 s, and the two cases after it failed too).
    onTestFinished(() => {
      twilio.slow(0)
      wechat.busy(null)
      twilio.failAll(null)
      smtp.failAll(null)
      wechat.failAll(null)
    })
    // Every provider refuses for now: the receipts wait in retry. (WeChat still hands out its access
    // token, so that later the message requests themselves are what is in flight.)
    twilio.failAll(500)
    smtp.failAll(451)
    wechat.failAll(-1)
    await publishEvents(nc, topology, buyers.map((m) => register(m.id, m.n)))
    await publishEvents(nc, topology, buyers.map((m) => trigger("buy.test", m.id)))
    await eventually(async () => {
      const entries = await ledgerEntries(nc, topology, "receipt")
      return entries.length === 36 && entries.every((e) => e.status === "retry")
    }, 20_000, "all 36 receipts in retry")
    phase("all 36 receipts in retry")
    // The providers come back slow: SMS answers take 3 s, WeChat holds requests 8 s (then takes them).
    twilio.slow(3_000)
    wechat.busy(8_000, "hang")
    twilio.failAll(null)
    smtp.failAll(null)
    wechat.failAll(null)
    let inFlight: Array<LedgerView> = []
    await eventually(async () => {
      inFlight = (await ledgerEntries(nc, topology, "receipt")).filter((e) => e.status === "attempt")
      return inFlight.filter((e) => e.channel === "sms").length >= 3 && inFlight.filter((e) => e.channel === "wechat").length >= 3
    }, 20_000, "SMS and WeChat hand-overs in flight")
    phase("SMS and WeChat hand-overs in flight")
    // recorded `attempt` a moment ago: by now the requests are on the wire, held by the providers
    await new Promise((resolve) => setTimeout(resolve, 300))
    expect(await engine().kill("SIGKILL")).toBeNull()
    twilio.slow(0)
    wechat.busy(null)
    await start()
    phase("restarted engine ready")
    await settled("journey_id = 'receipt'", 36, "every receipt decided after the restart", 60_000)
    phase("every receipt decided")

    const rows = await messageRows(engine(), "journey_id = 'receipt'")
    const interrupted: Array<string> = []
    for (const row of rows) {
      const got = receivedFor(row)
      if (row.status === "failed") {
        // The one outcome allowed besides sent: a hand-over whose fate the engine could not learn
        // (SMTP cannot be asked, nor WeChat about a subscribe message) is recorded failed, never repeated.
        expect(row.reason).toMatch(/^interrupted: /)
        expect(got.length).toBeLessThanOrEqual(1)
        interrupted.push(`${row.channel}:${row.member_id}`)
      } else {
        expect({ message: `${row.channel}:${row.member_id}`, status: row.status === "delivered" && row.channel === "sms" ? "sent" : row.status, received: got.length }).toEqual({
          message: `${row.channel}:${row.member_id}`,
          status: "sent",
          received: 1
        })
        expect(row.provider_message_id).toBe(got[0])
      }
    }
    // Twilio can be asked what it took: every SMS in flight at the kill was recovered, none interrupted.
    expect(interrupted.filter((m) => m.startsWith("sms:"))).toEqual([])
    for (const e of inFlight.filter((x) => x.channel === "sms")) {
      expect(rows.find((r) => r.message_id === e.messageId)?.status).toMatch(/^(sent|delivered)$/)
    }
    // The WeChat requests in flight did arrive (WeChat held them): each is recorded sent (repeated with
    // the same client_msg_id, which WeChat sends once) or interrupted, and was received once.
    await eventually(async () => inFlight.filter((e) => e.channel === "wechat").every((e) => receivedFor(rows.find((r) => r.message_id === e.messageId)!).length === 1), 15_000, "the held WeChat requests taken")
    // Nobody received any receipt twice, whatever its status.
    const twice = (values: ReadonlyArray<string>) => values.filter((value, i) => values.indexOf(value) !== i)
    expect(twice(twilio.received.map((sms) => sms.body).filter((body) => body.includes("receipt mk-k")))).toEqual([])
    expect(twice(smtp.received.map((mail) => mail.parsed.subject ?? "").filter((subject) => subject.includes("receipt mk-k")))).toEqual([])
    expect(twice(wechat.received.filter((w) => w.data["keyword1"]?.value.startsWith("mk-k")).map((w) => w.touser))).toEqual([])
  })

  // The wait allows for a message refused seven times in a row (backoff 1, 2, 4 … 60 s, each
  // × 0.5–1: up to two minutes; 120 messages at a 0.2 refusal rate make that about one run in 650,
  // and a fresh clone once met it inside the former minute's wait). It usually settles in seconds.
  it("with one provider request in five refused for now, every message still arrives exactly once", { timeout: 240_000 }, async () => {
    const { smtp, twilio, wechat } = providers
    const buyers = members("f", 401, 40)
    twilio.failRandomly(0.2, 503)
    wechat.failRandomly(0.2, -1)
    smtp.failRandomly(0.2, 451)
    try {
      await publishEvents(nc, topology, buyers.map((m) => register(m.id, m.n)))
      await publishEvents(nc, topology, buyers.map((m) => trigger("buy.test", m.id)))
      await settled("journey_id = 'receipt' AND member_id LIKE 'f%'", 120, "every flaky receipt decided", 180_000)
    } finally {
      twilio.failRandomly(0)
      wechat.failRandomly(0)
      smtp.failRandomly(0)
    }
    const rows = await messageRows(engine(), "journey_id = 'receipt' AND member_id LIKE 'f%'")
    for (const row of rows) {
      const got = receivedFor(row)
      expect({ message: `${row.channel}:${row.member_id}`, status: row.status === "delivered" ? "sent" : row.status, received: got.length }).toEqual({
        message: `${row.channel}:${row.member_id}`,
        status: "sent",
        received: 1
      })
      expect(row.provider_message_id).toBe(got[0])
    }
    // The refusals did happen on every channel (this engine's counters: it started after the kill),
    // and were retried, not dropped or doubled.
    const metrics = String((await engine().get("/metrics")).body)
    const retried = (channel: string) => Number(new RegExp(`^memberflow_provider_retries_total\\{channel="${channel}"\\} (\\d+)$`, "m").exec(metrics)?.[1] ?? 0)
    expect({ sms: retried("sms") > 0, email: retried("email") > 0, wechat: retried("wechat") > 0 }).toEqual({ sms: true, email: true, wechat: true })
  })

  it("a message request published again after its message was sent (past JetStream's duplicate window) is not sent again", async () => {
    const { twilio } = providers
    const jsm = await jetstreamManager(nc)
    const stream = `${topology.stream}_MESSAGES`
    const subject = `messages.${topology.subjectPrefix}.sms`
    // A receipt handed over by SMS and recorded sent.
    const [buyer] = members("r", 501, 1)
    await publishEvents(nc, topology, [register(buyer!.id, buyer!.n)])
    await publishEvents(nc, topology, [trigger("buy.test", buyer!.id)])
    await settled(`journey_id = 'receipt' AND member_id = '${buyer!.id}'`, 3, "the receipts sent")
    const sent = await messageRows(engine(), `journey_id = 'receipt' AND member_id = '${buyer!.id}' AND channel = 'sms' AND status IN ('sent', 'delivered')`)
    expect(sent).toHaveLength(1)
    const { messages } = await jsm.streams.info(stream).then((info) => ({ messages: info.state.last_seq }))
    let original: StoredMsg | null = null
    for (let seq = 1; seq <= messages && original === null; seq++) {
      const msg = await jsm.streams.getMessage(stream, { seq })
      if (msg?.subject === subject && msg.json<{ properties: { messageId: string } }>().properties.messageId === sent[0]!.message_id) original = msg
    }
    const request = original!.json<{ properties: { messageId: string } }>().properties
    const row = sent[0]!
    expect(receivedFor(row)).toHaveLength(1)
    // The same request again under another Nats-Msg-Id, as a replay past the duplicate window makes it.
    const ack = await jetstream(nc).publish(subject, original!.data, { msgID: `again-${request.messageId}` })
    expect(ack.duplicate).toBe(false)
    await eventually(async () => {
      const info = await jsm.consumers.info(stream, "memberflow-messages-sms")
      return info.ack_floor.stream_seq >= ack.seq && info.num_ack_pending === 0
    }, 20_000, "the request taken and settled")
    expect(receivedFor(row)).toHaveLength(1)
    expect(twilio.received.filter((sms) => callbackMessageId(sms.statusCallback) === request.messageId)).toHaveLength(1)
    const [after] = await messageRows(engine(), `message_id = '${request.messageId}'`)
    expect(after?.status).toBe(row.status)
  })
})
