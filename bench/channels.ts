/**
 * npm run bench:channels — message hand-over through `memberflow run` in live mode, against the
 * local provider servers of test/support (Twilio, SMTP, WeChat) started in this process.
 *
 * BENCH_MEMBERS members (default 2,000) are registered with a phone, an email address and a WeChat
 * openid; then one `bench.send` event per member enters three transactional journeys, one send
 * step each (sms, email, WeChat template message): BENCH_MEMBERS × 3 messages. Caps, quiet hours
 * and consent do not apply to transactional journeys; the rate limits are raised to 100,000/s.
 * Run twice, each on a fresh engine, topology and servers: without provider failures, then with
 * BENCH_FAIL_RATE (default 0.2) of the hand-overs refused as transient on every channel (Twilio 503,
 * SMTP 451, WeChat -1), which the delivery worker retries with its backoff.
 *
 * Reports per channel and overall: messages/s from the first message queued to the last handed
 * over (the `messages` table), the time to drain, what each server received against what was
 * expected — counted by the member id the templates put in each message — the final statuses,
 * provider retries (/metrics) and the engine's peak RSS. Exits 1 when a message was lost or
 * duplicated.
 */
import { jetstream, jetstreamManager } from "@nats-io/jetstream"
import { mkdirSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { parse } from "yaml"
import { messagesConsumer } from "../engine/Topology.ts"
import { ROOT, startEngine, tempDir } from "../test/support/engine.ts"
import { dropTopology, natsConnect, uniqueTopology } from "../test/support/nats.ts"
import { startSmtpServer } from "../test/support/smtp.ts"
import { startTwilioServer } from "../test/support/twilio.ts"
import { startWechatServer } from "../test/support/wechat.ts"

Error.stackTraceLimit = 0

const knob = (name: string, fallback: number, valid: (n: number) => boolean, what: string): number => {
  const raw = process.env[name]
  const value = raw === undefined || raw.trim() === "" ? fallback : Number(raw)
  if (!valid(value)) {
    process.stderr.write(`${name} must be ${what}, got "${raw}"\n`)
    process.exit(2)
  }
  return value
}
const MEMBERS = knob("BENCH_MEMBERS", 2_000, (n) => Number.isInteger(n) && n > 0, "a positive integer")
const FAIL_RATE = knob("BENCH_FAIL_RATE", 0.2, (n) => n >= 0 && n < 1, "a share from 0 to below 1, e.g. 0.2")
const RATE_LIMIT = "100000/s"
/** No progress for this long means something is stuck: longer than the largest backoff (60 s) plus the ack wait (30 s). */
const STALL_MS = 180_000

const CHANNELS = ["sms", "email", "wechat"] as const
type BenchChannel = (typeof CHANNELS)[number]
const log = (line: string) => process.stdout.write(`${line}\n`)
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const fmt = (n: number) => Math.round(n).toLocaleString("en-US")

/** The shipped program.yaml without caps or quiet hours and with high rate limits, and one journey per channel. */
const benchJourneys = (): string => {
  const dir = tempDir("benchc-journeys")
  let program = readFileSync(join(ROOT, "journeys/program.yaml"), "utf8")
  const edit = (pattern: RegExp, to: string) => {
    if (!pattern.test(program)) throw new Error(`program.yaml has no ${pattern} to edit`)
    program = program.replace(pattern, to)
  }
  edit(/^ {2}frequencyCaps:.*\n(?: {4}- .*\n)*/m, "  frequencyCaps: []\n")
  edit(/^ {2}quietHours:.*\n/m, "")
  edit(/^ {2}rateLimits:.*\n/m, `  rateLimits: { sms: ${RATE_LIMIT}, email: ${RATE_LIMIT}, wechat: ${RATE_LIMIT} }\n`)
  const policies = (parse(program) as { policies?: Record<string, unknown> }).policies ?? {}
  if (JSON.stringify(policies["frequencyCaps"]) !== "[]" || "quietHours" in policies) throw new Error("program.yaml edit left caps or quiet hours")
  writeFileSync(join(dir, "program.yaml"), program)
  for (const channel of CHANNELS) {
    mkdirSync(join(dir, "templates", channel), { recursive: true })
    writeFileSync(
      join(dir, `bench-${channel}.yaml`),
      `id: bench-${channel}\nname: bench ${channel}\nstatus: active\ncategory: transactional\ntrigger: { event: { type: bench.send } }\nsteps:\n  - id: send\n    send: { channel: ${channel}, template: bench }\n`
    )
  }
  // Each message carries the member id (the trigger's `ref`): what the servers' receipts are counted by.
  writeFileSync(join(dir, "templates/sms/bench.hbs"), "bench {{event.ref}}\n")
  writeFileSync(join(dir, "templates/email/bench.hbs"), '---\nsubject: "bench {{event.ref}}"\n---\n<p>bench {{event.ref}}</p>\n')
  writeFileSync(join(dir, "templates/wechat/bench.yaml"), 'kind: template\ntemplateId: benchTemplate0001\ndata:\n  keyword1: "{{event.ref}}"\n')
  return dir
}

interface ChannelResult {
  readonly channel: BenchChannel | "all"
  readonly expected: number
  readonly received: number
  readonly unique: number
  readonly stray: number
  readonly sent: number
  readonly spanMs: number
  readonly queueMs: number
  readonly retries: number
  /** mean time the provider took to answer a hand-over (memberflow_provider_seconds) */
  readonly providerMs: number
}

interface RunResult {
  readonly label: string
  readonly failRate: number
  readonly channels: ReadonlyArray<ChannelResult>
  readonly statuses: string
  readonly drainMs: number
  readonly peakRssMb: number
  readonly logProblems: ReadonlyArray<string>
}

const run = async (label: string, failRate: number, journeysDir: string): Promise<RunResult> => {
  const topology = uniqueTopology("benchc")
  const accountSid = `AC${"0123456789abcdef".repeat(2)}`
  const twilio = await startTwilioServer({ accountSid, authToken: "bench-auth-token" })
  const smtp = await startSmtpServer()
  const wechat = await startWechatServer({ appId: "wxbench0000000001", appSecret: "bench-app-secret" })
  if (failRate > 0) {
    twilio.failRandomly(failRate, 503)
    smtp.failRandomly(failRate, 451)
    wechat.failRandomly(failRate, -1)
  }
  const nc = await natsConnect()
  const engine = await startEngine(
    {
      ...topology.env,
      JOURNEYS_DIR: journeysDir,
      MEMBERFLOW_DATA_DIR: tempDir("benchc"),
      CHANNELS_MODE: "live",
      TWILIO_ACCOUNT_SID: accountSid,
      TWILIO_AUTH_TOKEN: twilio.authToken,
      TWILIO_FROM: "+15005550006",
      TWILIO_API_URL: twilio.url,
      SMTP_URL: smtp.url,
      EMAIL_FROM: "bench@memberflow.example",
      WECHAT_APP_ID: "wxbench0000000001",
      WECHAT_APP_SECRET: "bench-app-secret",
      WECHAT_API_URL: wechat.url
    },
    "benchc"
  )
  const metric = async (name: string): Promise<Map<string, number>> => {
    const text = String((await engine.get("/metrics")).body)
    const found = new Map<string, number>()
    for (const m of text.matchAll(new RegExp(`^${name}(?:\\{channel="(\\w+)"[^}]*\\})? (\\S+)$`, "gm"))) {
      found.set(m[1] ?? "", (found.get(m[1] ?? "") ?? 0) + Number(m[2]))
    }
    return found
  }
  const journeyIds = CHANNELS.map((c) => `'bench-${c}'`).join(", ")
  try {
    log(`\n== ${label}: ${fmt(MEMBERS)} members × 3 channels = ${fmt(MEMBERS * 3)} messages, stream ${topology.stream}`)
    const js = jetstream(nc)
    const publishAll = async (make: (i: number) => { id: string; type: string; memberId: string; properties: Record<string, unknown> }) => {
      const pending = new Set<Promise<unknown>>()
      for (let i = 0; i < MEMBERS; i++) {
        const event = { ...make(i), occurredAt: new Date().toISOString() }
        const p: Promise<unknown> = js.publish(`${topology.subjectPrefix}.${event.type}`, JSON.stringify(event), { msgID: event.id }).then(() => pending.delete(p))
        pending.add(p)
        if (pending.size >= 1000) await Promise.race(pending)
      }
      await Promise.all(pending)
    }
    const memberId = (i: number) => `cm${i}`
    // Registration first, not measured: the members exist with their contact points before the sends.
    await publishAll((i) => ({
      id: `reg-${i}`,
      type: "member.registered",
      memberId: memberId(i),
      properties: { name: `Member ${i}`, phone: `+86139${String(i).padStart(8, "0")}`, email: `${memberId(i)}@bench.example`, wechatOpenId: `o-bench-${memberId(i)}` }
    }))
    const r0 = performance.now()
    while (((await metric("memberflow_events_applied_total")).get("") ?? 0) < MEMBERS) {
      if (performance.now() - r0 > 10 * 60_000) throw new Error("registrations not applied in 10 minutes")
      await sleep(500)
    }
    log(`registered ${fmt(MEMBERS)} members in ${((performance.now() - r0) / 1000).toFixed(1)} s`)

    const t0 = performance.now()
    await publishAll((i) => ({ id: `send-${i}`, type: "bench.send", memberId: memberId(i), properties: { ref: memberId(i) } }))
    const jsm = await jetstreamManager(nc)
    const expectedTotal = MEMBERS * CHANNELS.length
    let lastDone = -1
    let lastChange = performance.now()
    let lastLog = 0
    for (;;) {
      const [progress] = await engine.sql<{ done: number; total: number }>(
        `SELECT countIf(status != 'queued') AS done, count() AS total FROM messages FINAL WHERE journey_id IN (${journeyIds})`
      )
      const done = Number(progress?.done ?? 0)
      const infos = await Promise.all(CHANNELS.map((channel) => jsm.consumers.info(`${topology.stream}_MESSAGES`, messagesConsumer(channel))))
      const info = { num_pending: infos.reduce((n, i) => n + i.num_pending, 0), num_ack_pending: infos.reduce((n, i) => n + i.num_ack_pending, 0) }
      if (done >= expectedTotal && info.num_pending === 0 && info.num_ack_pending === 0) break
      const now = performance.now()
      if (done !== lastDone) [lastDone, lastChange] = [done, now]
      if (now - lastLog >= 5_000) {
        lastLog = now
        log(`  ${((now - t0) / 1000).toFixed(0)} s: ${fmt(Number(progress?.total ?? 0))} recorded, ${fmt(done)} decided; received sms ${fmt(twilio.received.length)}, email ${fmt(smtp.received.length)}, wechat ${fmt(wechat.received.length)}; ${info.num_pending + info.num_ack_pending} requests waiting`)
      }
      if (now - lastChange > STALL_MS) {
        log(`  no progress for ${STALL_MS / 1000} s: stopping with ${fmt(done)} of ${fmt(expectedTotal)} decided`)
        break
      }
      await sleep(1_000)
    }
    const drainMs = performance.now() - t0
    // A late duplicate (a redelivered request handed over again) would land shortly after: give it time.
    await sleep(3_000)

    const markers: Record<BenchChannel, Array<string>> = {
      sms: twilio.received.map((m) => /^bench (\S+)/.exec(m.body)?.[1] ?? "?"),
      email: smtp.received.map((m) => /^bench (\S+)/.exec(m.parsed.subject ?? "")?.[1] ?? "?"),
      wechat: wechat.received.map((m) => m.data["keyword1"]?.value ?? "?")
    }
    const expected = new Set(Array.from({ length: MEMBERS }, (_, i) => memberId(i)))
    const timing = await engine.sql<{ channel: string; first: string; lastQueued: string; lastSent: string; sent: string }>(
      `SELECT channel,
              toUnixTimestamp64Milli(min(created_at)) AS first,
              toUnixTimestamp64Milli(max(created_at)) AS lastQueued,
              toUnixTimestamp64Milli(maxIf(updated_at, status = 'sent')) AS lastSent,
              countIf(status = 'sent') AS sent
       FROM messages FINAL WHERE journey_id IN (${journeyIds}) GROUP BY channel`
    )
    const statusRows = await engine.sql<{ channel: string; status: string; n: string }>(
      `SELECT channel, status, count() AS n FROM messages FINAL WHERE journey_id IN (${journeyIds}) GROUP BY channel, status ORDER BY channel, status`
    )
    const reasons = await engine.sql<{ reason: string; n: string }>(
      `SELECT reason, count() AS n FROM messages FINAL WHERE journey_id IN (${journeyIds}) AND status NOT IN ('sent', 'delivered') GROUP BY reason ORDER BY n DESC LIMIT 5`
    )
    const retries = await metric("memberflow_provider_retries_total")
    const providerSum = await metric("memberflow_provider_seconds_sum")
    const providerCount = await metric("memberflow_provider_seconds_count")
    const providerMs = (channel: string) => ((providerSum.get(channel) ?? 0) / Math.max(providerCount.get(channel) ?? 0, 1)) * 1000
    const status = readFileSync(`/proc/${engine.child.pid}/status`, "utf8")
    const peakRssMb = Number(/^VmHWM:\s+(\d+)/m.exec(status)?.[1] ?? 0) / 1024

    const perChannel = CHANNELS.map((channel): ChannelResult & { first: number; lastQueued: number; lastSent: number } => {
      const got = markers[channel]
      const unique = new Set(got)
      const t = timing.find((row) => row.channel === channel)
      const first = Number(t?.first ?? 0)
      const lastSent = Number(t?.lastSent ?? 0)
      return {
        channel,
        expected: MEMBERS,
        received: got.length,
        unique: [...unique].filter((m) => expected.has(m)).length,
        stray: [...unique].filter((m) => !expected.has(m)).length,
        sent: Number(t?.sent ?? 0),
        first,
        lastQueued: Number(t?.lastQueued ?? 0),
        lastSent,
        spanMs: Math.max(lastSent - first, 1),
        queueMs: Number(t?.lastQueued ?? 0) - first,
        retries: retries.get(channel) ?? 0,
        providerMs: providerMs(channel)
      }
    })
    const first = Math.min(...perChannel.map((c) => c.first))
    const all: ChannelResult = {
      channel: "all",
      expected: expectedTotal,
      received: perChannel.reduce((s, c) => s + c.received, 0),
      unique: perChannel.reduce((s, c) => s + c.unique, 0),
      stray: perChannel.reduce((s, c) => s + c.stray, 0),
      sent: perChannel.reduce((s, c) => s + c.sent, 0),
      spanMs: Math.max(Math.max(...perChannel.map((c) => c.lastSent)) - first, 1),
      queueMs: Math.max(...perChannel.map((c) => c.lastQueued)) - first,
      retries: perChannel.reduce((s, c) => s + c.retries, 0),
      providerMs: providerMs("")
    }
    const logProblems = engine
      .output()
      .split("\n")
      .filter((line) => /"logLevel":"(WARN|ERROR|FATAL)"/.test(line))
    return {
      label,
      failRate,
      channels: [...perChannel, all],
      statuses: statusRows.map((r) => `${r.channel} ${r.status} ${fmt(Number(r.n))}`).join(", ") +
        (reasons.length === 0 ? "" : `; not sent: ${reasons.map((r) => `${fmt(Number(r.n))}× "${r.reason}"`).join(", ")}`),
      drainMs,
      peakRssMb,
      logProblems
    }
  } finally {
    await engine.kill("SIGTERM")
    await nc.close()
    await dropTopology(topology)
    await Promise.all([twilio.close(), smtp.close(), wechat.close()])
  }
}

const pad = (cells: ReadonlyArray<string>, widths: ReadonlyArray<number>) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join("  ")

const report = (r: RunResult): boolean => {
  const head = ["channel", "expected", "received", "unique", "LOST", "DUPLICATED", "sent", "queued over", "first queued→last sent", "msgs/s", "retries", "provider ms"]
  const widths = head.map((h) => Math.max(h.length, 9))
  log(`\n${r.label} (provider failure rate ${Math.round(r.failRate * 100)}%):`)
  log(pad(head, widths))
  let clean = true
  for (const c of r.channels) {
    const lost = c.expected - c.unique
    const duplicated = c.received - c.unique - c.stray
    if (lost !== 0 || duplicated !== 0 || c.stray !== 0) clean = false
    log(pad([c.channel, fmt(c.expected), fmt(c.received), fmt(c.unique), fmt(lost), fmt(duplicated), fmt(c.sent), `${(c.queueMs / 1000).toFixed(1)} s`, `${(c.spanMs / 1000).toFixed(1)} s`, fmt((c.sent / c.spanMs) * 1000), fmt(c.retries), c.channel === "all" ? "" : c.providerMs.toFixed(1)], widths))
    if (c.stray !== 0) log(`  ${c.channel}: ${c.stray} received messages name no expected member`)
  }
  log(`time to drain (first trigger published → every message decided, the request stream empty): ${(r.drainMs / 1000).toFixed(1)} s`)
  log(`messages table (FINAL): ${r.statuses}`)
  log(`engine peak RSS (VmHWM): ${r.peakRssMb.toFixed(0)} MB`)
  const kinds = new Map<string, number>()
  for (const line of r.logProblems) {
    const message = /"message":("(?:[^"\\]|\\.)*")/.exec(line)?.[1] ?? line.slice(0, 120)
    kinds.set(message, (kinds.get(message) ?? 0) + 1)
  }
  log(`engine warnings/errors logged: ${r.logProblems.length}${[...kinds].slice(0, 3).map(([m, n]) => `; ${n}× ${m}`).join("")}`)
  return clean
}

const main = async () => {
  log(`memberflow channels benchmark: ${fmt(MEMBERS)} members, ${fmt(MEMBERS * 3)} messages per run, rate limits ${RATE_LIMIT} per channel, engine CHANNELS_MODE=live`)
  const journeysDir = benchJourneys()
  const runs = [await run("run 1, no provider failures", 0, journeysDir)]
  if (FAIL_RATE > 0) runs.push(await run(`run 2, ${Math.round(FAIL_RATE * 100)}% transient provider failures`, FAIL_RATE, journeysDir))
  log("\n==================== summary ====================")
  const clean = runs.map(report).every(Boolean)
  log(clean ? "\nOK: nothing lost, nothing duplicated" : "\nFAILED: messages were lost or duplicated (see LOST / DUPLICATED)")
  if (!clean) process.exitCode = 1
}

main().catch((error) => {
  process.stderr.write(`${error instanceof Error ? error.stack ?? error.message : String(error)}\n`)
  process.exitCode = 1
})
