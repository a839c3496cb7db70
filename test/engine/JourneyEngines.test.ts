import type { NatsConnection } from "@nats-io/transport-node"
import { writeFileSync } from "node:fs"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type EngineProcess, eventually, startEngine, tempDir } from "../support/engine.ts"
import { journeysDir } from "../support/journeys.ts"
import { dropTopology, natsConnect, publishEvents, type TestTopology, uniqueTopology } from "../support/nats.ts"

const JOURNEY = `id: two-engines
name: two engines (test)
status: active
category: transactional
trigger: { event: { type: two.enter } }
reentry: afterExit
steps:
  - id: first
    send: { channel: sms, template: welcome }
  - { id: pause, wait: 2s }
  - id: second
    send: { channel: sms, template: welcome }
`

/**
 * Two engines share the stream and the member state; each has its own embedded ClickHouse, so the
 * rows a test reads are the union of both. A member entered twice or a step run twice would show as
 * more message ids than members × steps, or as two enrollments of one member.
 */
describe("journeys with two engines on one stream", () => {
  let topology: TestTopology
  let nc: NatsConnection
  const engines: Array<EngineProcess> = []

  beforeAll(async () => {
    topology = uniqueTopology("jengines")
    nc = await natsConnect()
    const dir = journeysDir()
    writeFileSync(join(dir, "two-engines.yaml"), JOURNEY)
    for (const name of ["a", "b"]) {
      engines.push(
        await startEngine({ ...topology.env, JOURNEYS_DIR: dir, MEMBERFLOW_DATA_DIR: tempDir(`jengines-${name}`), MEMBERFLOW_ACK_WAIT_MS: "3000", MEMBERFLOW_BATCH_SIZE: "50" }, "jengines")
      )
    }
    // The first engine owns every member partition until the second's share is handed over.
    await eventually(async () => {
      const states = await Promise.all(engines.map(async (engine) => (await engine.get("/readyz")).body as { ingest?: { owned?: ReadonlyArray<unknown> } }))
      return states.every((state) => (state.ingest?.owned?.length ?? 0) > 0)
    }, 60_000, "both engines to own member partitions")
  })

  afterAll(async () => {
    await Promise.all(engines.map((engine) => engine.kill("SIGKILL")))
    await nc?.close()
    if (topology) await dropTopology(topology)
  })

  const union = async <A,>(sql: string) => (await Promise.all(engines.map((engine) => engine.sql<A>(sql)))).flat()

  it("never enroll a member twice or run a step twice", async () => {
    const members = Array.from({ length: 300 }, (_, i) => `t${i}`)
    // Every member's trigger arrives twice (a re-publish under a new message id) and interleaved,
    // so both engines see events of the same member at once.
    const enter = members.flatMap((memberId) => [
      { id: `reg-${memberId}`, type: "member.registered", memberId, occurredAt: new Date().toISOString(), properties: { phone: "+8613600000000" } },
      { id: `enter-${memberId}`, type: "two.enter", memberId, occurredAt: new Date().toISOString() }
    ])
    await publishEvents(nc, topology, enter)
    const { jetstream } = await import("@nats-io/jetstream")
    const js = jetstream(nc)
    await Promise.all(members.map((memberId) =>
      js.publish(`${topology.subjectPrefix}.two.enter`, JSON.stringify(enter.find((e) => e.id === `enter-${memberId}`)), { msgID: `again-${memberId}` })
    ))
    await eventually(async () => {
      const rows = await union<{ message_id: string }>("SELECT message_id FROM messages FINAL WHERE journey_id = 'two-engines' AND step_id = 'second'")
      return new Set(rows.map((r) => r.message_id)).size >= members.length
    }, 60_000, "every member's second message")
    const messages = await union<{ message_id: string; member_id: string; step_id: string }>(
      "SELECT message_id, member_id, step_id FROM messages FINAL WHERE journey_id = 'two-engines'"
    )
    const ids = new Set(messages.map((m) => m.message_id))
    expect(ids.size).toBe(members.length * 2)
    // The messages' rows are written by the engine that delivered them, the enrollments' by the
    // engine that applied the trigger, each to its own ClickHouse in its own time: under the full
    // suite's load an engine's enrollment rows once came after the other's second messages.
    const enrollmentRows = () =>
      union<{ enrollment_id: string; member_id: string }>("SELECT enrollment_id, member_id FROM journey_enrollments FINAL WHERE journey_id = 'two-engines'")
    await eventually(async () => new Set((await enrollmentRows()).map((r) => r.member_id)).size >= members.length, 60_000, "every member's enrollment row")
    const enrollments = await enrollmentRows()
    const perMember = new Map<string, Set<string>>()
    for (const row of enrollments) perMember.set(row.member_id, new Set([...(perMember.get(row.member_id) ?? []), row.enrollment_id]))
    expect(perMember.size).toBe(members.length)
    expect([...perMember.values()].every((set) => set.size === 1)).toBe(true)
    // Both engines took part.
    for (const engine of engines) {
      const metrics = String((await engine.get("/metrics")).body)
      expect(Number(/^memberflow_events_received_total (\d+)/m.exec(metrics)?.[1] ?? 0)).toBeGreaterThan(0)
    }
  })
})
