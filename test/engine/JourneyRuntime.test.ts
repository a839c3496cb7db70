import type { NatsConnection } from "@nats-io/transport-node"
import { writeFileSync } from "node:fs"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { inGlobalControl } from "../../engine/journeys/Machine.ts"
import { type EngineProcess, eventually, startEngine, tempDir } from "../support/engine.ts"
import { journeysDir, WITHOUT_QUIET_HOURS } from "../support/journeys.ts"
import { dropTopology, type EventInput, natsConnect, publishEvents, type TestTopology, uniqueTopology } from "../support/nats.ts"

const JOURNEY = `# yaml-language-server: $schema=../schemas/journey.schema.json
id: quick-welcome
name: 快速歡迎 (test)
status: active
category: marketing
trigger: { event: { type: signup.test } }
exit:
  - { event: consent.updated, where: { granted: false } }
goal: { event: purchase, within: 1d }
experiment:
  control: 20
  variants:
    - { id: a, weight: 100 }
steps:
  - id: hello
    send: { channel: sms, template: welcome, fallback: [email] }
  - { id: pause, wait: 3s }
  - id: again
    send: { channel: email, template: welcome-first-order }
`

const LAPSE = `id: quick-lapse
name: 簽到後提醒 (test)
status: active
category: transactional
trigger: { inactivity: { event: checkin, for: 3s } }
reentry: afterExit
steps:
  - id: nudge
    send: { channel: sms, template: welcome }
`

const BIRTHDAY = `id: quick-birthday
name: 生日 (test)
status: active
category: transactional
trigger: { date: { attribute: birthday, at: "00:00" } }
steps:
  - id: greet
    send: { channel: sms, template: birthday-greeting }
`

const editable = (secondTemplate: string) => `id: edit-me
name: 編輯中 (test)
status: active
category: transactional
trigger: { event: { type: edit.test } }
steps:
  - id: first
    send: { channel: sms, template: welcome }
  - { id: pause, wait: 4s }
  - id: second
    send: { channel: sms, template: ${secondTemplate} }
`

const now = () => new Date().toISOString()

interface MessageRow {
  readonly member_id: string
  readonly step_id: string
  readonly status: string
  readonly reason: string
  readonly variant: string
  readonly provider_message_id: string
}

