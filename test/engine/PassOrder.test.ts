import type { NatsConnection } from "@nats-io/transport-node"
import { writeFileSync } from "node:fs"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { partitionOf } from "../../engine/ingest/Partition.ts"
import { memberKey } from "../../engine/MemberStore.ts"
import { type EngineProcess, engineState, eventually, metricOf, startEngine, tempDir } from "../support/engine.ts"
import { expectRefusedAtStart } from "../support/settings.ts"
import { journeysDir, broadcastJourney, tickMarker } from "../support/journeys.ts"
import { dropTopology, natsConnect, publishEvents, type TestTopology, uniqueTopology } from "../support/nats.ts"

// A schedule journey whose cron never comes due while the test runs: its only tick is the marker
// the test puts on the stream, as the engine that claims a tick would.
const JOURNEY = broadcastJourney("pass-order", "pass order (test)")

// The same, a second journey: two ticks one right behind the other.
const JOURNEY_B = broadcastJourney("pass-order-b", "pass order (test)")

const MEMBERS = 5_000

/** `memberflow_passes_under_way` in a /metrics text. */
const passesUnderWay = (metrics: string): number => metricOf(metrics, "memberflow_passes_under_way")

/** The i-th member of a test: `prefix` and five digits (the prefix keeps each test's members apart). */
const memberOf = (prefix: string) => (i: number) => `${prefix}${String(i).padStart(5, "0")}`

/**
 * Registers `count` members a minute ago, `memberOf(prefix)(i)` each, English where `english(i)`,
 * and waits until the engine has applied every registration.
 */
const register = async (nc: NatsConnection, topology: TestTopology, engine: EngineProcess, prefix: string, count: number, english: (i: number) => boolean, ms: number) => {
  const member = memberOf(prefix)
  await publishEvents(
    nc,
    topology,
    Array.from({ length: count }, (_, i) => ({
      id: `reg-${member(i)}`,
      type: "member.registered",
      memberId: member(i),
      occurredAt: new Date(Date.now() - 60_000).toISOString(),
      properties: { phone: "+8613500000000", locale: english(i) ? "en" : "zh-CN" }
    }))
  )
  await eventually(
    async () => Number((await engine.sql<{ n: number }>(`SELECT count() AS n FROM member_profiles_latest WHERE member_id LIKE '${prefix}%'`))[0]?.n) >= count,
    ms,
    "the registrations applied",
    () => engineState(engine)
  )
}

/**
 * On the engine that took over a pass: the replayed pass ends, and the tick's journey holds exactly
 * `expected`, each member entered once.
 */
const expectEnteredOnce = async (engine: EngineProcess, expected: ReadonlyArray<string>) => {
  await eventually(async () => engine.output().includes('"broadcast done"'), 120_000, "the replayed pass to end on the next engine", () => engineState(engine))
  await eventually(
    async () => Number((await engine.sql<{ n: number }>("SELECT count(DISTINCT member_id) AS n FROM journey_enrollments FINAL WHERE journey_id = 'pass-order'"))[0]?.n) >= expected.length,
    60_000,
    "the tick's enrollments"
  )
  const rows = await engine.sql<{ member_id: string; enrollments: number }>(
    "SELECT member_id, uniqExact(enrollment_id) AS enrollments FROM journey_enrollments FINAL WHERE journey_id = 'pass-order' GROUP BY member_id ORDER BY member_id"
  )
  expect(rows.map((r) => r.member_id)).toEqual(expected)
  expect(rows.filter((r) => Number(r.enrollments) !== 1)).toEqual([])
}

/**
 * A pass over every member (a broadcast tick, the hourly sweep) is worked through between batches,
 * not all at its marker: the events behind the marker are not held up for it. What each member sees
 * must not change — its events before the marker, the pass, then its events after — also for a
 * member whose event after the marker comes before the pass has reached it.
 */
