import { jetstreamManager } from "@nats-io/jetstream"
import { type KV, Kvm } from "@nats-io/kv"
import type { NatsConnection } from "@nats-io/transport-node"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { memberKey } from "../../engine/MemberStore.ts"
import { type EngineProcess, eventually, metricOf, runCli, startEngine } from "../support/engine.ts"
import { dropTopology, natsConnect, publishEvents, type TestTopology, uniqueTopology } from "../support/nats.ts"

const HOUR = 3_600_000
const ago = (ms: number) => new Date(Date.now() - ms).toISOString()

/**
 * A member whose value in the members bucket cannot be made a state (damaged, or written there by
 * something else) holds up nothing: its events are refused with the reason and dead-lettered, the
 * other members' events flow on, and nothing is written over the value. Before, the engine read the
 * key again for every batch with that member's events, forever, and applied nothing else.
 */
describe("a member whose stored state cannot be read", () => {
  let topology: TestTopology
  let nc: NatsConnection
  let kv: KV
  let engine: EngineProcess
  /** Each damaged member, the bytes put under its key, and a phrase its events' refusal must contain. */
  const damaged = [
    { memberId: "dmg-notjson", value: '{"memberId":"dmg-notjson", "version": 3, oops', phrase: "not JSON" },
    { memberId: "dmg-other", value: JSON.stringify({ memberId: "someone-else", version: 1 }), phrase: 'it holds the state of member "someone-else"' },
    { memberId: "dmg-kind", value: JSON.stringify({ memberId: "dmg-kind", version: "seven" }), phrase: "field version is not a number" },
    { memberId: "dmg-parts", value: JSON.stringify({ $parts: ["p.gone.0", "p.gone.1"], bytes: 40 }), phrase: "names parts that are not there" }
  ] as const
  const purchase = (id: string, memberId: string, amount: number) => ({
    id,
    type: "purchase",
    memberId,
    occurredAt: ago(HOUR),
    properties: { orderId: id, amount, currency: "CNY" }
  })
  const member = async (id: string) => (await engine.get(`/members/${id}`)) as { status: number; body: { purchase?: { count: number; total: number }; error?: string } }

  beforeAll(async () => {
    topology = uniqueTopology("unreadable")
    nc = await natsConnect()
    // The bucket as the engine makes it, damaged before the engine starts.
    kv = await new Kvm(nc).create(`${topology.kvPrefix}_members`, { history: 1 })
    for (const d of damaged) await kv.put(memberKey(d.memberId), d.value)
    engine = await startEngine({ ...topology.env, MEMBERFLOW_UNREADABLE_RECHECK_MS: "1000", MEMBERFLOW_CHECKPOINT_MS: "1000" }, "unreadable")
    // Interleaved: a valid member's events before, between and after the damaged members' ones.
    await publishEvents(nc, topology, [purchase("ok-1", "fine", 100)])
    for (const [i, d] of damaged.entries()) await publishEvents(nc, topology, [purchase(`${d.memberId}-1`, d.memberId, 10 + i), purchase(`fine-${i}`, "fine", 1)])
  })

  afterAll(async () => {
    await engine?.kill("SIGTERM")
    await nc?.close()
    if (topology) await dropTopology(topology)
  })

  it("refuses its events with the reason, dead-letters them, and applies everyone else's", async () => {
    await eventually(async () => (await member("fine")).body.purchase?.count === 1 + damaged.length, 30_000, "the valid member's purchases", async () => engine.output().slice(-3_000))
    expect((await member("fine")).body.purchase?.total).toBe(100 + damaged.length)

    await eventually(async () => Number((await engine.sql<{ n: number }>("SELECT count() AS n FROM rejected_events"))[0]?.n) >= damaged.length, 20_000, "rejected_events rows")
    const rows = await engine.sql<{ raw: string; reason: string }>("SELECT raw, reason FROM rejected_events FINAL")
    expect(rows).toHaveLength(damaged.length)
    for (const d of damaged) {
      const row = rows.find((r) => r.raw.includes(`"${d.memberId}-1"`))
      expect(row, d.memberId).toBeDefined()
      expect(row?.reason, d.memberId).toContain(`member ${d.memberId}: its stored state cannot be read`)
      expect(row?.reason, d.memberId).toContain(d.phrase)
      expect(row?.reason, d.memberId).toContain(memberKey(d.memberId))
    }

    const jsm = await jetstreamManager(nc)
    const stream = `${topology.stream}_DEADLETTER`
    await eventually(async () => (await jsm.streams.info(stream).catch(() => null))?.state.messages === damaged.length, 20_000, "dead letters")
    for (let seq = 1; seq <= damaged.length; seq++) {
      const letter = await jsm.streams.getMessage(stream, { seq })
      const body = JSON.parse(new TextDecoder().decode(letter!.data)) as { memberId: string }
      expect(letter!.header.get("Memberflow-Reason")).toContain(`member ${body.memberId}: its stored state cannot be read`)
      expect(letter!.header.get("Memberflow-Subject")).toBe(`${topology.subjectPrefix}.purchase`)
    }

    const metrics = String((await engine.get("/metrics")).body)
    expect(metricOf(metrics, "memberflow_members_unreadable")).toBe(damaged.length)
    expect(metricOf(metrics, "memberflow_events_rejected_total")).toBe(damaged.length)
    expect(engine.output()).toContain("a member's stored state cannot be read")
  })

  it("leaves the value under its key as it was, and says why when the member is looked up", async () => {
    for (const d of damaged) expect((await kv.get(memberKey(d.memberId)))?.string(), d.memberId).toBe(d.value)
    const looked = await member("dmg-kind")
    expect(looked.status).toBe(500)
    expect(JSON.stringify(looked.body)).toContain("field version is not a number")
  })

  it("is taken up again once its key is repaired: its next events apply, and the engine checkpoints on", async () => {
    await kv.delete(memberKey("dmg-notjson"))
    // Held aside for MEMBERFLOW_UNREADABLE_RECHECK_MS (1 s here) after it was last found unreadable.
    await new Promise((r) => setTimeout(r, 1_200))
    await publishEvents(nc, topology, [purchase("dmg-notjson-2", "dmg-notjson", 77), purchase("fine-last", "fine", 1)])
    await eventually(async () => (await member("dmg-notjson")).body.purchase?.count === 1, 20_000, "the repaired member's purchase")
    expect((await member("dmg-notjson")).body.purchase?.total).toBe(77)
    await eventually(async () => (await member("fine")).body.purchase?.count === 2 + damaged.length, 20_000, "the valid member's last purchase")
    // The repaired one no longer counts.
    expect(metricOf(String((await engine.get("/metrics")).body), "memberflow_members_unreadable")).toBe(damaged.length - 1)
    // The still damaged one is refused again with its reason.
    await publishEvents(nc, topology, [purchase("dmg-kind-2", "dmg-kind", 5)])
    await eventually(async () => metricOf(String((await engine.get("/metrics")).body), "memberflow_events_rejected_total") === damaged.length + 1, 20_000, "the second refusal")
    expect(metricOf(String((await engine.get("/metrics")).body), "memberflow_members_unreadable")).toBe(damaged.length - 1)
    // The repaired member's state is checkpointed to its key (a state again), and the damaged ones are still untouched.
    await eventually(async () => (await kv.get(memberKey("dmg-notjson")))?.operation === "PUT", 20_000, "the repaired member's checkpoint")
    expect((await kv.get(memberKey("dmg-notjson")))?.json<{ memberId: string }>().memberId).toBe("dmg-notjson")
    for (const d of damaged.slice(1)) expect((await kv.get(memberKey(d.memberId)))?.string(), d.memberId).toBe(d.value)
  })

  it("`memberflow deadletter` lists its refused events with the reason, and `--replay` applies them once its key is repaired", async () => {
    const listed = await runCli(["deadletter", "--member", "dmg-notjson"], topology.env)
    expect(listed.code, listed.stderr).toBe(0)
    expect(listed.stdout).toContain("dmg-notjson: its stored state cannot be read (not JSON")
    expect(listed.stdout).toContain(`${topology.subjectPrefix}.purchase`)
    expect(listed.stdout).toContain("1 dead letter match")
    const all = await runCli(["deadletter", "--reason", "STORED STATE CANNOT"], topology.env)
    expect(all.stdout).toContain(`${damaged.length + 1} dead letters match`)

    const replayed = await runCli(["deadletter", "--member", "dmg-notjson", "--replay"], topology.env)
    expect(replayed.code, replayed.stderr).toBe(0)
    expect(replayed.stdout).toContain("replayed 1 dead letter onto the event stream")
    // Applied now, beside the purchase that came after the repair: nothing was lost.
    await eventually(async () => (await member("dmg-notjson")).body.purchase?.count === 2, 20_000, "the replayed purchase")
    expect((await member("dmg-notjson")).body.purchase?.total).toBe(77 + 10)
    const jsm = await jetstreamManager(nc)
    expect((await jsm.streams.info(`${topology.stream}_DEADLETTER`)).state.messages).toBe(damaged.length)

    // One whose key is still damaged goes back to the dead-letter stream, with its reason.
    const again = await runCli(["deadletter", "--member", "dmg-kind", "--replay"], topology.env)
    expect(again.stdout).toContain("replayed 2 dead letters")
    await eventually(async () => metricOf(String((await engine.get("/metrics")).body), "memberflow_events_rejected_total") === damaged.length + 3, 20_000, "the replayed letters refused again")
    const left = await runCli(["deadletter", "--member", "dmg-kind"], topology.env)
    expect(left.stdout).toContain("2 dead letters match")
    expect(left.stdout).toContain("field version is not a number")
  })
})
