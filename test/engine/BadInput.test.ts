import { jetstreamManager } from "@nats-io/jetstream"
import type { NatsConnection } from "@nats-io/transport-node"
import { writeFileSync } from "node:fs"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type EngineProcess, eventually, runCli, startEngine, tempDir } from "../support/engine.ts"
import { dropTopology, natsConnect, publishEvents, publishRaw, type TestTopology, uniqueTopology } from "../support/nats.ts"

const HOUR = 3_600_000
const ago = (ms: number) => new Date(Date.now() - ms).toISOString()
const encode = (text: string) => new TextEncoder().encode(text)
const event = (fields: Record<string, unknown>) => encode(JSON.stringify(fields))

/** One hostile message: where it goes, its bytes, and a phrase its refusal reason must contain. */
interface Bad {
  readonly marker: string
  readonly type: string
  readonly data: Uint8Array
  readonly phrase: string
}

const metric = (text: string, name: string): number => Number(new RegExp(`^${name} (\\d+)`, "m").exec(text)?.[1] ?? 0)

describe("bad input never stops the stream and is never silently dropped", () => {
  let topology: TestTopology
  let nc: NatsConnection
  let engine: EngineProcess
  const sent: Array<Bad> = []
  let bigPublishError: unknown

  const bad = (marker: string, type: string, phrase: string, data: Uint8Array): Bad => ({ marker, type, data, phrase })
  // Every bad purchase names ok-1 with a large amount: if any were applied, ok-1's total would show it.
  const badCases = (): ReadonlyArray<Bad> => [
    bad("bad-notjson", "purchase", "payload is not JSON", encode('{"id": "bad-notjson", oops')),
    bad("bad-utf8", "purchase", "not valid UTF-8", new Uint8Array([...encode('{"id":"bad-utf8","x":"'), 0xff, 0xfe, 0xc3, ...encode('"}')])),
    bad("bad-array", "purchase", "must be one JSON object", encode('["bad-array", {"type": "purchase"}]')),
    bad("bad-missing", "purchase", "memberId: is missing", event({ id: "bad-missing", type: "purchase", properties: { orderId: "x1", amount: 5000, currency: "CNY" } })),
    bad("bad-memberid", "purchase", "memberId: Expected string", event({ id: "bad-memberid", type: "purchase", memberId: 42, occurredAt: ago(HOUR), properties: { orderId: "x2", amount: 5000, currency: "CNY" } })),
    bad("bad-nooffset", "purchase", "with an offset", event({ id: "bad-nooffset", type: "purchase", memberId: "ok-1", occurredAt: "2026-01-05T10:00:00", properties: { orderId: "x3", amount: 5000, currency: "CNY" } })),
    // A purchase published on the refund subject.
    bad("bad-subject", "refund", "does not match subject", event({ id: "bad-subject", type: "purchase", memberId: "ok-1", occurredAt: ago(HOUR), properties: { orderId: "x4", amount: 5000, currency: "CNY" } })),
    bad("bad-future", "purchase", "in the future", event({ id: "bad-future", type: "purchase", memberId: "ok-1", occurredAt: new Date(Date.now() + HOUR).toISOString(), properties: { orderId: "x5", amount: 5000, currency: "CNY" } })),
    bad("bad-oversize", "purchase", "exceeds the limit", event({ id: "bad-oversize", type: "purchase", memberId: "ok-1", occurredAt: ago(HOUR), properties: { orderId: "x6", amount: 5000, currency: "CNY", note: "x".repeat(200_000) } })),
    bad("bad-amount", "purchase", "amount: Expected number", event({ id: "bad-amount", type: "purchase", memberId: "ok-1", occurredAt: ago(HOUR), properties: { orderId: "x7", amount: "5000", currency: "CNY" } })),
    bad("bad-granted", "consent.updated", "granted: Expected boolean", event({ id: "bad-granted", type: "consent.updated", memberId: "ok-2", occurredAt: ago(HOUR), properties: { channel: "sms", granted: "no" } })),
    bad("bad-balance", "points.changed", "balance: Expected number", event({ id: "bad-balance", type: "points.changed", memberId: "ok-2", occurredAt: ago(HOUR), properties: { delta: 10, balance: null } }))
  ]

  beforeAll(async () => {
    topology = uniqueTopology("badinput")
    nc = await natsConnect()
    engine = await startEngine(topology.env, "badinput")
    const valid = (id: string, type: string, memberId: string, properties: Record<string, unknown>) =>
      publishEvents(nc, topology, [{ id, type, memberId, occurredAt: ago(2 * HOUR), properties }])
    const cases = badCases()
    // Valid and bad interleaved, one at a time so the order in the stream is this order.
    await valid("ok-1-reg", "member.registered", "ok-1", { name: "One" })
    await valid("ok-2-reg", "member.registered", "ok-2", { consent: { sms: true } })
    for (const [i, c] of cases.entries()) {
      await publishRaw(nc, `${topology.subjectPrefix}.${c.type}`, c.data)
      sent.push(c)
      if (i === 2) await valid("ok-1-p1", "purchase", "ok-1", { orderId: "o1", amount: 100, currency: "CNY" })
      if (i === 5) await valid("ok-1-p2", "purchase", "ok-1", { orderId: "o2", amount: 250, currency: "CNY" })
      if (i === 8) await valid("ok-1-r2", "refund", "ok-1", { orderId: "o2", amount: 50 })
      if (i === 10) await valid("ok-2-pts", "points.changed", "ok-2", { delta: 120, balance: 120 })
    }
    await valid("ok-2-p1", "purchase", "ok-2", { orderId: "o9", amount: 999, currency: "CNY" })
    // NATS itself refuses a 2 MB message (max_payload 1 MB) before it reaches any stream.
    const huge = event({ id: "bad-huge", type: "purchase", memberId: "ok-1", occurredAt: ago(HOUR), properties: { orderId: "x8", amount: 8000, currency: "CNY", note: "y".repeat(2 * 1024 * 1024) } })
    bigPublishError = await publishRaw(nc, `${topology.subjectPrefix}.purchase`, huge).then(() => undefined, (error: unknown) => error)
  })

  afterAll(async () => {
    await engine?.kill("SIGTERM")
    await nc?.close()
    if (topology) await dropTopology(topology)
  })

  const metrics = async () => String((await engine.get("/metrics")).body)

  it("a 2 MB message is refused by NATS at the publisher with its max-payload error", () => {
    expect(bigPublishError).toBeInstanceOf(Error)
    expect(String((bigPublishError as Error).message)).toMatch(/max_payload size exceeded/)
  })

  it("every bad message is counted as rejected, and the valid events behind them are applied", async () => {
    await eventually(async () => metric(await metrics(), "memberflow_events_rejected_total") >= sent.length, 20_000, "the rejections")
    // The last valid event published is ok-2's purchase: once it shows, everything before it was taken.
    await eventually(async () => ((await engine.get("/members/ok-2")).body as { purchase?: { total: number } }).purchase?.total === 999, 20_000, "the valid events")
    const text = await metrics()
    expect(metric(text, "memberflow_events_rejected_total")).toBe(sent.length)
    // Seven valid events plus what the engine derives from them (tag.added new-member, …).
    expect(metric(text, "memberflow_events_applied_total")).toBeGreaterThanOrEqual(7)
    expect(metric(text, "memberflow_events_received_total")).toBe(
      sent.length + metric(text, "memberflow_events_applied_total") + metric(text, "memberflow_events_duplicate_total")
    )

    const one = (await engine.get("/members/ok-1")).body as { purchase: { count: number; total: number } }
    expect(one.purchase).toMatchObject({ count: 2, total: 300 })
    const two = (await engine.get("/members/ok-2")).body as {
      purchase: { count: number; total: number }
      consent: Record<string, boolean>
      points: { balance: number }
    }
    expect(two.purchase).toMatchObject({ count: 1, total: 999 })
    expect(two.consent["sms"]).toBe(true)
    expect(two.points.balance).toBe(120)
  })

  it("each rejection is in rejected_events with a reason saying what is wrong and the raw bytes", async () => {
    await eventually(async () => {
      const rows = await engine.sql<{ n: number }>("SELECT count() AS n FROM rejected_events")
      return Number(rows[0]?.n) >= sent.length
    }, 20_000, "rejected_events rows")
    const rows = await engine.sql<{ rejection_id: string; subject: string; raw: string; reason: string }>(
      "SELECT rejection_id, subject, raw, reason FROM rejected_events FINAL"
    )
    expect(rows).toHaveLength(sent.length)
    const lossy = new TextDecoder("utf-8")
    for (const c of sent) {
      const row = rows.find((r) => r.raw.includes(c.marker))
      expect(row, c.marker).toBeDefined()
      expect(row?.reason, c.marker).toContain(c.phrase)
      expect(row?.subject, c.marker).toBe(`${topology.subjectPrefix}.${c.type}`)
      // Invalid UTF-8 can only be stored as text with replacement characters; everything else verbatim.
      expect(row?.raw, c.marker).toBe(lossy.decode(c.data))
    }
    expect(rows.find((r) => r.raw.includes("bad-oversize"))?.raw.length).toBeGreaterThan(200_000)
  })

  it("each rejection is dead-lettered with its exact bytes and the reason in a header", async () => {
    const jsm = await jetstreamManager(nc)
    const stream = `${topology.stream}_DEADLETTER`
    await eventually(async () => (await jsm.streams.info(stream)).state.messages >= sent.length, 20_000, "dead letters")
    const info = await jsm.streams.info(stream)
    expect(info.state.messages).toBe(sent.length)
    const letters = []
    for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
      const msg = await jsm.streams.getMessage(stream, { seq })
      if (msg !== null) letters.push(msg)
    }
    for (const c of sent) {
      const letter = letters.find((m) => Buffer.from(m.data).equals(Buffer.from(c.data)))
      expect(letter, c.marker).toBeDefined()
      expect(letter?.subject).toBe(`deadletter.${topology.subjectPrefix}`)
      expect(letter?.header.get("Memberflow-Reason"), c.marker).toContain(c.phrase)
      expect(letter?.header.get("Memberflow-Subject"), c.marker).toBe(`${topology.subjectPrefix}.${c.type}`)
    }
  })

  it("`memberflow publish` reports a 2 MB line as refused and exits non-zero, publishing the rest", async () => {
    const line = (id: string, amount: number, extra: Record<string, unknown> = {}) =>
      JSON.stringify({ id, type: "purchase", memberId: "ok-3", occurredAt: ago(HOUR), properties: { orderId: id, amount, currency: "CNY", ...extra } })
    const file = join(tempDir("badinput-file"), "events.jsonl")
    writeFileSync(file, [line("f-1", 40), line("f-huge", 8000, { note: "z".repeat(2 * 1024 * 1024) }), line("f-3", 60)].join("\n") + "\n")
    const result = await runCli(["publish", file], topology.env)
    expect(result.code).not.toBe(0)
    expect(result.stdout).toContain("published 2 events")
    expect(result.stdout).toContain("1 refused")
    expect(result.stderr).toContain(`${file}:2: refused by NATS`)
    expect(result.stderr).toMatch(/max_payload size exceeded/)
    await eventually(async () => ((await engine.get("/members/ok-3")).body as { purchase?: { total: number } }).purchase?.total === 100, 20_000, "ok-3's two purchases")
    // The refused line never reached the stream, so nothing more was rejected.
    expect(metric(await metrics(), "memberflow_events_rejected_total")).toBe(sent.length)
  })
})