describe("journeys run inside the engine (sandbox channels)", () => {
  let topology: TestTopology
  let nc: NatsConnection
  let dir: string
  let dataDir: string
  const engines: Array<EngineProcess> = []

  beforeAll(async () => {
    topology = uniqueTopology("journeys")
    nc = await natsConnect()
    dir = journeysDir([WITHOUT_QUIET_HOURS])
    writeFileSync(join(dir, "quick-welcome.yaml"), JOURNEY)
    writeFileSync(join(dir, "quick-lapse.yaml"), LAPSE)
    writeFileSync(join(dir, "quick-birthday.yaml"), BIRTHDAY)
    writeFileSync(join(dir, "edit-me.yaml"), editable("welcome"))
    dataDir = tempDir("journeys")
  })

  afterAll(async () => {
    await Promise.all(engines.map((engine) => engine.kill("SIGKILL")))
    await nc?.close()
    if (topology) await dropTopology(topology)
  })

  const start = async () => {
    const engine = await startEngine({ ...topology.env, JOURNEYS_DIR: dir, MEMBERFLOW_DATA_DIR: dataDir, MEMBERFLOW_ACK_WAIT_MS: "3000", MEMBERFLOW_JOURNEYS_POLL_MS: "300" }, "journeys")
    engines.push(engine)
    return engine
  }

  it("enrolls on the trigger, sends, waits durably through a SIGKILL, and sends the next step exactly once", async () => {
    const members = Array.from({ length: 60 }, (_, i) => `j${i}`)
    const reachable = (i: number) => i < 50
    // program.yaml's global control group (5%) enters no marketing journey at all.
    const held = members.filter((memberId) => inGlobalControl(memberId, 5))
    const entering = members.length - held.length
    expect(held.length).toBeGreaterThan(0)
    const registrations: Array<EventInput> = members.map((memberId, i) => ({
      id: `reg-${memberId}`,
      type: "member.registered",
      memberId,
      occurredAt: now(),
      properties: reachable(i) ? { phone: `+86138000${String(i).padStart(5, "0")}`, email: `m${i}@example.com`, consent: { sms: true, email: true } } : {}
    }))
    let engine = await start()
    await publishEvents(nc, topology, registrations)
    await publishEvents(nc, topology, members.map((memberId) => ({ id: `sig-${memberId}`, type: "signup.test", memberId, occurredAt: now() })))

    // First step: one message per member, suppressed for control and for members with no channel.
    await eventually(async () => {
      const rows = await engine.sql<{ n: number }>("SELECT count() AS n FROM messages FINAL WHERE journey_id = 'quick-welcome' AND step_id = 'hello'")
      return Number(rows[0]?.n) === entering
    }, 20_000, "the first step's messages")
    // Killed inside the 3 s wait, restarted: the wait is a durable timer.
    expect(await engine.kill("SIGKILL")).toBeNull()
    engine = await start()
    await eventually(async () => {
      const rows = await engine.sql<{ n: number }>("SELECT count() AS n FROM messages FINAL WHERE journey_id = 'quick-welcome' AND step_id = 'again'")
      return Number(rows[0]?.n) === entering
    }, 30_000, "the second step's messages after the restart")

    // Queued messages are handed over (sandbox) by the delivery worker, once.
    await eventually(async () => {
      const queued = await engine.sql<{ n: number }>("SELECT count() AS n FROM messages FINAL WHERE journey_id = 'quick-welcome' AND status = 'queued'")
      return Number(queued[0]?.n) === 0
    }, 20_000, "every queued message handed over")
    const rows = await engine.sql<MessageRow>(
      "SELECT member_id, step_id, status, reason, variant, provider_message_id FROM messages FINAL WHERE journey_id = 'quick-welcome'"
    )
    // Exactly one message per member and step: no message id recorded twice or missing.
    expect(rows).toHaveLength(2 * entering)
    expect(rows.filter((row) => held.includes(row.member_id))).toEqual([])
    const byMember = new Map<string, Array<MessageRow>>()
    for (const row of rows) byMember.set(row.member_id, [...(byMember.get(row.member_id) ?? []), row])
    for (const [memberId, messages] of byMember) {
      expect(messages.map((m) => m.step_id).sort()).toEqual(["again", "hello"])
      const i = Number(memberId.slice(1))
      for (const message of messages) {
        if (message.variant === "control") {
          expect(message).toMatchObject({ status: "suppressed", reason: "control" })
        } else if (!reachable(i)) {
          expect(message.status).toBe("suppressed")
          expect(message.reason).toMatch(/^no_reachable_channel \(/)
        } else {
          expect(message.status).toBe("sent")
          expect(message.provider_message_id).toMatch(/^sandbox-/)
        }
      }
    }
    const control = rows.filter((row) => row.variant === "control").length / 2
    expect(control).toBeGreaterThan(2)
    expect(control).toBeLessThan(25)

    // GET /members/:id shows the member's recent messages (operations.md), no contact point in clear.
    const sentTo = rows.find((row) => row.status === "sent")?.member_id ?? ""
    const lookup = await engine.get(`/members/${sentTo}`)
    expect(lookup.status).toBe(200)
    const profile = lookup.body as { messages: Array<{ journey_id: string; status: string }>; journeys: Array<unknown> }
    expect(profile.messages.filter((m) => m.journey_id === "quick-welcome").map((m) => m.status)).toEqual(["sent", "sent"])
    expect(Array.isArray(profile.journeys)).toBe(true)
    expect(JSON.stringify(profile)).not.toMatch(/\+86138000\d{5}|"m\d+@example\.com"/)

    // Enrollments: one per member, completed after the last step.
    await eventually(async () => {
      const done = await engine.sql<{ n: number }>("SELECT count() AS n FROM journey_enrollments FINAL WHERE journey_id = 'quick-welcome' AND status = 'completed'")
      return Number(done[0]?.n) === entering
    }, 20_000, "completed enrollments")
    const steps = await engine.sql<{ n: number }>("SELECT count() AS n FROM journey_steps FINAL WHERE journey_id = 'quick-welcome' AND step_id = 'again'")
    expect(Number(steps[0]?.n)).toBe(entering)
    // /metrics counts messages by channel and status (this engine's share: it was restarted).
    const metrics = String((await engine.get("/metrics")).body)
    expect(metrics).toMatch(/^memberflow_messages_total\{channel="[a-z]+",status="(sent|suppressed)"\} \d+$/m)
  })

  it("a member who converts inside the goal window is recorded once in conversions", async () => {
    const engine = engines[engines.length - 1]!
    await publishEvents(nc, topology, [
      { id: "buy-j1", type: "purchase", memberId: "j1", occurredAt: now(), properties: { orderId: "jo1", amount: 388, currency: "CNY" } },
      { id: "buy-j1-b", type: "purchase", memberId: "j1", occurredAt: now(), properties: { orderId: "jo2", amount: 100, currency: "CNY" } }
    ])
    await eventually(async () => {
      const rows = await engine.sql<{ n: number }>("SELECT count() AS n FROM conversions FINAL WHERE journey_id = 'quick-welcome' AND member_id = 'j1'")
      return Number(rows[0]?.n) === 1
    }, 20_000, "j1's conversion")
    const [row] = await engine.sql<{ value: number }>("SELECT value FROM conversions FINAL WHERE member_id = 'j1' AND journey_id = 'quick-welcome'")
    expect(Number(row?.value)).toBe(388)
  })

  it("date and inactivity journeys enter by their own timers: a birthday today (member-local), a lapse after the last check-in", async () => {
    const engine = engines[engines.length - 1]!
    const today = new Intl.DateTimeFormat("en-CA", { timeZone: "Asia/Shanghai", month: "2-digit", day: "2-digit" }).format(new Date())
    const tomorrow = new Intl.DateTimeFormat("en-CA", { timeZone: "Asia/Shanghai", month: "2-digit", day: "2-digit" }).format(new Date(Date.now() + 86_400_000))
    await publishEvents(nc, topology, [
      { id: "reg-b1", type: "member.registered", memberId: "b1", occurredAt: now(), properties: { phone: "+8613900000001", birthday: today } },
      { id: "reg-b2", type: "member.registered", memberId: "b2", occurredAt: now(), properties: { phone: "+8613900000002", birthday: tomorrow } },
      { id: "chk-c1", type: "checkin", memberId: "c1", occurredAt: now() },
      { id: "reg-c2", type: "member.registered", memberId: "c2", occurredAt: now(), properties: { phone: "+8613900000003" } },
      // c3's history arrives at once, oldest first, every check-in long lapsed: one entry, for the
      // latest lapse — not one per old check-in as each is applied
      ...[5, 4, 3, 2, 1].map((days) => ({ id: `chk-c3-${days}`, type: "checkin", memberId: "c3", occurredAt: new Date(Date.now() - days * 86_400_000).toISOString() }))
    ])
    // The birthday is today and 00:00 has passed: "eligible later that day still enters that day".
    await eventually(async () => {
      const rows = await engine.sql<{ member_id: string }>("SELECT member_id FROM messages FINAL WHERE journey_id = 'quick-birthday'")
      return rows.map((r) => r.member_id).join() === "b1"
    }, 20_000, "b1's birthday message")
    // c1 checked in and then nothing for 3 s; c2 never checked in.
    await eventually(async () => {
      const rows = await engine.sql<{ member_id: string }>("SELECT member_id FROM journey_enrollments FINAL WHERE journey_id = 'quick-lapse'")
      return rows.map((r) => r.member_id).sort().join() === "c1,c3"
    }, 20_000, "c1's and c3's lapse entries")
    // Once per lapse: nothing more for c1 until it checks in again.
    await new Promise((resolve) => setTimeout(resolve, 4000))
    const lapses = await engine.sql<{ member_id: string; n: number }>(
      "SELECT member_id, count() AS n FROM journey_enrollments FINAL WHERE journey_id = 'quick-lapse' GROUP BY member_id ORDER BY member_id"
    )
    expect(lapses.map((r) => [r.member_id, Number(r.n)])).toEqual([["c1", 1], ["c3", 1]])
    const [birthdays] = await engine.sql<{ n: number }>("SELECT count() AS n FROM journey_enrollments FINAL WHERE journey_id = 'quick-birthday'")
    expect(Number(birthdays?.n)).toBe(1)
  })

  it("an edited journey is a new version for new entries while members inside finish on theirs; an invalid edit is refused", async () => {
    const engine = engines[engines.length - 1]!
    const secondTemplate = async (memberId: string) => {
      const rows = await engine.sql<{ template: string }>(
        `SELECT template FROM messages FINAL WHERE journey_id = 'edit-me' AND step_id = 'second' AND member_id = '${memberId}'`
      )
      return rows[0]?.template
    }
    const versionOf = async (memberId: string) =>
      (await engine.sql<{ v: string }>(`SELECT any(journey_version) AS v FROM journey_enrollments FINAL WHERE journey_id = 'edit-me' AND member_id = '${memberId}'`))[0]?.v
    const enter = (memberId: string) =>
      publishEvents(nc, topology, [
        { id: `reg-${memberId}`, type: "member.registered", memberId, occurredAt: now(), properties: { phone: "+8613700000001" } },
        { id: `edit-${memberId}`, type: "edit.test", memberId, occurredAt: now() }
      ])
    await enter("e1")
    await eventually(async () => (await versionOf("e1")) !== undefined && (await versionOf("e1")) !== "", 20_000, "e1 inside v1")
    const v1 = await versionOf("e1")

    writeFileSync(join(dir, "edit-me.yaml"), editable("welcome-first-order"))
    await eventually(async () => {
      const body = (await engine.get("/journeys")).body as { journeys: Array<{ id: string; version: string }> }
      return body.journeys.some((j) => j.id === "edit-me" && j.version !== v1)
    }, 10_000, "the edit to load")
    await enter("e2")
    await eventually(async () => (await secondTemplate("e1")) !== undefined && (await secondTemplate("e2")) !== undefined, 20_000, "both second steps")
    expect(await secondTemplate("e1")).toBe("welcome")
    expect(await secondTemplate("e2")).toBe("welcome-first-order")
    const v2 = await versionOf("e2")
    expect(v2).not.toBe(v1)

    // An edit that does not validate: refused, the error shown, the running version kept.
    writeFileSync(join(dir, "edit-me.yaml"), editable("no-such-template").replace("status: active", "statuss: active"))
    await eventually(async () => {
      const ready = (await engine.get("/readyz")).body as { journeys: { error: string | null } }
      return ready.journeys.error !== null
    }, 10_000, "the refusal to show at /readyz")
    const ready = (await engine.get("/readyz")).body as { ready: boolean; journeys: { error: string } }
    expect(ready.ready).toBe(true)
    expect(ready.journeys.error).toMatch(/edit-me\.yaml:\d+:\d+: .*statuss.*did you mean "status"/)
    const listed = (await engine.get("/journeys")).body as { error: string; journeys: Array<{ id: string; version: string }> }
    expect(listed.error).toContain("edit-me.yaml")
    expect(listed.journeys.find((j) => j.id === "edit-me")?.version).toBe(v2)
    await enter("e3")
    await eventually(async () => (await versionOf("e3")) === v2, 20_000, "e3 entering the running version")
  })
})
