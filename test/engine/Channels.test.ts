import type { NatsConnection } from "@nats-io/transport-node"
import { afterAll, beforeAll, describe, it } from "vitest"
import { type EngineProcess, eventually, startEngine, tempDir } from "../support/engine.ts"
import { linkSignature } from "../support/unsubscribe.ts"
import {
  ANALYST_TABLES,
  callbackMessageId,
  type CallbackProxy,
  contactsInClear,
  decodeMessageIdHeader,
  journeysFolder,
  messageRows,
  type Providers,
  startCallbackProxy,
  startProviders,
  TWILIO_FROM,
  utcClock
} from "../support/liveChannels.ts"
import { dropTopology, type EventInput, natsConnect, publishEvents, type TestTopology, uniqueTopology } from "../support/nats.ts"
import { twilioSignature } from "../support/twilio.ts"

/**
 * Issue 4 end to end: a real `memberflow run` engine in LIVE mode hands messages to a local SMTP
 * server, Twilio API and WeChat API, and what each provider received is checked against the
 * `messages` table. The scenarios use separate members and run side by side on one engine.
 */

const GIFT = "Gf7sK2mQ9xLb4Tn1Wc8RzYp3Hd6Jv0Ae5Ui2Oq7Ls4N"
const NOTICE = "Nt3pQ8vX1mK5bR9wL2cY7hD4jF6sA0eG3uI8oZ5tV1M"

const TEMPLATES: Record<string, string> = {
  "templates/email/t-hello.hbs": `---
subject: "{{brand.name}} · 你好 {{member.name}} [{{event.marker}}]"
---
<html><body><h1>你好，{{member.name}}</h1><p>Marker: {{event.marker}}</p><p><a href="{{unsubscribeUrl}}">Unsubscribe</a></p></body></html>
`,
  "templates/sms/t-hello.hbs": "{{brand.name}}: 你好 {{member.name}} [{{event.marker}}]\n",
  "templates/sms/t-order.hbs": "{{brand.name}} order {{event.orderId}} confirmed [{{event.marker}}]\n",
  "templates/sms/t-gift.hbs": "{{brand.name}}: a gift is waiting [{{event.marker}}]\n",
  "templates/wechat/t-notice.yaml": `kind: template
templateId: ${NOTICE}
url: "https://maison.example/points?m={{event.marker}}"
miniprogram: { appid: wx5f1c2a9d8e7b6c30, pagepath: "pages/points/index?m={{event.marker}}" }
data:
  thing1: "{{member.name}}"
  character_string2: "{{event.marker}}"
`,
  "templates/wechat/t-gift.yaml": `kind: subscribe
templateId: ${GIFT}
page: "pages/gift/index?m={{event.marker}}"
data:
  thing1: "{{member.name}}"
  character_string2: "{{event.marker}}"
`
}

const journey = (id: string, category: "marketing" | "transactional", trigger: string, steps: string) => `id: ${id}
name: ${id} (test)
status: active
category: ${category}
trigger: { event: { type: ${trigger} } }
steps:
${steps}`

const JOURNEYS: Record<string, string> = {
  "deliver.yaml": journey(
    "deliver",
    "transactional",
    "deliver.test",
    `  - { id: a-email, send: { channel: email, template: t-hello } }
  - { id: b-sms, send: { channel: sms, template: t-hello } }
  - { id: c-notice, send: { channel: wechat, template: t-notice } }
  - { id: d-gift, send: { channel: wechat, template: t-gift, fallback: [sms] } }
  - { id: e-gift-again, send: { channel: wechat, template: t-gift, fallback: [sms] } }
`
  ),
  "quiet.yaml": journey("quiet", "marketing", "quiet.test", "  - { id: hello, send: { channel: sms, template: t-hello, fallback: [email] } }\n"),
  "order.yaml": journey(
    "order",
    "transactional",
    "order.test",
    `  - { id: receipt, send: { channel: sms, template: t-order } }
  - { id: thanks, send: { channel: email, template: t-hello } }
`
  ),
  "ping.yaml": journey("ping", "transactional", "ping.test", "  - { id: ping, send: { channel: sms, template: t-hello } }\n"),
  "letter.yaml": `${journey("letter", "marketing", "letter.test", "  - { id: letter, send: { channel: email, template: t-hello } }\n")}reentry: afterExit\n`,
  "promo.yaml": journey("promo", "marketing", "promo.test", "  - { id: offer, send: { channel: sms, template: t-hello, fallback: [email] } }\n"),
  "promo-later.yaml": journey("promo-later", "marketing", "promo_later.test", "  - { id: later, send: { channel: sms, template: t-hello } }\n")
}

