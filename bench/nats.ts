/**
 * npm run bench:nats — what reading a large stream costs the NATS server, filtered or not.
 *
 * Two of the engine's reads go over a whole stream: a pass lists the members bucket (one message per
 * member), and a partition taken reads its kept timers from the timers stream. This measures both
 * ways of each on the local server, with a probe beside them that publishes to a stream of its own
 * every 10 ms and times the acknowledgement: how long the server held every publish up.
 *
 * 1. BENCH_KEYS (default 1,000,000) keys in a KV bucket, then the listing's headers-only consumer
 *    created with the member keys' subject filter and without one, and 20 fetches of 2,000 keys.
 * 2. BENCH_TIMERS (default 1,800,000) timer requests over 16 partitions' subjects, then read per
 *    partition through consumers filtered on it (as one partition taken alone is), and all of them in
 *    one unfiltered read (as partitions taken together are).
 *
 * Everything it makes has a unique name and is deleted at the end.
 */
import { DeliverPolicy, jetstream, jetstreamManager, type JetStreamClient } from "@nats-io/jetstream"
import { Kvm } from "@nats-io/kv"
import { natsConnect } from "../test/support/nats.ts"

const KEYS = Number(process.env["BENCH_KEYS"] ?? 1_000_000)
const TIMERS = Number(process.env["BENCH_TIMERS"] ?? 1_800_000)
const PARTITIONS = 16
const log = (line: string) => process.stdout.write(`${line}\n`)

/** Publishes `count` messages made by `subject`, 2,000 unacknowledged at most. */
const fill = async (js: JetStreamClient, count: number, subject: (i: number) => string, body: string) => {
  const t0 = performance.now()
  const pending = new Set<Promise<unknown>>()
  for (let i = 0; i < count; i++) {
    const p: Promise<unknown> = js.publish(subject(i), body).then(() => pending.delete(p))
    pending.add(p)
    if (pending.size >= 2000) await Promise.race(pending)
  }
  await Promise.all(pending)
  return (performance.now() - t0) / 1000
}

/** Times each step and the probe's publishes during it. */
const probe = (js: JetStreamClient, subject: string) => {
  const acks: Array<readonly [at: number, ms: number]> = []
  let stopped = false
  const running = (async () => {
    while (!stopped) {
      const sent = performance.now()
      await js.publish(subject, "probe")
      acks.push([performance.now(), performance.now() - sent])
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
  })()
  const step = async <A>(label: string, work: () => Promise<A>): Promise<A> => {
    const started = performance.now()
    const result = await work()
    const ended = performance.now()
    // A publish held up across the step's end is counted when its answer comes.
    await new Promise((resolve) => setTimeout(resolve, 50))
    const held = acks.filter(([at, ms]) => at >= started && at - ms <= ended).map(([, ms]) => ms)
    log(`  ${label}: ${(ended - started).toFixed(0)} ms; probe publishes during it: ${held.length}, longest ${Math.max(0, ...held).toFixed(0)} ms`)
    return result
  }
  return { step, stop: async () => ((stopped = true), await running) }
}

const main = async () => {
  const nc = await natsConnect()
  const js = jetstream(nc)
  const jsm = await jetstreamManager(nc)
  const name = `BENCHNATS${Date.now()}`
  const bucket = `${name}_members`
  const timers = `${name}_TIMERS`
  const probeStream = `${name}_PROBE`
  await jsm.streams.add({ name: probeStream, subjects: [`${name}.probe`] })
  const { step, stop } = probe(js, `${name}.probe`)
  try {
    log(`memberflow NATS benchmark: ${KEYS.toLocaleString()} member keys, ${TIMERS.toLocaleString()} timer requests`)
    await new Kvm(js).create(bucket, { history: 1 })
    const keysIn = await fill(js, KEYS, (i) => `$KV.${bucket}.m.member${i}`, "x".repeat(300))
    log(`members bucket: ${KEYS.toLocaleString()} keys written in ${keysIn.toFixed(1)} s`)
    await step("1 s idle (the probe alone)", () => new Promise((resolve) => setTimeout(resolve, 1000)))
    for (const filtered of [true, false]) {
      const consumer = await step(`listing consumer created ${filtered ? "with the member keys' filter" : "unfiltered"}`, () =>
        js.consumers.get(`KV_${bucket}`, { ...(filtered ? { filter_subjects: `$KV.${bucket}.m.>` } : {}), deliver_policy: DeliverPolicy.All, headers_only: true })
      )
      await step("20 fetches of 2,000 keys", async () => {
        for (let f = 0; f < 20; f++) for await (const _ of await consumer.fetch({ max_messages: 2000, expires: 5000 })) void _
      })
    }

    await jsm.streams.add({ name: timers, subjects: [`${name}.t.>`], max_msgs_per_subject: 1 })
    const request = JSON.stringify({ memberId: "member-123456", properties: { journeyId: "bench-long", enrollmentId: "e".repeat(40), due: Date.now() + 1e9 } })
    const timersIn = await fill(js, TIMERS, (i) => `${name}.t.${i % PARTITIONS}.timer${i}`, request)
    log(`timers stream: ${TIMERS.toLocaleString()} requests over ${PARTITIONS} partitions written in ${timersIn.toFixed(1)} s`)
    const last = (await jsm.streams.info(timers)).state.last_seq
    /** Reads the stream (or the partition's subjects) through `last`; JSON-parses the requests of `wanted`. */
    const read = async (filter: string | null, wanted: (partition: number) => boolean) => {
      const consumer = await js.consumers.get(timers, { ...(filter === null ? {} : { filter_subjects: filter }), deliver_policy: DeliverPolicy.All })
      const messages = await consumer.consume({ max_messages: 5000 })
      let parsed = 0
      for await (const msg of messages) {
        if (wanted(Number(msg.subject.split(".")[2]))) (JSON.parse(msg.string()), parsed++)
        if (msg.seq >= last || msg.info.pending === 0) break
      }
      messages.stop()
      return parsed
    }
    const t0 = performance.now()
    for (let partition = 0; partition < PARTITIONS; partition++) {
      await step(`partition ${partition} read through a filtered consumer`, () => read(`${name}.t.${partition}.>`, () => true))
    }
    log(`  the ${PARTITIONS} filtered reads: ${((performance.now() - t0) / 1000).toFixed(1)} s in all`)
    await step(`every partition in one unfiltered read`, () => read(null, () => true))
  } finally {
    await stop()
    for (const stream of [probeStream, timers, `KV_${bucket}`]) await jsm.streams.delete(stream).catch(() => false)
    await nc.close()
  }
}

main().catch((error) => {
  process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`)
  process.exitCode = 1
})
