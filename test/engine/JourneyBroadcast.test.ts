import type { NatsConnection } from "@nats-io/transport-node"
import { writeFileSync } from "node:fs"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type EngineProcess, eventually, startEngine, tempDir } from "../support/engine.ts"
import { broadcastJourney, journeysDir } from "../support/journeys.ts"
import { dropTopology, natsConnect, publishEvents, type TestTopology, uniqueTopology } from "../support/nats.ts"

// Every minute, to every member whose locale is en: the shortest schedule cron allows.
const JOURNEY = broadcastJourney("minute-broadcast", "broadcast (test)", "* * * * *")

describe("schedule (cron) journeys", () => {
  let topology: TestTopology
  let nc: NatsConnection
  let engine: EngineProcess

  beforeAll(async () => {
    topology = uniqueTopology("broadcast")
    nc = await natsConnect()
    const dir = journeysDir()
    writeFileSync(join(dir, "minute-broadcast.yaml"), JOURNEY)
    engine = await startEngine({ ...topology.env, JOURNEYS_DIR: dir, MEMBERFLOW_DATA_DIR: tempDir("broadcast") }, "broadcast")
  })

  afterAll(async () => {
    await engine?.kill("SIGTERM")
    await nc?.close()
    if (topology) await dropTopology(topology)
  })

  it("enter every member the audience matches at the tick, and only them, once per tick", async () => {
    await publishEvents(
      nc,
      topology,
      Array.from({ length: 30 }, (_, i) => ({
        id: `reg-${i}`,
        type: "member.registered",
        memberId: `b${i}`,
        occurredAt: new Date().toISOString(),
        properties: { phone: "+8613500000000", locale: i % 3 === 0 ? "en" : "zh-CN" }
      }))
    )
    await eventually(async () => {
      const rows = await engine.sql<{ n: number }>("SELECT count() AS n FROM journey_enrollments FINAL WHERE journey_id = 'minute-broadcast'")
      return Number(rows[0]?.n) >= 10
    }, 75_000, "the first tick's broadcast")
    const rows = await engine.sql<{ member_id: string; entered_at: string }>(
      "SELECT member_id, entered_at FROM journey_enrollments FINAL WHERE journey_id = 'minute-broadcast'"
    )
    const members = [...new Set(rows.map((r) => r.member_id))].sort()
    expect(members).toEqual(Array.from({ length: 30 }, (_, i) => i).filter((i) => i % 3 === 0).map((i) => `b${i}`).sort())
    // One tick: one entry per member.
    expect(rows.length).toBe(new Set(rows.map((r) => `${r.member_id}@${r.entered_at.slice(0, 16)}`)).size)
  })
})
