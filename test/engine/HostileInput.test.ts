import type { NatsConnection } from "@nats-io/transport-node"
import fc from "fast-check"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { maskRaw } from "../../engine/member/Mask.ts"
import { type EngineProcess, engineState, eventually, startEngine } from "../support/engine.ts"
import { dropTopology, natsConnect, publishRaw, type TestTopology, uniqueTopology } from "../support/nats.ts"
import { envelopeCase, hostileBytes, hostileValue, natsSafe, standardCase, toJson } from "./ingest/hostile.ts"

/** One published message, and whether events.md says the engine applies it (then under this id). */
interface Sent {
  readonly subject: string
  readonly data: Uint8Array
  readonly appliedAs: string | null
}

const SEED = 20_260_606
const encode = (text: string) => new TextEncoder().encode(text)
const lossy = new TextDecoder("utf-8")
const metric = (text: string, name: string): number => Number(new RegExp(`^${name} (\\d+)`, "m").exec(text)?.[1] ?? 0)

/** Messages that once stopped or stalled the engine, every run, each with its fate. */
const knownNasty = (prefix: string, now: number): Array<Sent> => {
  const at = new Date(now - 3_600_000).toISOString()
  const message = (type: string, text: string, appliedAs: string | null): Sent => ({ subject: `${prefix}.${type}`, data: encode(text), appliedAs })
  const envelope = (id: string, type: string, properties: string, extra = "") =>
    `{"id":"${id}","type":"${type}","memberId":"nasty-member","occurredAt":"${at}","properties":${properties}${extra}}`
  const protoKeys = '{"__proto__":"a","constructor":"b","hasOwnProperty":"c","toString":"d","valueOf":"e","phone":"+8613812345678"}'
  return [
    // 5,000 levels: parsed fine, then overflowed the stack of JSON.stringify (the engine exited, again after each restart).
    message("deep.thing", envelope("nasty-deep", "deep.thing", `{"x":${"[".repeat(5_000)}${"]".repeat(5_000)}}`), null),
    // Keys that are Object.prototype's members were looked up as contact-point masks and called.
    message("member.registered", envelope("nasty-proto-1", "member.registered", protoKeys), "nasty-proto-1"),
    message("custom.thing", envelope("nasty-proto-2", "custom.thing", protoKeys), "nasty-proto-2"),
    // Decimal(18, 2) cannot hold it: the insert failed, was retried forever, and nothing was acked after it.
    message("purchase", envelope("nasty-big", "purchase", '{"orderId":"b1","amount":1e300,"currency":"CNY"}'), null),
    message("purchase", envelope("nasty-large", "purchase", '{"orderId":"b2","amount":999999999999.99,"currency":"CNY"}'), "nasty-large"),
    // V8 names an astral character by half of it in its JSON error: a reason ClickHouse refused.
    message("custom.thing", "\u{4A7EE}\u{1022DF} not json", null),
    // Unpaired surrogates (JSON escapes) in a value, a key and the source: ClickHouse refuses them.
    message("custom.thing", envelope("nasty-lone-1", "custom.thing", '{"note":"a\\ud800b"}'), null),
    message("custom.thing", envelope("nasty-lone-2", "custom.thing", '{"\\udbff":1}'), null),
    message("custom.thing", envelope("nasty-lone-3", "custom.thing", "{}", ',"source":"pos\\ud83d"'), null),
    message("tags.updated", envelope("nasty-lone-4", "tags.updated", '{"add":["vip\\ud800"]}'), null)
  ]
}

/** Multiset of `subject raw` pairs. */
const tally = (pairs: ReadonlyArray<readonly [string, string]>): Map<string, number> => {
  const counts = new Map<string, number>()
  for (const [subject, raw] of pairs) counts.set(`${subject}\u0001${raw}`, (counts.get(`${subject}\u0001${raw}`) ?? 0) + 1)
  return counts
}