/** Signs the unsubscribe links (MEMBERFLOW_UNSUBSCRIBE_KEY). */
const UNSUBSCRIBE_KEY = "k3Yq8-unsubscribe-test-secret-Zr4"
const signature = (memberId: string, channel: string) => linkSignature(UNSUBSCRIBE_KEY, memberId, channel)

const now = () => new Date().toISOString()
const phoneOf = (n: number) => `+86139${String(n).padStart(8, "0")}`
const emailOf = (memberId: string) => `${memberId}.member@maison-test.example`
const openIdOf = (memberId: string) => `oMf${memberId.padEnd(6, "x")}Q7vLk2Rb9Tn4Wc8ZpYd`

interface Member {
  readonly id: string
  readonly n: number
  readonly name?: string
  readonly timezone?: string
}

const register = (m: Member): EventInput => ({
  id: `reg-${m.id}`,
  type: "member.registered",
  memberId: m.id,
  occurredAt: now(),
  properties: {
    name: m.name ?? `會員${m.n}`,
    phone: phoneOf(m.n),
    email: emailOf(m.id),
    wechatOpenId: openIdOf(m.id),
    consent: { sms: true, email: true, wechat: true },
    ...(m.timezone === undefined ? {} : { timezone: m.timezone })
  }
})

const trigger = (type: string, memberId: string, properties: Record<string, unknown> = {}): EventInput => ({
  id: `${type}-${memberId}`,
  type,
  memberId,
  occurredAt: now(),
  properties: { marker: `mk-${memberId}`, ...properties }
})

