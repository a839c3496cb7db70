/**
 * The chaos harness (issue 6): members through journeys with short timings, sending to the local
 * SMTP / Twilio / WeChat servers, while engines are SIGKILLed and restarted at random moments, the
 * NATS server (the harness's own, on its own port and store) is restarted once, and the providers
 * fail for a while. At the end it compares with ground truth computed from the input:
 * - every event applied exactly once: each member's purchase count and total (from KV, through
 *   `GET /members/:id`) equal the input's;
 * - every expected message received exactly once: the chaos journey sends each member an SMS, then
 *   (after a wait) an email, then (after another) a WeChat message; none missing, none twice;
 *   messages the engine recorded as `interrupted` (a hand-over cut by SIGKILL, never resent) are
 *   counted apart; and no message of any journey (the shipped ones run too) arrives twice;
 * - every wait fired once: the step after each wait ran once per enrollment (journey_steps).
 */
import { type ChildProcess, spawn } from "node:child_process"
import { randomBytes } from "node:crypto"
import { mkdirSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { jetstream } from "@nats-io/jetstream"
import { connect, type NatsConnection } from "@nats-io/transport-node"
import { ENGINE_NODE_FLAGS } from "../../engine/NodeFlags.ts"
import { allDrained, freePort, type Readiness, ROOT, tempDir } from "../../test/support/engine.ts"
import { journeysDir } from "../../test/support/journeys.ts"
import { uniqueTopology } from "../../test/support/nats.ts"
import { privateNats } from "../../test/support/natsServer.ts"
import { startSmtpServer } from "../../test/support/smtp.ts"
import { startTwilioServer } from "../../test/support/twilio.ts"
import { startWechatServer } from "../../test/support/wechat.ts"

export interface ChaosOptions {
  readonly members: number
  readonly purchasesPerMember: number
  readonly engines: number
  /** SIGKILL + restart of a random engine, this many times */
  readonly kills: number
  readonly restartNats: boolean
  /** freeze the NATS server (SIGSTOP, then SIGCONT) this long once mid-run; requests time out after 5 s */
  readonly pauseNatsMs?: number
  readonly providerOutageMs: number
  /** SIGTERM a busy engine once mid-run (it must drain and exit 0 within 10 s), then start it again */
  readonly busySigterm?: boolean
  /** how long publishing the input is spread over */
  readonly publishSeconds: number
  readonly log: (line: string) => void
}

export interface ChaosReport {
  readonly members: number
  readonly events: number
  readonly profileMismatches: number
  readonly expectedMessages: number
  readonly receivedOnce: number
  readonly missing: number
  readonly interrupted: number
  readonly duplicated: number
  readonly otherMessages: number
  readonly otherDuplicated: number
  readonly waitsExpected: number
  readonly waitsFiredOnce: number
  readonly waitsFiredTwice: number
  readonly kills: number
  readonly natsRestarts: number
  readonly natsPauses: number
  /** engines that exited while the harness had not stopped them (an engine must outlive NATS trouble) */
  readonly unexpectedExits: number
  /** the busy SIGTERM mid-run: exit code and seconds to exit */
  readonly busySigterm: { readonly code: number | null; readonly seconds: number } | null
  readonly sigtermExitCodes: ReadonlyArray<number | null>
  readonly sigtermSeconds: number
  readonly seconds: number
  readonly ok: boolean
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

const CHAOS_JOURNEY = `# The chaos harness's journey: three channels, two waits, transactional (no caps, no quiet hours).
id: chaos-welcome
name: chaos welcome
status: active
category: transactional
trigger: { event: { type: member.registered } }
steps:
  - id: sms-first
    send: { channel: sms, template: chaos-sms }
  - { id: wait-one, wait: 3s }
  - id: email-second
    send: { channel: email, template: chaos-email }
  - { id: wait-two, wait: 3s }
  - id: wechat-third
    send: { channel: wechat, template: chaos-wechat }
`

const writeChaosJourney = (dir: string) => {
  writeFileSync(join(dir, "chaos-welcome.yaml"), CHAOS_JOURNEY)
  writeFileSync(join(dir, "templates/sms/chaos-sms.hbs"), "[chaos] {{member.name}} sms\n")
  writeFileSync(join(dir, "templates/email/chaos-email.hbs"), "---\nsubject: \"[chaos] {{member.name}} email\"\n---\n<p>[chaos] {{member.name}} email</p>\n")
  writeFileSync(
    join(dir, "templates/wechat/chaos-wechat.yaml"),
    'kind: template\ntemplateId: TPL_CHAOS\ndata:\n  thing1: "[chaos] {{member.name}} wechat"\n'
  )
}

interface Slot {
  readonly index: number
  /** Picked again at each start: a dead engine's port may be taken meanwhile. */
  port: number
  readonly dataDir: string
  child: ChildProcess | null
  exited: Promise<number | null> | null
  output: string
  /** The harness stopped it (SIGKILL, SIGTERM): its exit is not counted as unexpected. */
  stopped: boolean
  /** Ready once: an exit from then on, unless the harness stopped it, counts as unexpected. */
  started: boolean
}

export const runChaos = async (options: ChaosOptions): Promise<ChaosReport> => {
  const started = Date.now()
  const { log } = options
  const dir = journeysDir()
  mkdirSync(join(dir, "templates/wechat"), { recursive: true })
  writeChaosJourney(dir)
  const nats = await privateNats("chaos")
  const smtp = await startSmtpServer()
  const accountSid = `AC${randomBytes(16).toString("hex")}`
  const authToken = randomBytes(16).toString("hex")
  const twilio = await startTwilioServer({ accountSid, authToken, statusDelayMs: 50 })
  const wechat = await startWechatServer({ appId: "wxchaos", appSecret: "chaos-secret" })
  const topology = uniqueTopology("chaos")
  const slots: Array<Slot> = []
  for (let i = 0; i < options.engines; i++) slots.push({ index: i, port: 0, dataDir: tempDir(`chaos-${i}`), child: null, exited: null, output: "", stopped: false, started: false })

  const envOf = (slot: Slot): Record<string, string> => ({
    ...(process.env as Record<string, string>),
    ...topology.env,
    NATS_URL: nats.url,
    JOURNEYS_DIR: dir,
    MEMBERFLOW_DATA_DIR: slot.dataDir,
    MEMBERFLOW_HTTP_PORT: String(slot.port),
    MEMBERFLOW_PUBLIC_URL: `http://127.0.0.1:${slot.port}`,
    MEMBERFLOW_ACK_WAIT_MS: "3000",
    CHANNELS_MODE: "live",
    SMTP_URL: smtp.url,
    EMAIL_FROM: "crm@chaos.example.com",
    TWILIO_ACCOUNT_SID: accountSid,
    TWILIO_AUTH_TOKEN: authToken,
    TWILIO_FROM: "+15005550006",
    TWILIO_API_URL: twilio.url,
    WECHAT_APP_ID: "wxchaos",
    WECHAT_APP_SECRET: "chaos-secret",
    WECHAT_API_URL: wechat.url
  })
  const base = (slot: Slot) => `http://127.0.0.1:${slot.port}`
  /**
   * Waits until this child itself listens on the slot's port and says it is ready. The child's own
   * "Listening on" line comes first: while an engine is down its port is free, and another test's
   * process may take it (CI once had a restarted engine exit on EADDRINUSE while another test's
   * engine answered /readyz on that port for it).
   */
  const ready = async (slot: Slot, child: ChildProcess): Promise<"ready" | "port taken" | "exited" | "timeout"> => {
    const listening = `Listening on http://127.0.0.1:${slot.port}`
    for (let i = 0; i < 600; i++) {
      if (child.exitCode !== null || child.signalCode !== null) return /EADDRINUSE/.test(slot.output) ? "port taken" : "exited"
      const ok = slot.output.includes(listening) && (await fetch(`${base(slot)}/readyz`).then((r) => r.status === 200, () => false))
      if (ok) return "ready"
      await sleep(100)
    }
    return "timeout"
  }
  let unexpectedExits = 0
  /** Starts the slot's engine on a port free now; a port taken before the engine binds it is picked again. */
  const startSlot = async (slot: Slot) => {
    for (let attempt = 1; ; attempt++) {
      slot.port = await freePort()
      const child = spawn(process.execPath, [...ENGINE_NODE_FLAGS, join(ROOT, "bin/memberflow.js"), "run"], { cwd: ROOT, env: envOf(slot), stdio: ["ignore", "pipe", "pipe"] })
      slot.child = child
      slot.output = ""
      slot.stopped = false
      slot.started = false
      child.stdout?.on("data", (chunk: Buffer) => (slot.output = (slot.output + chunk.toString()).slice(-20_000)))
      child.stderr?.on("data", (chunk: Buffer) => (slot.output = (slot.output + chunk.toString()).slice(-20_000)))
      slot.exited = new Promise((ok) => child.on("exit", (code) => ok(code)))
      // An exit before the engine was ready is the start's to report, below.
      child.on("exit", (code, signal) => {
        if (slot.stopped || slot.child !== child || !slot.started) return
        unexpectedExits++
        log(`chaos: engine ${slot.index} exited on its own (code ${code}, signal ${signal}); the end of its log:\n${slot.output.slice(-5_000)}`)
      })
      const outcome = await ready(slot, child)
      if (outcome === "ready") {
        slot.started = true
        return
      }
      if (outcome === "port taken" && attempt < 5) {
        log(`chaos: engine ${slot.index}'s port ${slot.port} was taken before it bound it; picking another`)
        continue
      }
      if (outcome === "timeout") signal(slot, "SIGKILL")
      throw new Error(`engine ${slot.index} did not become ready (${outcome}):\n${slot.output}`)
    }
  }
  /** The harness stops an engine: its exit is not counted as one on its own. */
  const signal = (slot: Slot, sig: NodeJS.Signals) => {
    slot.stopped = true
    slot.child?.kill(sig)
  }
  const sql = async <A>(slot: Slot, query: string): Promise<Array<A>> => {
    const response = await fetch(`${base(slot)}/sql`, { method: "POST", headers: { "content-type": "text/plain" }, body: query })
    const body = (await response.json()) as { rows?: Array<A>; error?: string }
    if (body.rows === undefined) throw new Error(`SQL failed: ${body.error}`)
    return body.rows
  }
  /** The rows of every engine's own ClickHouse (embedded: each holds what it wrote). */
  const sqlAll = async <A>(query: string): Promise<Array<A>> => (await Promise.all(slots.map((slot) => sql<A>(slot, query)))).flat()

  // ---- the input: registrations with every contact point, then purchases
  const members = Array.from({ length: options.members }, (_, i) => `c${String(i).padStart(6, "0")}`)
  const expectedPurchases = new Map<string, { count: number; total: number }>()
  const events: Array<{ id: string; type: string; memberId: string; occurredAt: string; properties: Record<string, unknown> }> = []
  const now = Date.now()
  members.forEach((memberId, i) => {
    events.push({
      id: `reg-${topology.stream}-${memberId}`,
      type: "member.registered",
      memberId,
      occurredAt: new Date(now - 86_400_000).toISOString(),
      properties: {
        name: memberId,
        phone: `+86139${String(i).padStart(8, "0")}`,
        email: `${memberId}@chaos.example.com`,
        wechatOpenId: `oChaos${memberId}`,
        consent: { sms: true, email: true, wechat: true }
      }
    })
  })
  members.forEach((memberId, i) => {
    let total = 0
    for (let k = 0; k < options.purchasesPerMember; k++) {
      const amount = Math.round((50 + ((i * 7919 + k * 104_729) % 3000)) * 100) / 100 + 0.5
      total += amount
      events.push({
        id: `buy-${topology.stream}-${memberId}-${k}`,
        type: "purchase",
        memberId,
        occurredAt: new Date(now - 3_600_000 * (k + 1)).toISOString(),
        properties: { orderId: `o-${memberId}-${k}`, amount, currency: "CNY" }
      })
    }
    expectedPurchases.set(memberId, { count: options.purchasesPerMember, total: Math.round(total * 100) / 100 })
  })

  let natsRestarts = 0
  let natsPauses = 0
  let busySigterm: { code: number | null; seconds: number } | null = null
  let kills = 0
  let reportOut: ChaosReport | null = null
  let publisher: NatsConnection | null = null
  try {
    for (const slot of slots) await startSlot(slot)
    log(`chaos: ${options.members} members, ${events.length} events, ${options.engines} engine(s), NATS ${nats.url}`)

    // ---- publish, paced, retrying each event until JetStream has it (through the NATS restart)
    publisher = await connect({ servers: nats.url, maxReconnectAttempts: -1, reconnectTimeWait: 200 })
    const js = jetstream(publisher, { timeout: 5_000 })
    const publishAll = async () => {
      const perTick = Math.max(1, Math.ceil(events.length / (options.publishSeconds * 10)))
      for (let at = 0; at < events.length; at += perTick) {
        const slice = events.slice(at, at + perTick)
        await Promise.all(
          slice.map(async (event) => {
            for (;;) {
              try {
                await js.publish(`${topology.subjectPrefix}.${event.type}`, JSON.stringify(event), { msgID: event.id })
                return
              } catch {
                await sleep(300)
              }
            }
          })
        )
        await sleep(100)
      }
    }
    const publishing = publishAll()

    // ---- chaos: kills at random moments, one NATS restart, one provider outage
    const span = (options.publishSeconds + 20) * 1000
    const plan: Array<{ at: number; what: "kill" | "nats" | "pause" | "outage" | "term" }> = []
    if (options.busySigterm === true) plan.push({ at: span * 0.55, what: "term" })
    for (let k = 0; k < options.kills; k++) plan.push({ at: 3_000 + Math.random() * span, what: "kill" })
    if (options.restartNats) plan.push({ at: span * 0.4, what: "nats" })
    if ((options.pauseNatsMs ?? 0) > 0) plan.push({ at: span * 0.25, what: "pause" })
    if (options.providerOutageMs > 0) plan.push({ at: span * 0.3, what: "outage" })
    plan.sort((a, b) => a.at - b.at)
    const t0 = Date.now()
    for (const step of plan) {
      const wait = t0 + step.at - Date.now()
      if (wait > 0) await sleep(wait)
      if (step.what === "kill") {
        const slot = slots[Math.floor(Math.random() * slots.length)] as Slot
        signal(slot, "SIGKILL")
        await slot.exited
        kills++
        log(`chaos: SIGKILL engine ${slot.index} at ${((Date.now() - started) / 1000).toFixed(1)} s; restarting`)
        await startSlot(slot)
      } else if (step.what === "term") {
        const slot = slots[0] as Slot
        const from = Date.now()
        signal(slot, "SIGTERM")
        const code = await Promise.race([slot.exited, sleep(15_000).then(() => "timeout" as const)])
        busySigterm = { code: code === "timeout" ? null : (code ?? null), seconds: (Date.now() - from) / 1000 }
        if (code === "timeout") {
          slot.child?.kill("SIGKILL")
          log(`chaos: engine 0 did not exit within 15 s of SIGTERM; the end of its log:\n${slot.output.slice(-20_000)}`)
        }
        log(`chaos: SIGTERM engine 0 while busy: exit ${busySigterm.code} in ${busySigterm.seconds.toFixed(1)} s; restarting`)
        await slot.exited
        await startSlot(slot)
      } else if (step.what === "nats") {
        log(`chaos: restarting NATS at ${((Date.now() - started) / 1000).toFixed(1)} s`)
        await nats.stop()
        await sleep(1_000)
        await nats.start()
        natsRestarts++
      } else if (step.what === "pause") {
        log(`chaos: NATS frozen for ${(options.pauseNatsMs ?? 0) / 1000} s at ${((Date.now() - started) / 1000).toFixed(1)} s`)
        await nats.pause(options.pauseNatsMs ?? 0)
        natsPauses++
      } else {
        log(`chaos: providers fail for ${options.providerOutageMs / 1000} s`)
        smtp.failAll(451, options.providerOutageMs)
        twilio.failAll(503, options.providerOutageMs)
        wechat.failAll(-1)
        setTimeout(() => wechat.failAll(null), options.providerOutageMs)
      }
    }
    await publishing
    log(`chaos: input published at ${((Date.now() - started) / 1000).toFixed(1)} s; waiting for the engines to settle`)

    // ---- settle: every chaos message handed over or decided, every profile complete
    const chaosReceived = () => ({
      sms: twilio.received.filter((m) => m.body.startsWith("[chaos]")).length,
      email: smtp.received.filter((m) => (m.parsed.subject ?? "").startsWith("[chaos]")).length,
      wechat: wechat.received.filter((m) => (m.data["thing1"]?.value ?? "").startsWith("[chaos]")).length
    })
    // email goes out about 30/s here (5 in flight): allow for it, then give up and count what is missing
    const deadline = Date.now() + 240_000 + options.members * 100
    let lastCheck = 0
    for (;;) {
      const got = chaosReceived()
      const total = got.sms + got.email + got.wechat
      if (got.sms >= options.members && got.email >= options.members && got.wechat >= options.members) break
      if (Date.now() > deadline) break
      // The cross-engine state (every message's newest row over all engines) is costly to read:
      // every 15 s, to stop early when what is missing was decided otherwise (failed, interrupted).
      if (Date.now() - lastCheck > 15_000) {
        lastCheck = Date.now()
        const latest = await sqlAll<{ message_id: string; status: string; updated_at: string }>(
          "SELECT message_id, status, toString(updated_at) AS updated_at FROM messages FINAL WHERE journey_id = 'chaos-welcome'"
        ).then(
          (rows) => {
            const byId = new Map<string, { status: string; updated_at: string }>()
            for (const row of rows) {
              const kept = byId.get(row.message_id)
              if (kept === undefined || kept.updated_at < row.updated_at || (kept.updated_at === row.updated_at && row.status !== "queued")) byId.set(row.message_id, row)
            }
            return [...byId.values()]
          },
          () => null
        )
        const undecided = latest === null ? Infinity : latest.filter((m) => m.status === "queued").length
        const decided = latest === null ? 0 : latest.filter((m) => m.status !== "queued").length
        if (undecided === 0 && decided >= 3 * options.members) break
        log(`chaos: received sms ${got.sms} email ${got.email} wechat ${got.wechat} of ${options.members} each; decided ${decided}; ${total} in all`)
      }
      await sleep(1_000)
    }
    // late duplicates, if any, have a moment to arrive before counting
    await sleep(3_000)
    // every partition owned again and read to the end of the stream (a killed engine's are taken
    // back when it restarts, or by the others a lease time after it stopped renewing them)
    const settled = async () => {
      const states = await Promise.all(slots.map((slot) => fetch(`${base(slot)}/readyz`).then((r) => r.json() as Promise<Readiness>, () => null)))
      return allDrained(states)
    }
    const settleDeadline = Date.now() + 60_000
    while (!(await settled()) && Date.now() < settleDeadline) await sleep(500)
    log(`chaos: partitions settled at ${((Date.now() - started) / 1000).toFixed(1)} s`)

    // ---- ground truth
    let profileMismatches = 0
    for (const memberId of members) {
      const slot = slots[0] as Slot
      const body = (await fetch(`${base(slot)}/members/${memberId}`).then((r) => r.json(), () => null)) as { purchase?: { count: number; total: number } } | null
      const want = expectedPurchases.get(memberId)
      const got = body?.purchase
      if (want === undefined || got === undefined || got.count !== want.count || Math.abs(got.total - want.total) > 0.005) {
        profileMismatches++
        log(`chaos: member ${memberId} purchases want ${JSON.stringify(want)} got ${JSON.stringify(got ?? body)}`)
      }
    }
    const perMember = new Map<string, { sms: number; email: number; wechat: number }>()
    const bump = (memberId: string, channel: "sms" | "email" | "wechat") => {
      const counts = perMember.get(memberId) ?? { sms: 0, email: 0, wechat: 0 }
      counts[channel]++
      perMember.set(memberId, counts)
    }
    for (const m of twilio.received) if (m.body.startsWith("[chaos]")) bump(m.body.split(" ")[1] ?? "", "sms")
    for (const m of smtp.received) if ((m.parsed.subject ?? "").startsWith("[chaos]")) bump((m.parsed.subject ?? "").split(" ")[1] ?? "", "email")
    for (const m of wechat.received) {
      const value = m.data["thing1"]?.value ?? ""
      if (value.startsWith("[chaos]")) bump(value.split(" ")[1] ?? "", "wechat")
    }
    const statuses = await sqlAll<{ channel: string; status: string; reason: string; n: number }>(
      "SELECT channel, status, substring(reason, 1, 120) AS reason, count() AS n FROM messages FINAL WHERE journey_id = 'chaos-welcome' GROUP BY ALL ORDER BY n DESC"
    )
    for (const row of statuses) log(`chaos: messages ${row.channel} ${row.status} ${row.n} ${row.reason}`)
    const interruptedRows = await sqlAll<{ member_id: string; channel: string }>(
      "SELECT member_id, channel FROM messages FINAL WHERE journey_id = 'chaos-welcome' AND startsWith(reason, 'interrupted')"
    )
    const interrupted = new Set(interruptedRows.map((r) => `${r.member_id}:${r.channel}`))
    let receivedOnce = 0
    let missing = 0
    let duplicated = 0
    let interruptedMissing = 0
    for (const memberId of members) {
      const counts = perMember.get(memberId) ?? { sms: 0, email: 0, wechat: 0 }
      for (const channel of ["sms", "email", "wechat"] as const) {
        const n = counts[channel]
        if (n === 1) receivedOnce++
        else if (n > 1) {
          duplicated += n - 1
          log(`chaos: ${memberId} received ${n} ${channel} messages`)
        }
        else if (interrupted.has(`${memberId}:${channel}`)) interruptedMissing++
        else missing++
      }
    }
    // Every other message (the shipped journeys): none twice.
    const seen = new Map<string, number>()
    const count = (key: string) => seen.set(key, (seen.get(key) ?? 0) + 1)
    for (const m of twilio.received) if (!m.body.startsWith("[chaos]")) count(`sms|${m.to}|${m.body}`)
    for (const m of smtp.received) if (!(m.parsed.subject ?? "").startsWith("[chaos]")) count(`email|${m.parsed.messageId ?? ""}`)
    for (const m of wechat.received) if (!(m.data["thing1"]?.value ?? "").startsWith("[chaos]")) count(`wechat|${m.touser}|${m.template_id}|${JSON.stringify(m.data)}`)
    const otherMessages = [...seen.values()].reduce((a, b) => a + b, 0)
    const otherDuplicated = [...seen.values()].reduce((a, b) => a + (b - 1), 0)
    // Every wait fired once: the step after it ran once per enrollment (one row per run time).
    const runs = await sqlAll<{ enrollment_id: string; step_id: string; at: string }>(
      "SELECT DISTINCT enrollment_id, step_id, toString(at) AS at FROM journey_steps WHERE journey_id = 'chaos-welcome' AND step_id IN ('email-second', 'wechat-third')"
    )
    const times = new Map<string, Set<string>>()
    for (const r of runs) times.set(`${r.enrollment_id}:${r.step_id}`, (times.get(`${r.enrollment_id}:${r.step_id}`) ?? new Set()).add(r.at))
    const waitsFiredOnce = [...times.values()].filter((s) => s.size === 1).length
    const waitsFiredTwice = [...times.values()].filter((s) => s.size > 1).length

    // ---- graceful stop: SIGTERM drains and exits 0 within 10 s
    const stopStarted = Date.now()
    const codes = await Promise.all(
      slots.map(async (slot) => {
        signal(slot, "SIGTERM")
        const code = await Promise.race([slot.exited, sleep(15_000).then(() => "timeout" as const)])
        if (code === "timeout") {
          slot.child?.kill("SIGKILL")
          return null
        }
        return code ?? null
      })
    )
    const sigtermSeconds = (Date.now() - stopStarted) / 1000
    for (const slot of slots) slot.child = null

    const expectedMessages = 3 * options.members
    const ok =
      profileMismatches === 0 &&
      missing === 0 &&
      duplicated === 0 &&
      otherDuplicated === 0 &&
      waitsFiredTwice === 0 &&
      waitsFiredOnce === 2 * options.members &&
      unexpectedExits === 0 &&
      codes.every((c) => c === 0) &&
      (busySigterm === null || (busySigterm.code === 0 && busySigterm.seconds <= 10)) &&
      sigtermSeconds <= 10
    reportOut = {
      members: options.members,
      events: events.length,
      profileMismatches,
      expectedMessages,
      receivedOnce,
      missing,
      interrupted: interruptedMissing,
      duplicated,
      otherMessages,
      otherDuplicated,
      waitsExpected: 2 * options.members,
      waitsFiredOnce,
      waitsFiredTwice,
      kills,
      natsRestarts,
      natsPauses,
      unexpectedExits,
      busySigterm,
      sigtermExitCodes: codes,
      sigtermSeconds,
      seconds: (Date.now() - started) / 1000,
      ok
    }
    return reportOut
  } finally {
    for (const slot of slots) signal(slot, "SIGKILL")
    await publisher?.close().catch(() => undefined)
    await Promise.all([smtp.close(), twilio.close(), wechat.close()]).catch(() => undefined)
    await nats.stop()
  }
}

export const formatReport = (r: ChaosReport): string =>
  [
    `members ${r.members}, events ${r.events}, engines killed ${r.kills} times, NATS restarted ${r.natsRestarts} time(s), frozen ${r.natsPauses} time(s), ${r.seconds.toFixed(0)} s`,
    `engines that exited on their own: ${r.unexpectedExits}`,
    `events applied exactly once (profile totals): ${r.members - r.profileMismatches}/${r.members} members right, ${r.profileMismatches} wrong`,
    `chaos messages: expected ${r.expectedMessages}, received once ${r.receivedOnce}, missing ${r.missing}, duplicated ${r.duplicated}, interrupted (recorded, not resent) ${r.interrupted}`,
    `other journeys' messages: ${r.otherMessages} received, ${r.otherDuplicated} duplicated`,
    `waits: expected ${r.waitsExpected}, fired once ${r.waitsFiredOnce}, fired twice ${r.waitsFiredTwice}`,
    ...(r.busySigterm === null ? [] : [`SIGTERM while busy: exit ${r.busySigterm.code} in ${r.busySigterm.seconds.toFixed(1)} s, restarted`]),
    `SIGTERM at the end: exit codes ${r.sigtermExitCodes.join(", ")} in ${r.sigtermSeconds.toFixed(1)} s`,
    r.ok ? "PASS" : "FAIL"
  ].join("\n")