describe("a pass over every member, worked through between batches", () => {
  let topology: TestTopology
  let nc: NatsConnection
  let engine: EngineProcess
  let dir: string

  beforeAll(async () => {
    topology = uniqueTopology("passorder")
    nc = await natsConnect()
    dir = journeysDir()
    writeFileSync(join(dir, "pass-order.yaml"), JOURNEY)
    writeFileSync(join(dir, "pass-order-b.yaml"), JOURNEY_B)
    engine = await startEngine({ ...topology.env, JOURNEYS_DIR: dir, MEMBERFLOW_DATA_DIR: tempDir("passorder") }, "passorder")
  })

  afterAll(async () => {
    await engine?.kill("SIGTERM")
    await nc?.close()
    if (topology) await dropTopology(topology)
  })

  it("enters the members the audience matched at the marker, whatever their events right after it changed", async () => {
    const now = Date.now()
    const at = (ms: number) => new Date(now + ms).toISOString()
    const id = memberOf("p")
    const english = (i: number) => i % 2 === 0
    await register(nc, topology, engine, "p", MEMBERS, english, 60_000)

    // The tick, then at once: every tenth member changes language (the English ones to Chinese and
    // the Chinese ones to English), and a new English member registers. Published in this order on
    // one connection, so the stream holds them in this order.
    const marker = tickMarker("pass-order", now)
    const flipped = Array.from({ length: MEMBERS }, (_, i) => i).filter((i) => i % 10 < 2)
    await publishEvents(nc, topology, [
      marker,
      ...flipped.map((i) => ({
        id: `flip-${i}`,
        type: "member.updated",
        memberId: id(i),
        occurredAt: at(0),
        properties: { locale: english(i) ? "zh-CN" : "en" }
      })),
      { id: "reg-late", type: "member.registered", memberId: "p-late", occurredAt: at(0), properties: { phone: "+8613500000001", locale: "en" } }
    ])

    const expected = Array.from({ length: MEMBERS }, (_, i) => i).filter(english).map(id).sort()
    await eventually(
      async () => {
        const rows = await engine.sql<{ n: number }>("SELECT count() AS n FROM journey_enrollments FINAL WHERE journey_id = 'pass-order'")
        return Number(rows[0]?.n) >= expected.length
      },
      90_000,
      "the tick's enrollments",
      () => engineState(engine)
    )
    // Every flip after the marker applied too (the pass did not hold them back for good).
    await eventually(
      async () => {
        const rows = await engine.sql<{ n: number }>(
          `SELECT count() AS n FROM member_profiles_latest WHERE member_id IN (${flipped.map((i) => `'${id(i)}'`).join(", ")}) AND JSONExtractString(attributes, 'locale') = if(toUInt32(substring(member_id, 2)) % 2 = 0, 'zh-CN', 'en')`
        )
        return Number(rows[0]?.n) === flipped.length
      },
      60_000,
      "the changes after the marker applied",
      () => engineState(engine)
    )
    const rows = await engine.sql<{ member_id: string }>("SELECT DISTINCT member_id FROM journey_enrollments FINAL WHERE journey_id = 'pass-order' ORDER BY member_id")
    const entered = rows.map((r) => r.member_id)
    // Exactly those English at the marker: the ones who changed to Chinese right after it are in,
    // the ones who changed to English are not, nor the member who registered after it.
    expect(entered.length).toBe(expected.length)
    expect(entered).toEqual(expected)
    expect(entered).toContain(id(0))
    expect(entered).not.toContain(id(1))
    expect(entered).not.toContain("p-late")
    const log = await engineState(engine)
    expect(log).not.toContain("ingest stopped")
  }, 240_000)

  it("two passes one right behind the other: each member sees the first, its events between, the second, then its events after", async () => {
    const count = 3_000
    const id = memberOf("q")
    await register(nc, topology, engine, "q", count, (i) => i % 2 === 0, 60_000)
    const flip = (i: number, locale: string, round: string) => ({ id: `flip-${round}-${i}`, type: "member.updated", memberId: id(i), occurredAt: new Date().toISOString(), properties: { locale } })
    const all = Array.from({ length: count }, (_, i) => i)
    const now = Date.now()
    // Tick A; the languages of those ending in 0 or 1 turned over; tick B (published before A has
    // passed over anyone); then theirs turned back and those ending in 2 turned over for the first
    // time, which neither tick may see.
    await publishEvents(nc, topology, [
      tickMarker("pass-order", now),
      ...all.filter((i) => i % 10 < 2).map((i) => flip(i, i % 2 === 0 ? "zh-CN" : "en", "a")),
      tickMarker("pass-order-b", now + 1),
      ...all.filter((i) => i % 10 < 2).map((i) => flip(i, i % 2 === 0 ? "en" : "zh-CN", "b")),
      ...all.filter((i) => i % 10 === 2).map((i) => flip(i, "zh-CN", "b"))
    ])
    const atA = all.filter((i) => i % 2 === 0).map(id)
    const atB = all.filter((i) => i % 10 === 1 || (i % 2 === 0 && i % 10 !== 0)).map(id)
    const entered = async (journey: string) =>
      (await engine.sql<{ member_id: string }>(`SELECT DISTINCT member_id FROM journey_enrollments FINAL WHERE journey_id = '${journey}' AND member_id LIKE 'q%' ORDER BY member_id`)).map((r) => r.member_id)
    await eventually(
      async () => (await entered("pass-order")).length >= atA.length && (await entered("pass-order-b")).length >= atB.length,
      90_000,
      "both ticks' enrollments",
      () => engineState(engine)
    )
    // The last changes applied: the rows are there for both ticks by now.
    const finalLocale = (i: number) => (i % 10 === 2 ? "zh-CN" : i % 2 === 0 ? "en" : "zh-CN")
    const locales = async () =>
      (await engine.sql<{ member_id: string; locale: string }>("SELECT member_id, JSONExtractString(attributes, 'locale') AS locale FROM member_profiles_latest WHERE member_id LIKE 'q%' ORDER BY member_id")).map(
        (r) => `${r.member_id}:${r.locale}`
      )
    const finalLocales = all.map((i) => `${id(i)}:${finalLocale(i)}`)
    await eventually(async () => JSON.stringify(await locales()) === JSON.stringify(finalLocales), 60_000, "the changes after the second marker applied")
    expect(await entered("pass-order")).toEqual(atA)
    expect(await entered("pass-order-b")).toEqual(atB)
  }, 240_000)

  it("an engine stopped while a pass is under way hands its partitions over before the pass's marker, its states written, and the engine after it enters every member once", async () => {
    const stopped = uniqueTopology("passstop")
    const dataDir = tempDir("passstop")
    // A small cache: the pass reads its members from KV, so that it is still under way when stopped.
    const env = { ...stopped.env, JOURNEYS_DIR: dir, MEMBERFLOW_DATA_DIR: dataDir, MEMBERFLOW_CACHE_MEMBERS: "200", MEMBERFLOW_CHECKPOINT_MS: "1000" }
    const first = await startEngine(env, "passstop-1")
    let second: EngineProcess | null = null
    try {
      const count = 20_000
      const member = memberOf("s")
      const now = Date.now()
      await register(nc, stopped, first, "s", count, (i) => i % 4 === 0, 90_000)
      // A few checkpoints (every second here): the states in KV, the cache down to its 200.
      await new Promise((resolve) => setTimeout(resolve, 4_000))
      // Counted in /metrics: states written by checkpoints, and how long each checkpoint took.
      const metrics = String((await first.get("/metrics")).body)
      expect(Number(/^memberflow_checkpoint_states_total (\d+)$/m.exec(metrics)?.[1])).toBeGreaterThan(0)
      expect(Number(/^memberflow_checkpoint_seconds_count (\d+)$/m.exec(metrics)?.[1])).toBeGreaterThan(0)
      // The engine's own sweep over first: it waits until the engine has caught up with the
      // registrations, and would otherwise be under way beside the tick's pass.
      await eventually(async () => first.output().includes('"sweep done"'), 60_000, "the start sweep to end", () => engineState(first))
      await publishEvents(nc, stopped, [
        tickMarker("pass-order", now)
      ])
      // The tick's pass: the engine's own sweep at start logs "pass under way" too, and waiting for
      // any such line let the SIGTERM land after that sweep and before the tick's pass began.
      const tickUnderWay = () => first.output().split("\n").some((line) => line.includes('"pass under way"') && line.includes('"kind":"tick"'))
      await eventually(async () => tickUnderWay(), 60_000, "the tick's pass to be under way", () => engineState(first))
      // Shown in /metrics while it is under way (the SIGTERM below lands inside it too).
      expect(passesUnderWay(String((await first.get("/metrics")).body))).toBe(1)
      expect(await first.kill("SIGTERM")).toBe(0)
      expect(first.output()).toContain("partition handed over before the marker of a pass under way")

      second = await startEngine(env, "passstop-2")
      const expected = Array.from({ length: count }, (_, i) => i).filter((i) => i % 4 === 0).map(member)
      await expectEnteredOnce(second, expected)
    } finally {
      await first.kill("SIGKILL").catch(() => null)
      await second?.kill("SIGTERM")
      await dropTopology(stopped)
    }
  }, 300_000)

  it("checkpoints a partition once its own members are passed over, before the pass ends, and the others meanwhile before the marker with their states saying who is past it; killed then, the next engine enters every member once", async () => {
    const killed = uniqueTopology("passpart")
    const dataDir = tempDir("passpart")
    // A small cache (the slices read their members from KV) and a small share of the thread while
    // events flow: the pass goes on for a while after its first partitions are done. With 0.05 a
    // loaded machine's look at the states caught every partition already past the marker; the next
    // engine, which only has to finish the pass, takes the default share.
    const env = { ...killed.env, JOURNEYS_DIR: dir, MEMBERFLOW_DATA_DIR: dataDir, MEMBERFLOW_CACHE_MEMBERS: "200", MEMBERFLOW_CHECKPOINT_MS: "500", MEMBERFLOW_PASS_SHARE: "0.02" }
    const first = await startEngine(env, "passpart-1")
    let second: EngineProcess | null = null
    let trickle: Promise<void> | null = null
    let flowing = true
    try {
      const count = 8_000
      const member = memberOf("k")
      const now = Date.now()
      await register(nc, killed, first, "k", count, (i) => i % 4 === 0, 90_000)
      const { jetstream } = await import("@nats-io/jetstream")
      const { Kvm } = await import("@nats-io/kv")
      const js = jetstream(nc)
      const meta = await new Kvm(nc).open(`${killed.kvPrefix}_meta`)
      const members = await new Kvm(nc).open(`${killed.kvPrefix}_members`)
      // The engine's own sweep at start over first: a partition leaves a pass only when no other pass
      // has it under way, and the two would overlap.
      await eventually(async () => first.output().includes('"sweep done"'), 60_000, "the start sweep to end", () => engineState(first))
      expect(passesUnderWay(String((await first.get("/metrics")).body))).toBe(0)
      const marker = tickMarker("pass-order", now)
      const markerSeq = (await js.publish(`${killed.subjectPrefix}.${marker.type}`, JSON.stringify(marker), { msgID: marker.id })).seq
      // Events all along (page views of members of every partition): the pacer holds the slices to their share.
      trickle = (async () => {
        for (let n = 0; flowing; n++) {
          await publishEvents(nc, killed, Array.from({ length: 20 }, (_, k) => ({ id: `view-${n}-${k}`, type: "page.viewed", memberId: member((n * 20 + k) % count), occurredAt: new Date().toISOString(), properties: { path: "/" } })))
          await new Promise((resolve) => setTimeout(resolve, 50))
        }
      })()
      // The sixteen read at once: one by one, a look took sixteen round trips, and on a slow fresh
      // clone the pass ended (17 s) before any look caught a partition past the marker.
      const positions = () =>
        Promise.all(
          Array.from({ length: 16 }, async (_, partition) => {
            const entry = await meta.get(`partition.${partition}`)
            return entry === null ? 0 : Number((JSON.parse(entry.string()) as { position: number }).position)
          })
        )
      const tickDone = () => first.output().includes('"broadcast done"')
      // Some partition committed past the marker while the tick's pass is still under way.
      await eventually(
        async () => (await positions()).some((position) => position > markerSeq) && !tickDone(),
        90_000,
        "a partition checkpointed past the marker before the pass ends",
        async () => `marker at ${markerSeq}, positions ${(await positions()).join(", ")}\n${first.output().split("\n").filter((line) => /pass|broadcast|sweep/.test(line)).join("\n")}\n${await engineState(first)}`
      )
      // A partition still under the pass is checkpointed too: its position stays before the marker,
      // and a member of it written since says it is past the marker (the next engine's replay of the
      // pass leaves it as it is). Members with events after the marker are the ones written.
      // Twenty states read at once: one by one, a look at 800 took long enough on a loaded machine
      // for the pass to move on meanwhile.
      const pastMarker = async () => {
        const at = await positions()
        for (let n = 0; n < 40; n++) {
          const ids = Array.from({ length: 20 }, (_, k) => member((n * 20 + k) % count))
          const entries = await Promise.all(ids.map((memberId) => members.get(memberKey(memberId))))
          for (const [k, entry] of entries.entries()) {
            const memberId = ids[k]!
            const state = entry === null ? null : (JSON.parse(entry.string()) as { passed?: number })
            if (state?.passed === markerSeq && at[partitionOf(memberId, 16)]! < markerSeq) return memberId
          }
        }
        return null
      }
      await eventually(
        async () => (await pastMarker()) !== null && !tickDone(),
        90_000,
        "a member of a partition still under the pass written, saying it is past the marker",
        async () => `marker at ${markerSeq}, positions ${(await positions()).join(", ")}\n${await engineState(first)}`
      )
      const before = await positions()
      expect(tickDone()).toBe(false)
      expect(before.some((position) => position < markerSeq)).toBe(true)
      expect(await first.kill("SIGKILL")).not.toBe(0)

      const { MEMBERFLOW_PASS_SHARE: _small, ...atDefaultShare } = env
      second = await startEngine(atDefaultShare, "passpart-2")
      const expected = Array.from({ length: count }, (_, i) => i).filter((i) => i % 4 === 0).map(member)
      flowing = false
      await trickle
      await expectEnteredOnce(second, expected)
    } finally {
      flowing = false
      await trickle?.catch(() => null)
      await first.kill("SIGKILL").catch(() => null)
      await second?.kill("SIGTERM")
      await dropTopology(killed)
    }
  }, 300_000)
})

describe("the share of the thread a pass may take", () => {
  it("is refused at start when it is not a number above 0 and at most 1 (and the timer burst when not a rate), naming the setting", async () => {
    const topology = uniqueTopology("passshare")
    try {
      await expectRefusedAtStart(topology.env, "MEMBERFLOW_PASS_SHARE", ["0", "1.5", "a third"], "passshare")
      // The burst of timers that holds a pass back: a rate, 0 for never.
      await expectRefusedAtStart(topology.env, "MEMBERFLOW_PASS_TIMER_BURST", ["-1", "many"], "passshare")
    } finally {
      await dropTopology(topology)
    }
  }, 120_000)
})
