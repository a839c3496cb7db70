import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager, RetentionPolicy, StorageType } from "@nats-io/jetstream"
import { nanos, type NatsConnection } from "@nats-io/transport-node"
import { writeFileSync } from "node:fs"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { derivedId } from "../../engine/member/MemberState/Ids.ts"
import { type EngineProcess, eventually, startEngine, tempDir } from "../support/engine.ts"
import { journeysDir } from "../support/journeys.ts"
import { dropTopology, natsConnect, publishEvents, type TestTopology, uniqueTopology } from "../support/nats.ts"

const WAIT = `id: timer-wait
name: timers (test)
status: active
category: transactional
trigger: { event: { type: timer.test } }
steps:
  - { id: pause, wait: 6s }
  - id: after
    send: { channel: sms, template: welcome }
`

/** Every message of a stream on subjects under `prefix`, read without a durable consumer. */
const subjectsIn = async (nc: NatsConnection, stream: string, filter: string): Promise<Array<string>> => {
  const jsm = await jetstreamManager(nc)
  const info = await jsm.streams.info(stream, { subjects_filter: filter })
  return Object.keys(info.state.subjects ?? {})
}

describe("journey timers are kept by the owner of the member's partition", () => {
  let nc: NatsConnection
  const engines: Array<EngineProcess> = []
  const topologies: Array<TestTopology> = []

  beforeAll(async () => {
    nc = await natsConnect()
  })

  afterAll(async () => {
    await Promise.all(engines.map((engine) => engine.kill("SIGKILL")))
    await nc.close()
    await Promise.all(topologies.map(dropTopology))
  })

  // Sixteen partitions taken at once are read in one pass over the timers stream; one alone through
  // a consumer filtered on its subjects (engine/Timers.ts).
  it.each(["16", "1"])("a timer requested by an engine that is then killed fires once on the engine that takes its partition, and its request is deleted (%s partitions)", async (partitions) => {
    const topology = uniqueTopology("timers")
    topologies.push(topology)
    const dir = journeysDir()
    writeFileSync(join(dir, "timer-wait.yaml"), WAIT)
    const env = { ...topology.env, JOURNEYS_DIR: dir, MEMBERFLOW_LEASE_MS: "2000", MEMBERFLOW_PARTITIONS: partitions }
    const first = await startEngine({ ...env, MEMBERFLOW_DATA_DIR: tempDir("timers-a") }, "timers-a")
    engines.push(first)
    const members = Array.from({ length: 40 }, (_, i) => `tm-${i}`)
    await publishEvents(nc, topology, members.map((memberId) => ({ id: `enter-${memberId}`, type: "timer.test", memberId, occurredAt: new Date().toISOString() })))
    // Each waiting member has one request, on a subject of its own in its partition (the shipped
    // journeys' entry timers are there too: mf-entry-timer-…).
    const waits = async () => (await subjectsIn(nc, `${topology.stream}_TIMERS`, "timers.>")).filter((subject) => subject.includes(".mf-timer-"))
    await eventually(async () => (await waits()).length === 40, 15_000, "40 timer requests")
    const subjects = await waits()
    for (const subject of subjects) expect(subject).toMatch(new RegExp(`^timers\\.${topology.subjectPrefix.replace(".", "\\.")}\\.\\d+\\.mf-timer-[\\w-]+$`))
    await first.kill("SIGKILL")

    const second = await startEngine({ ...env, MEMBERFLOW_DATA_DIR: tempDir("timers-b") }, "timers-b")
    engines.push(second)
    await eventually(
      async () => {
        const [row] = await second.sql<{ n: number }>("SELECT count() AS n FROM journey_steps FINAL WHERE journey_id = 'timer-wait' AND step_id = 'after'")
        return Number(row?.n) === 40
      },
      30_000,
      "the steps after the waits"
    )
    // Once each: one step row per enrollment, one journey.timer event per timer.
    const [steps] = await second.sql<{ n: number; enrollments: number }>(
      "SELECT count() AS n, uniqExact(enrollment_id) AS enrollments FROM journey_steps WHERE journey_id = 'timer-wait' AND step_id = 'after'"
    )
    expect(Number(steps?.enrollments)).toBe(40)
    const jsm = await jetstreamManager(nc)
    const fired = await jsm.streams.info(topology.stream, { subjects_filter: `${topology.subjectPrefix}.journey.timer` })
    expect(fired.state.subjects?.[`${topology.subjectPrefix}.journey.timer`]).toBe(40)
    // Fired timers are deleted from the stream.
    await eventually(async () => (await waits()).length === 0, 10_000, "timer requests deleted")
    // What the engine still keeps in memory is what is left in the stream: the entry timers.
    const left = (await subjectsIn(nc, `${topology.stream}_TIMERS`, "timers.>")).length
    await eventually(async () => new RegExp(`memberflow_timers_pending\\S* ${left}\\b`).test(String((await second.get("/metrics")).body)), 5_000, "timers pending metric")
    const ready = (await second.get("/readyz")).body as { timers: { pending: number; loading: number } }
    expect(ready.timers).toEqual({ pending: left, loading: 0 })
  }, 90_000)

  it("upgrading from the first timers design (un-acked requests NAKed until due) keeps every pending timer and drops the old consumer", async () => {
    const topology = uniqueTopology("legacy")
    topologies.push(topology)
    const jsm = await jetstreamManager(nc)
    const js = jetstream(nc)
    const timersStream = `${topology.stream}_TIMERS`
    const legacy = `timers.${topology.subjectPrefix}`
    // The first design's shape: one subject, a durable consumer holding the requests.
    await jsm.streams.add({ name: timersStream, subjects: [legacy], storage: StorageType.File, retention: RetentionPolicy.Limits, duplicate_window: nanos(300_000) })
    await jsm.consumers.add(timersStream, {
      durable_name: "memberflow-timers",
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      ack_wait: nanos(30_000),
      max_ack_pending: -1,
      max_deliver: -1
    })
    const request = (memberId: string, due: number) => ({
      id: derivedId("timer", `enr-${memberId}`, due),
      type: "journey.timer.request",
      memberId,
      occurredAt: new Date().toISOString(),
      properties: { journeyId: "some-journey", enrollmentId: `enr-${memberId}`, due },
      source: "memberflow"
    })
    const now = Date.now()
    const requests = [request("lg-fired", now - 60_000), request("lg-overdue", now - 5_000), request("lg-soon", now + 2_000), request("lg-later", now + 3_600_000)]
    for (const r of requests) await js.publish(legacy, JSON.stringify(r), { msgID: r.id })
    // The first one fired under the old design: acknowledged, below the consumer's ack floor.
    const consumer = await js.consumers.get(timersStream, "memberflow-timers")
    const firstMsg = await consumer.next({ expires: 2_000 })
    expect(firstMsg?.seq).toBe(1)
    await firstMsg!.ackAck()

    const engine = await startEngine({ ...topology.env, MEMBERFLOW_DATA_DIR: tempDir("legacy") }, "legacy")
    engines.push(engine)
    const firedIds = async () => {
      const ordered = await js.consumers.get(topology.stream, { filter_subjects: `${topology.subjectPrefix}.journey.timer` })
      const info = await ordered.info(true)
      const ids: Array<string> = []
      if (info.num_pending === 0) return ids
      const batch = await ordered.fetch({ max_messages: info.num_pending, expires: 2_000 })
      for await (const msg of batch) ids.push((msg.json() as { id: string }).id)
      return ids
    }
    const firedId = (r: ReturnType<typeof request>) => derivedId("timer-fired", r.properties.enrollmentId, r.properties.due)
    await eventually(async () => (await firedIds()).length === 2, 20_000, "the overdue and the soon timers fired")
    const ids = await firedIds()
    expect(ids.sort()).toEqual([firedId(requests[1]!), firedId(requests[2]!)].sort())
    const info = await jsm.streams.info(timersStream, { subjects_filter: ">" })
    expect(info.config.subjects).toEqual([`${legacy}.>`])
    expect(info.config.max_msgs_per_subject).toBe(1)
    // What is left: the one not due yet, on its new subject; nothing on the old one.
    expect(Object.keys(info.state.subjects ?? {})).toEqual([expect.stringMatching(new RegExp(`^${legacy.replace(/\./g, "\\.")}\\.\\d+\\.${requests[3]!.id}$`))])
    await expect(jsm.consumers.info(timersStream, "memberflow-timers")).rejects.toThrow(/not found/i)
  }, 60_000)
})