describe("a few hundred hostile messages mixed with valid events", () => {
  let topology: TestTopology
  let nc: NatsConnection
  let engine: EngineProcess
  const sent: Array<Sent> = []
  const steady = "steady-member"

  beforeAll(async () => {
    topology = uniqueTopology("hostile")
    nc = await natsConnect()
    engine = await startEngine(topology.env, "hostile")
    const prefix = topology.subjectPrefix
    const now = Date.now()
    const token = fc.stringMatching(/^[a-z0-9_]{1,12}(\.[a-z0-9_]{1,8}){0,2}$/)
    const raws = fc.sample(fc.tuple(token, hostileBytes), { numRuns: 60, seed: SEED })
    const values = fc.sample(fc.tuple(token, hostileValue), { numRuns: 60, seed: SEED + 1 })
    const cases = [
      ...fc.sample(envelopeCase(prefix, now), { numRuns: 100, seed: SEED + 2 }),
      ...fc.sample(standardCase(prefix, now), { numRuns: 100, seed: SEED + 3 })
    ]
    const messages: Array<Sent> = []
    for (const [tok, data] of raws) messages.push({ subject: `${prefix}.${tok}`, data, appliedAs: null })
    for (const [tok, value] of values) messages.push({ subject: `${prefix}.${tok}`, data: encode(toJson(value)), appliedAs: null })
    for (const [i, c] of cases.entries()) {
      // NATS itself refuses subjects with spaces or empty tokens, and the stream only holds `<prefix>.>`.
      const subject = natsSafe(c.subject) && c.subject.startsWith(`${prefix}.`) ? c.subject : `${prefix}.unparsed`
      const accept = c.fieldsOk && subject === `${prefix}.${String(c.envelope["type"])}`
      // Valid ids made unique, so that every accepted event is a different event.
      const envelope = c.idOk ? { ...c.envelope, id: `hostile-${i}` } : c.envelope
      messages.push({ subject, data: encode(toJson(envelope)), appliedAs: accept ? `hostile-${i}` : null })
    }
    // Interleave the kinds (a fixed shuffle), with a member's purchases threaded through.
    const order = fc.sample(fc.shuffledSubarray(messages.map((_, i) => i), { minLength: messages.length }), { numRuns: 1, seed: SEED + 4 })[0] ?? []
    const ago = new Date(now - 3_600_000).toISOString()
    const valid = (id: string, type: string, properties: Record<string, unknown>): Sent => ({
      subject: `${prefix}.${type}`,
      data: encode(JSON.stringify({ id, type, memberId: steady, occurredAt: ago, properties })),
      appliedAs: id
    })
    sent.push(valid("steady-reg", "member.registered", { name: "Steady", consent: { email: true } }))
    sent.push(...knownNasty(prefix, now))
    for (const [n, index] of order.entries()) {
      const message = messages[index]
      if (message !== undefined) sent.push(message)
      if (n % 16 === 15) sent.push(valid(`steady-p${n}`, "purchase", { orderId: `sp${n}`, amount: 10, currency: "CNY" }))
    }
    sent.push(valid("steady-last", "purchase", { orderId: "sp-last", amount: 10, currency: "CNY" }))
    for (const message of sent) await publishRaw(nc, message.subject, message.data)
  }, 120_000)

  afterAll(async () => {
    await engine?.kill("SIGTERM")
    await nc?.close()
    if (topology) await dropTopology(topology)
  })

  const applied = () => sent.filter((m) => m.appliedAs !== null)
  const refused = () => sent.filter((m) => m.appliedAs === null)

  it("the generated mix holds plenty of both kinds", () => {
    expect(sent.length).toBeGreaterThanOrEqual(300)
    expect(applied().length).toBeGreaterThan(60)
    expect(refused().length).toBeGreaterThan(150)
  })

  it("every message is accounted for: the valid ones are applied, each of the others is in rejected_events with a reason", async () => {
    const purchases = applied().filter((m) => m.appliedAs?.startsWith("steady-p") || m.appliedAs === "steady-last").length
    await eventually(
      async () => ((await engine.get(`/members/${steady}`)).body as { purchase?: { count: number } }).purchase?.count === purchases,
      60_000,
      "the steady member's purchases",
      () => engineState(engine)
    )
    // Once stalled in CI for 30 s after the purchases were in (not seen again here): the engine's
    // warnings and metrics go with the time-out, and the wait is as long as the one above.
    const count = async (query: string) => Number((await engine.sql<{ n: number }>(query))[0]?.n)
    const rejectedRows = "SELECT count() AS n FROM rejected_events FINAL"
    const eventRows = "SELECT count() AS n FROM events FINAL WHERE source != 'memberflow'"
    const explain = async () => `rejected_events ${await count(rejectedRows)} of ${refused().length}, events ${await count(eventRows)} of ${applied().length}\n${await engineState(engine)}`
    await eventually(async () => (await count(rejectedRows)) >= refused().length, 60_000, "rejected_events", explain)
    await eventually(async () => (await count(eventRows)) >= applied().length, 60_000, "events", explain)

    const events = await engine.sql<{ event_id: string }>("SELECT event_id FROM events FINAL WHERE source != 'memberflow'")
    expect(events.map((e) => e.event_id).sort()).toEqual(applied().map((m) => m.appliedAs).sort())

    const rows = await engine.sql<{ subject: string; raw: string; reason: string }>("SELECT subject, raw, reason FROM rejected_events FINAL")
    expect(rows.length).toBe(sent.length - applied().length)
    // raw: the bytes as text, with contact points masked (Mask.ts; Security.test.ts checks that part)
    expect(tally(rows.map((r) => [r.subject, r.raw]))).toEqual(tally(refused().map((m) => [m.subject, maskRaw(lossy.decode(m.data))])))
    for (const row of rows) expect(row.reason.trim().length, row.raw.slice(0, 200)).toBeGreaterThan(0)

    const metrics = String((await engine.get("/metrics")).body)
    expect(metric(metrics, "memberflow_events_rejected_total")).toBe(refused().length)
    expect(((await engine.get(`/members/${steady}`)).body as { purchase: { total: number } }).purchase.total).toBe(10 * purchases)
  })

  it("a refused payload of 200 KB (over the event limit, under NATS's) is recorded promptly, the engine answering meanwhile", async () => {
    // One long run without '@' or digits: the worst case for scanning free text for contact points.
    const big = encode(`${"a".repeat(200_000)} not an event`)
    const started = Date.now()
    await publishRaw(nc, `${topology.subjectPrefix}.bulk`, big)
    let slowest = 0
    await eventually(
      async () => {
        const asked = Date.now()
        const health = await engine.get("/healthz")
        slowest = Math.max(slowest, Date.now() - asked)
        if (health.status !== 200) return false
        const rows = await engine.sql<{ n: number }>(`SELECT count() AS n FROM rejected_events FINAL WHERE subject = '${topology.subjectPrefix}.bulk'`)
        return Number(rows[0]?.n) === 1
      },
      20_000,
      "the 200 KB refusal"
    )
    expect(Date.now() - started).toBeLessThan(20_000)
    expect(slowest, "the longest /healthz answer while it was processed, in ms").toBeLessThan(5_000)
    const [row] = await engine.sql<{ reason: string }>(`SELECT reason FROM rejected_events FINAL WHERE subject = '${topology.subjectPrefix}.bulk'`)
    expect(row?.reason).toBe(`payload of ${big.byteLength} bytes exceeds the limit of ${64 * 1024} bytes`)
  })

  it("the engine is still up and taking events afterwards", async () => {
    expect(engine.child.exitCode, engine.output().split("\n").filter((line) => line.includes('"ERROR"')).join("\n").slice(-2_000)).toBeNull()
    expect((await engine.get("/healthz")).status).toBe(200)
    expect((await engine.get("/readyz")).status).toBe(200)
    expect(engine.output()).not.toContain("ingest stopped")
    const after = { id: "after-storm", type: "purchase", memberId: steady, occurredAt: new Date().toISOString(), properties: { orderId: "after", amount: 1, currency: "CNY" } }
    const before = ((await engine.get(`/members/${steady}`)).body as { purchase: { count: number } }).purchase.count
    await publishRaw(nc, `${topology.subjectPrefix}.purchase`, JSON.stringify(after))
    await eventually(async () => ((await engine.get(`/members/${steady}`)).body as { purchase: { count: number } }).purchase.count === before + 1, 20_000, "the event after the storm")
  })
})