describe.concurrent("messages leave through the live providers (SMTP, Twilio, WeChat)", () => {
  let topology: TestTopology
  let nc: NatsConnection
  let providers: Providers
  let proxy: CallbackProxy
  let engine: EngineProcess
  /** quiet hours (UTC members) end at this minute boundary, 20–80 s after the engine is started */
  let quietEnd: number

  beforeAll(async () => {
    topology = uniqueTopology("channels")
    nc = await natsConnect()
    providers = await startProviders()
    proxy = await startCallbackProxy()
    quietEnd = Math.ceil((Date.now() + 20_000) / 60_000) * 60_000
    const policies = `policies:
  globalControl: 0
  quietHours: { from: "${utcClock(quietEnd - 10 * 60_000)}", to: "${utcClock(quietEnd)}", channels: [sms, email, wechat], then: defer }
  rateLimits: { sms: 50/s, email: 100/s, wechat: 100/s }
`
    engine = await startEngine(
      {
        ...topology.env,
        ...providers.env,
        JOURNEYS_DIR: journeysFolder(policies, { ...TEMPLATES, ...JOURNEYS }),
        MEMBERFLOW_DATA_DIR: tempDir("channels"),
        MEMBERFLOW_PUBLIC_URL: proxy.url,
        MEMBERFLOW_BRAND_NAME: "Maison",
        MEMBERFLOW_UNSUBSCRIBE_KEY: UNSUBSCRIBE_KEY,
        MEMBERFLOW_ACK_WAIT_MS: "3000"
      },
      "channels"
    )
    proxy.target(engine)
  })

  afterAll(async () => {
    await engine?.kill("SIGKILL")
    await proxy?.close()
    await providers?.close()
    await nc?.close()
    if (topology) await dropTopology(topology)
  })

  const settled = (where: string, count: number, what: string, ms = 30_000) =>
    eventually(async () => {
      const rows = await messageRows(engine, where)
      return rows.length === count && rows.every((row) => row.status !== "queued")
    }, ms, what)

  it("each channel delivers: the email, the SMS with its status callback, WeChat template and subscribe messages", async ({ expect }) => {
    const { smtp, twilio, wechat } = providers
    const d1: Member = { id: "d1", n: 101, name: '林 & "Co"' }
    const d2: Member = { id: "d2", n: 102 }
    await publishEvents(nc, topology, [
      register(d1),
      register(d2),
      { id: "sub-d1", type: "wechat.subscribed", memberId: "d1", occurredAt: now(), properties: { templateId: GIFT } }
    ])
    await publishEvents(nc, topology, [trigger("deliver.test", "d1"), trigger("deliver.test", "d2")])
    // SMS end `delivered` once the Twilio server's signed callbacks came back through the public URL.
    await eventually(async () => {
      const rows = await messageRows(engine, "journey_id = 'deliver' AND member_id IN ('d1', 'd2')")
      return rows.length === 10 && rows.every((row) => row.status === (row.channel === "sms" ? "delivered" : "sent"))
    }, 30_000, "every deliver message sent (SMS delivered)")
    const rows = await messageRows(engine, "journey_id = 'deliver' AND member_id IN ('d1', 'd2')")
    const row = (memberId: string, step: string) => rows.find((r) => r.member_id === memberId && r.step_id === step)
    // d1 held one subscribe credit: the first gift went by WeChat, the second fell back to SMS; d2 had none.
    expect(rows.map((r) => `${r.member_id}/${r.step_id}:${r.channel}`)).toEqual([
      "d1/a-email:email", "d1/b-sms:sms", "d1/c-notice:wechat", "d1/d-gift:wechat", "d1/e-gift-again:sms",
      "d2/a-email:email", "d2/b-sms:sms", "d2/c-notice:wechat", "d2/d-gift:sms", "d2/e-gift-again:sms"
    ])
    expect(row("d2", "d-gift")?.reason).toBe("")

    // Email: one per member, with the headers channels.md promises.
    for (const m of [d1, d2]) {
      const mails = smtp.received.filter((mail) => mail.envelope.to.includes(emailOf(m.id)))
      expect(mails).toHaveLength(1)
      const mail = mails[0]!
      const name = m.name ?? `會員${m.n}`
      expect(mail.envelope.from).toBe("members@maison.example")
      expect(mail.parsed.from?.value).toEqual([{ address: "members@maison.example", name: "Maison Members" }])
      expect(mail.parsed.subject).toBe(`Maison · 你好 ${name} [mk-${m.id}]`)
      expect(mail.parsed.html).toContain(`你好，${name.replace(/&/g, "&amp;").replace(/"/g, "&quot;")}</h1>`)
      expect(mail.parsed.text).toContain(`你好，${name}`)
      expect(mail.parsed.text).toContain(`mk-${m.id}`)
      const messageId = mail.parsed.messageId ?? ""
      expect(decodeMessageIdHeader(messageId)).toBe(row(m.id, "a-email")?.message_id)
      expect(row(m.id, "a-email")?.provider_message_id).toBe(messageId)
      // Unfolded (RFC 5322: a long header is folded onto more lines).
      const unsubscribe = mail.parsed.headerLines.find((h) => h.key === "list-unsubscribe")?.line.replace(/\r\n/g, "")
      expect(unsubscribe).toBe(`List-Unsubscribe: <${proxy.url}/unsubscribe?member=${m.id}&channel=email&sig=${signature(m.id, "email")}>`)
    }

    // SMS: the documented form fields, a StatusCallback naming the message; provider id = the SID.
    const texts = twilio.received.filter((sms) => sms.to === phoneOf(101) || sms.to === phoneOf(102))
    expect(texts).toHaveLength(5)
    for (const sms of texts) {
      const id = callbackMessageId(sms.statusCallback)
      const r = rows.find((candidate) => candidate.message_id === id)
      expect(r?.channel).toBe("sms")
      expect(sms.to).toBe(phoneOf(r?.member_id === "d1" ? 101 : 102))
      expect(sms.form).toEqual({ To: sms.to, From: TWILIO_FROM, Body: sms.body, StatusCallback: `${proxy.url}/webhooks/twilio?messageId=${encodeURIComponent(id ?? "")}` })
      expect(r?.provider_message_id).toBe(sms.sid)
      expect(sms.body).toBe(r?.template === "t-gift" ? `Maison: a gift is waiting [mk-${r.member_id}]` : `Maison: 你好 ${r?.member_id === "d1" ? d1.name : "會員102"} [mk-${r?.member_id}]`)
      const answered = twilio.callbacks.filter((c) => c.params["MessageSid"] === sms.sid && c.params["MessageStatus"] === "delivered")
      expect(answered.map((c) => c.answer)).toEqual([200])
    }

    // WeChat: a template message each, and d1's subscribe message spending its credit.
    const toD1 = wechat.received.filter((w) => w.touser === openIdOf("d1"))
    const toD2 = wechat.received.filter((w) => w.touser === openIdOf("d2"))
    expect(toD1.map((w) => w.kind).sort()).toEqual(["subscribe", "template"])
    expect(toD2.map((w) => w.kind)).toEqual(["template"])
    const notice = toD1.find((w) => w.kind === "template")!
    expect(notice.body).toEqual({
      touser: openIdOf("d1"),
      template_id: NOTICE,
      url: "https://maison.example/points?m=mk-d1",
      miniprogram: { appid: "wx5f1c2a9d8e7b6c30", pagepath: "pages/points/index?m=mk-d1" },
      data: { thing1: { value: d1.name }, character_string2: { value: "mk-d1" } },
      // WeChat's anti-reentry id, one per memberflow message
      client_msg_id: expect.stringMatching(/^[0-9a-f]{32}$/)
    })
    expect(toD2[0]?.body["client_msg_id"]).not.toBe(notice.body["client_msg_id"])
    const gift = toD1.find((w) => w.kind === "subscribe")!
    expect(gift.body).toEqual({
      touser: openIdOf("d1"),
      template_id: GIFT,
      page: "pages/gift/index?m=mk-d1",
      data: { thing1: { value: d1.name }, character_string2: { value: "mk-d1" } }
    })
    expect(row("d1", "c-notice")?.provider_message_id).toBe(notice.msgid)
    expect(row("d1", "d-gift")?.provider_message_id).toBe(gift.msgid)
    expect(row("d2", "c-notice")?.provider_message_id).toBe(toD2[0]?.msgid)
  })

  it("no analyst table holds a member's phone, email or openid in clear once messages went out on every channel", async ({ expect }) => {
    const p1: Member = { id: "p1", n: 601 }
    await publishEvents(nc, topology, [register(p1)])
    await publishEvents(nc, topology, [trigger("deliver.test", p1.id)])
    await settled("member_id = 'p1'", 5, "p1's messages")
    const contacts = [phoneOf(p1.n), emailOf(p1.id), openIdOf(p1.id)]
    // clickhouse.md: "no analytics table holds them in clear text"
    const inClear: Array<{ table: string; contacts: Array<string> }> = []
    for (const table of ANALYST_TABLES) {
      const found = await contactsInClear(engine, table, contacts)
      if (found.length > 0) inClear.push({ table, contacts: found })
    }
    expect(inClear).toEqual([])
  })

  it("a member who opts out after a message was scheduled (waiting for quiet hours to end) receives nothing", { timeout: 150_000 }, async ({ expect }) => {
    const { smtp, twilio } = providers
    // q1 opts out of everything, q2 of SMS only (the email fallback still goes), q3 not at all.
    const members: Array<Member> = [1, 2, 3].map((i) => ({ id: `q${i}`, n: 200 + i, timezone: "UTC" }))
    await publishEvents(nc, topology, members.map(register))
    await publishEvents(nc, topology, members.map((m) => trigger("quiet.test", m.id)))
    await eventually(async () => {
      const rows = await messageRows(engine, "journey_id = 'quiet'")
      return rows.length === 3 && rows.every((row) => row.status === "queued" && row.reason === "quiet_hours_deferred")
    }, 20_000, "the three messages deferred by quiet hours")
    expect(Date.now(), "the quiet hours must still run when the opt-outs are published").toBeLessThan(quietEnd - 3_000)
    await publishEvents(nc, topology, [
      { id: "optout-q1", type: "consent.updated", memberId: "q1", occurredAt: now(), properties: { channel: "all", granted: false } },
      { id: "optout-q2", type: "consent.updated", memberId: "q2", occurredAt: now(), properties: { channel: "sms", granted: false } }
    ])
    await eventually(async () => {
      const q1 = (await engine.get("/members/q1")).body as { consent: { sms: boolean; email: boolean } }
      const q2 = (await engine.get("/members/q2")).body as { consent: { sms: boolean; email: boolean } }
      return q1.consent.sms === false && q1.consent.email === false && q2.consent.sms === false
    }, 10_000, "the opt-outs applied")
    expect(Date.now(), "the opt-outs must land inside the quiet hours").toBeLessThan(quietEnd)

    await settled("journey_id = 'quiet'", 3, "the deferred messages decided once quiet hours ended", Math.max(10_000, quietEnd - Date.now() + 20_000))
    const rows = await messageRows(engine, "journey_id = 'quiet'")
    const [q1, q2, q3] = rows
    expect(q1).toMatchObject({ member_id: "q1", status: "suppressed", provider_message_id: "" })
    expect(q1?.reason).toMatch(/^opted_out \(sms: opted out; email: opted out\)$/)
    expect(q2).toMatchObject({ member_id: "q2", channel: "email", status: "sent", reason: "sms: opted out" })
    expect(q3).toMatchObject({ member_id: "q3", channel: "sms" })
    expect(["sent", "delivered"]).toContain(q3?.status)
    // Nothing reached q1 anywhere, q2 only by email, q3's SMS only after its quiet hours ended.
    expect(twilio.received.filter((sms) => sms.to === phoneOf(201) || sms.to === phoneOf(202))).toEqual([])
    expect(smtp.received.filter((mail) => mail.envelope.to.includes(emailOf("q1")) || mail.envelope.to.includes(emailOf("q3")))).toEqual([])
    expect(smtp.received.filter((mail) => mail.envelope.to.includes(emailOf("q2")))).toHaveLength(1)
    const q3Texts = twilio.received.filter((sms) => sms.to === phoneOf(203))
    expect(q3Texts).toHaveLength(1)
    expect(q3Texts[0]?.createdAt).toBeGreaterThanOrEqual(quietEnd)
  })

  it("a template missing a variable fails that message alone, naming the template and the variable", async ({ expect }) => {
    const { smtp, twilio } = providers
    const members: Array<Member> = [1, 2, 3, 4, 5].map((i) => ({ id: `o${i}`, n: 300 + i }))
    await publishEvents(nc, topology, members.map(register))
    // o5's order event has no orderId: the receipt cannot render.
    await publishEvents(nc, topology, members.map((m) => trigger("order.test", m.id, m.id === "o5" ? {} : { orderId: `SO-${m.n}` })))
    await settled("journey_id = 'order'", 10, "the order messages")
    const rows = await messageRows(engine, "journey_id = 'order'")
    const failed = rows.filter((r) => r.status === "failed")
    expect(failed.map((r) => `${r.member_id}/${r.step_id}`)).toEqual(["o5/receipt"])
    expect(failed[0]?.reason).toMatch(/^template sms\/t-order: missing variable "event\.orderId"/)
    // Every other message went out, o5's own thank-you email included.
    expect(rows.filter((r) => r.status !== "failed").every((r) => r.status === "sent" || r.status === "delivered")).toBe(true)
    for (const m of members) {
      const texts = twilio.received.filter((sms) => sms.to === phoneOf(m.n))
      expect(texts.map((sms) => sms.body)).toEqual(m.id === "o5" ? [] : [`Maison order SO-${m.n} confirmed [mk-${m.id}]`])
      expect(smtp.received.filter((mail) => mail.envelope.to.includes(emailOf(m.id)))).toHaveLength(1)
    }
  })

  it("Twilio status callbacks: a forged one is refused 403 and changes nothing, a valid one delivers, its replay changes nothing and a late one is refused 409", async ({ expect }) => {
    const { twilio } = providers
    const w1: Member = { id: "w1", n: 401 }
    // Twilio's own callbacks for w1 do not get through: the test hands them over itself.
    proxy.hold(phoneOf(w1.n))
    await publishEvents(nc, topology, [register(w1)])
    await publishEvents(nc, topology, [trigger("ping.test", w1.id)])
    await settled("member_id = 'w1'", 1, "w1's message sent")
    const [sent] = await messageRows(engine, "member_id = 'w1'")
    expect(sent).toMatchObject({ status: "sent", channel: "sms" })
    const sid = sent?.provider_message_id ?? ""
    await eventually(async () => twilio.callbacks.filter((c) => c.params["MessageSid"] === sid).length === 2, 10_000, "Twilio's two callbacks")
    const delivered = twilio.callbacks.find((c) => c.params["MessageSid"] === sid && c.params["MessageStatus"] === "delivered")!
    const sentCallback = twilio.callbacks.find((c) => c.params["MessageSid"] === sid && c.params["MessageStatus"] === "sent")!
    expect(delivered.answer).toBe(503)
    const path = `/webhooks/twilio?messageId=${encodeURIComponent(sent?.message_id ?? "")}`
    expect(delivered.url).toBe(`${proxy.url}${path}`)
    const post = async (params: Record<string, string>, signature: string | null) => {
      const response = await fetch(`http://127.0.0.1:${engine.port}${path}`, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded", ...(signature === null ? {} : { "x-twilio-signature": signature }) },
        body: new URLSearchParams(params).toString()
      })
      return { status: response.status, body: (await response.json()) as Record<string, unknown> }
    }
    const statusOf = async () => (await messageRows(engine, "member_id = 'w1'"))[0]?.status

    // Forged: signed with another token, tampered after signing, or not signed at all.
    expect((await post(delivered.params, twilioSignature("not-the-auth-token", delivered.url, delivered.params))).status).toBe(403)
    expect((await post({ ...delivered.params, MessageStatus: "failed", ErrorCode: "30003" }, delivered.signature)).status).toBe(403)
    expect((await post(delivered.params, null)).status).toBe(403)
    expect(await statusOf()).toBe("sent")

    // Twilio's own signed callback moves it to delivered; the same callback again changes nothing;
    // the older `sent` arriving late is refused.
    expect(await post(delivered.params, delivered.signature)).toEqual({ status: 200, body: { changed: true, status: "delivered" } })
    await eventually(async () => (await statusOf()) === "delivered", 10_000, "w1's message delivered")
    expect(await post(delivered.params, delivered.signature)).toEqual({ status: 200, body: { changed: false, status: "delivered" } })
    expect((await post(sentCallback.params, sentCallback.signature)).status).toBe(409)
    const [after] = await messageRows(engine, "member_id = 'w1'")
    expect(after).toMatchObject({ status: "delivered", provider_message_id: sid })
    // journeys and engagement hear of it once (events.md: message.delivered)
    await eventually(async () => (await engine.sql("SELECT event_id FROM events WHERE type = 'message.delivered' AND member_id = 'w1'")).length === 1, 10_000, "message.delivered")
  })

  it("an email's unsubscribe link: GET asks to confirm and changes nothing, a forged one is refused, one-click POST opts the member out of email, the next email is not sent, and the page's undo subscribes the member again", async ({ expect }) => {
    const { smtp } = providers
    // Marketing: consent applies. Shanghai time is outside this test's quiet hours (UTC members').
    const u1: Member = { id: "u1", n: 601, timezone: "Asia/Shanghai" }
    await publishEvents(nc, topology, [register(u1)])
    await eventually(async () => ((await engine.get(`/members/${encodeURIComponent(u1.id)}`)).body as { consent?: { email: boolean } }).consent?.email === true, 10_000, "u1 registered with email consent")
    await publishEvents(nc, topology, [trigger("letter.test", u1.id)])
    await eventually(async () => smtp.received.some((mail) => mail.envelope.to.includes(emailOf(u1.id))), 30_000, "u1's first letter")
    const mail = smtp.received.find((mail) => mail.envelope.to.includes(emailOf(u1.id)))!
    const link = `${proxy.url}/unsubscribe?member=${encodeURIComponent(u1.id)}&channel=email&sig=${signature(u1.id, "email")}`
    // The same link in the header (one-click, RFC 8058) and in the body.
    expect(mail.parsed.headerLines.find((h) => h.key === "list-unsubscribe")?.line.replace(/\r\n/g, "")).toBe(`List-Unsubscribe: <${link}>`)
    // RFC 8058's List-Unsubscribe-Post goes with an https link only: this public URL is http.
    expect(mail.parsed.headerLines.find((h) => h.key === "list-unsubscribe-post")).toBeUndefined()
    // (Handlebars escapes "&" and "=" in the attribute; a browser reads the same URL.)
    expect(mail.parsed.html).toContain(`href="${link.replace(/&/g, "&amp;").replace(/=/g, "&#x3D;")}"`)
    const consent = async () => ((await engine.get(`/members/${encodeURIComponent(u1.id)}`)).body as { consent: { email: boolean; sms: boolean } }).consent

    // GET (a person, or a mail scanner fetching links): a page that asks to confirm, nothing changed.
    const page = await fetch(link)
    expect(page.status).toBe(200)
    expect(page.headers.get("content-type")).toContain("text/html")
    const html = await page.text()
    expect(html).toContain('<form method="post">')
    expect(html).toContain("Stop receiving emails from Maison?")
    // Forged or broken links: refused, and nothing published.
    const forged = [
      [`${proxy.url}/unsubscribe?member=u2&channel=email&sig=${signature(u1.id, "email")}`, 403],
      [`${proxy.url}/unsubscribe?member=${encodeURIComponent(u1.id)}&channel=sms&sig=${signature(u1.id, "email")}`, 403],
      [`${proxy.url}/unsubscribe?member=${encodeURIComponent(u1.id)}&channel=email&sig=${signature(u1.id, "email").slice(1)}`, 403],
      [`${proxy.url}/unsubscribe?member=${encodeURIComponent(u1.id)}&channel=email`, 400],
      [`${proxy.url}/unsubscribe?member=${encodeURIComponent(u1.id)}&channel=fax&sig=${signature(u1.id, "fax")}`, 400]
    ] as const
    for (const [url, status] of forged) {
      const answer = await fetch(url, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: "List-Unsubscribe=One-Click" })
      expect([url, answer.status]).toEqual([url, status])
      expect(await answer.text()).toMatch(/This unsubscribe link is (not valid|incomplete)/)
    }
    await new Promise((resolve) => setTimeout(resolve, 1_000))
    expect(await consent()).toMatchObject({ email: true, sms: true })

    // One-click POST, as a mail client sends it: opted out of email only, as a consent.updated event.
    const done = await fetch(link, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: "List-Unsubscribe=One-Click" })
    expect(done.status).toBe(200)
    const donePage = await done.text()
    expect(donePage).toContain("You will no longer receive emails from Maison.")
    await eventually(async () => (await consent()).email === false, 10_000, "u1's email opt-out")
    expect((await consent()).sms).toBe(true)
    await eventually(async () => (await engine.sql("SELECT 1 FROM events WHERE member_id = 'u1' AND type = 'consent.updated'")).length === 1, 10_000, "the opt-out in events")
    const [event] = await engine.sql<{ source: string; properties: string }>("SELECT source, properties FROM events WHERE member_id = 'u1' AND type = 'consent.updated'")
    expect(event?.source).toBe("memberflow")
    expect(JSON.parse(event?.properties ?? "{}")).toEqual({ channel: "email", granted: false, via: "unsubscribe link" })

    // The next letter is not sent: the member has no other channel for it.
    await publishEvents(nc, topology, [{ ...trigger("letter.test", u1.id), id: "letter-again-u1" }])
    await settled("journey_id = 'letter' AND member_id = 'u1'", 2, "u1's second letter decided")
    const rows = await messageRows(engine, "journey_id = 'letter' AND member_id = 'u1'")
    expect(rows.map((row) => [row.status, row.reason]).sort()).toEqual([["sent", ""], ["suppressed", "no_reachable_channel (email: no consent)"]])
    expect(smtp.received.filter((mail) => mail.envelope.to.includes(emailOf(u1.id)))).toHaveLength(1)

    // Unsubscribed by mistake: the page that said it was done posts the same signed link to
    // /resubscribe. Only a POST with a link signed for this member grants the consent again.
    const undo = /<form method="post" action="([^"]+)">/.exec(donePage)?.[1]?.replace(/&amp;/g, "&")
    expect(undo).toBe(`resubscribe?member=${encodeURIComponent(u1.id)}&channel=email&sig=${signature(u1.id, "email")}`)
    const undoUrl = new URL(undo!, link).toString()
    expect((await fetch(undoUrl)).status).toBe(404)
    const otherMember = await fetch(`${proxy.url}/resubscribe?member=u2&channel=email&sig=${signature(u1.id, "email")}`, { method: "POST" })
    expect(otherMember.status).toBe(403)
    await new Promise((resolve) => setTimeout(resolve, 1_000))
    expect((await consent()).email).toBe(false)
    const again = await fetch(undoUrl, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: "" })
    expect(again.status).toBe(200)
    expect(await again.text()).toContain("You will receive emails from Maison again.")
    await eventually(async () => (await consent()).email === true, 10_000, "u1's email consent granted again")
    await eventually(async () => (await engine.sql("SELECT 1 FROM events WHERE member_id = 'u1' AND type = 'consent.updated'")).length === 2, 10_000, "the undo in events")
    const undone = await engine.sql<{ properties: string }>("SELECT properties FROM events WHERE member_id = 'u1' AND type = 'consent.updated' ORDER BY occurred_at")
    expect(undone.map((row) => JSON.parse(row.properties) as unknown)).toEqual([
      { channel: "email", granted: false, via: "unsubscribe link" },
      { channel: "email", granted: true, via: "unsubscribe link, undone" }
    ])
    // And the next letter goes out again.
    await publishEvents(nc, topology, [{ ...trigger("letter.test", u1.id), id: "letter-third-u1" }])
    await eventually(async () => smtp.received.filter((mail) => mail.envelope.to.includes(emailOf(u1.id))).length === 2, 30_000, "u1's letter after the undo")
  })

  it("Twilio 21610 (the member replied STOP) falls back to email and records the SMS opt-out for every later send", async ({ expect }) => {
    const { smtp, twilio } = providers
    const s1: Member = { id: "s1", n: 501 }
    twilio.failNumber(phoneOf(s1.n), 21610)
    await publishEvents(nc, topology, [register(s1)])
    await eventually(async () => ((await engine.get("/members/s1")).body as { consent?: { sms: boolean } }).consent?.sms === true, 10_000, "s1 registered with SMS consent")
    await publishEvents(nc, topology, [trigger("promo.test", s1.id)])
    await settled("journey_id = 'promo' AND member_id = 's1'", 1, "s1's promo decided")
    const [promo] = await messageRows(engine, "journey_id = 'promo' AND member_id = 's1'")
    expect(promo).toMatchObject({ channel: "email", status: "sent", reason: "sms: twilio 21610: recipient unsubscribed (STOP)" })
    expect(smtp.received.filter((mail) => mail.envelope.to.includes(emailOf(s1.id)))).toHaveLength(1)
    await eventually(async () => ((await engine.get("/members/s1")).body as { consent: { sms: boolean } }).consent.sms === false, 10_000, "s1's SMS opt-out")
    expect(((await engine.get("/members/s1")).body as { consent: { email: boolean } }).consent.email).toBe(true)

    await publishEvents(nc, topology, [trigger("promo_later.test", s1.id)])
    await settled("journey_id = 'promo-later' AND member_id = 's1'", 1, "s1's later promo decided")
    const [later] = await messageRows(engine, "journey_id = 'promo-later' AND member_id = 's1'")
    expect(later).toMatchObject({ status: "suppressed", reason: "no_reachable_channel (sms: no consent)" })
    // Twilio was asked once (and refused); it never accepted anything for s1.
    expect(twilio.requests.filter((r) => r.code === 21610)).toHaveLength(1)
    expect(twilio.received.filter((sms) => sms.to === phoneOf(s1.n))).toEqual([])
  })
})
