import { afterAll, describe, expect, it } from "vitest"
import type { NatsConnection } from "@nats-io/transport-node"
import { writeFileSync } from "node:fs"
import { join } from "node:path"
import { type EngineProcess, eventually, startEngine, tempDir } from "../support/engine.ts"
import { journeysDir } from "../support/journeys.ts"
import { dropTopology, natsConnect, publishEvents, uniqueTopology } from "../support/nats.ts"

/**
 * experiment.winner (journeys.md): once the experiment has run `after` with `minPerVariant` members
 * in each variant, and one variant beats control and the others significantly, new entrants all get
 * it (control stays control); members already inside keep theirs.
 */
const JOURNEY = `id: winner-test
name: winner test
status: active
category: transactional
trigger: { event: { type: offer.test } }
goal: { event: purchase, within: 1h }
experiment:
  control: 20
  variants:
    - { id: gift, weight: 50 }
    - { id: points, weight: 50 }
  winner: { after: 1s, minPerVariant: 40 }
steps:
  - id: offer
    send: { channel: sms, template: welcome }
`

const topology = uniqueTopology("winner")
let nc: NatsConnection
let engine: EngineProcess | undefined

afterAll(async () => {
  await engine?.kill("SIGTERM")
  await nc?.close()
  await dropTopology(topology)
})

const now = () => new Date().toISOString()
const enter = (ids: ReadonlyArray<string>) => [
  ...ids.map((memberId) => ({ id: `reg-${memberId}`, type: "member.registered", memberId, occurredAt: now(), properties: { name: memberId } })),
  ...ids.map((memberId) => ({ id: `offer-${memberId}`, type: "offer.test", memberId, occurredAt: now() }))
]

describe("experiment winner promotion", () => {
  it("promotes the variant that clearly wins: later entrants outside control all get it", { timeout: 180_000 }, async () => {
    nc = await natsConnect()
    const dir = journeysDir()
    writeFileSync(join(dir, "winner-test.yaml"), JOURNEY)
    engine = await startEngine(
      { ...topology.env, JOURNEYS_DIR: dir, MEMBERFLOW_DATA_DIR: tempDir("winner"), MEMBERFLOW_EXPERIMENTS_CHECK_MS: "1000" },
      "winner"
    )
    const running = engine
    const arms = async () =>
      new Map(
        (await running.sql<{ member_id: string; variant: string }>("SELECT member_id, variant FROM journey_enrollments FINAL WHERE journey_id = 'winner-test'")).map(
          (r) => [r.member_id, r.variant] as const
        )
      )
    const first = Array.from({ length: 300 }, (_, i) => `w${String(i).padStart(4, "0")}`)
    await publishEvents(nc, topology, enter(first))
    await eventually(async () => (await arms()).size === 300, 60_000, "300 enrollments")
    const before = await arms()
    // gift converts 70% of its members, points and control 5%: deterministic by position in the arm
    const seen: Record<string, number> = {}
    const buyers = first.filter((memberId) => {
      const variant = before.get(memberId) ?? ""
      const k = (seen[variant] = (seen[variant] ?? 0) + 1)
      return variant === "gift" ? k % 10 < 7 : k % 20 === 0
    })
    await publishEvents(
      nc,
      topology,
      buyers.map((memberId, i) => ({ id: `buy-${memberId}`, type: "purchase", memberId, occurredAt: now(), properties: { orderId: `o-${i}`, amount: 100, currency: "CNY" } }))
    )
    await eventually(() => Promise.resolve(running.output().includes("experiment winner promoted")), 60_000, "the winner promoted")
    expect(running.output()).toMatch(/experiment winner promoted[^\n]*"variant":"gift"/)

    const later = Array.from({ length: 100 }, (_, i) => `l${String(i).padStart(4, "0")}`)
    await publishEvents(nc, topology, enter(later))
    await eventually(async () => (await arms()).size === 400, 60_000, "100 more enrollments")
    const after = await arms()
    const laterArms = later.map((memberId) => after.get(memberId))
    // control is still held out (about 20%); everyone else gets the winner
    expect(laterArms.filter((v) => v === "points")).toEqual([])
    expect(laterArms.filter((v) => v === "gift").length).toBeGreaterThan(60)
    expect(laterArms.filter((v) => v === "control").length).toBeGreaterThan(5)
    // members already inside keep their variant
    for (const memberId of first) expect(after.get(memberId)).toBe(before.get(memberId))
  })
})
