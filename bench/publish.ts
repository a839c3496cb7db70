/**
 * npm run bench:publish — what publishing a batch's derived events costs the engine's process.
 *
 * Publishes BENCH_BATCHES (default 400) batches of BENCH_BATCH (default 200) `rfm.changed`-sized
 * events to a stream of its own, as the engine's stage two does (engine/ingest/RecordBatch.ts): each
 * with its `Nats-Msg-Id` and the `Memberflow-Applied` header, every PubAck awaited before the next
 * batch. Two ways, alternating, a round of each to warm up and then three rounds each:
 * - `each`: one `StreamPublisher.publish` per event, in an async function, under `Promise.all`
 *   (the engine until 2026-12-07);
 * - `group`: the batch as one `StreamPublisher.publishAll` (the engine since).
 * It prints events per second and this process's CPU time (user + system) per event, each round and
 * the median of the three. The NATS server runs on the same cores; its CPU is not counted here.
 */
import { jetstreamManager } from "@nats-io/jetstream"
import { type Outbound, StreamPublisher } from "../engine/nats/StreamPublisher.ts"
import { APPLIED_HEADER } from "../engine/ingest/RecordBatch.ts"
import { natsConnect, uniqueTopology } from "../test/support/nats.ts"

// As the engine runs (engine/NodeFlags.ts is for the collector; the engine's client sets no stack traces).
Error.stackTraceLimit = 0

const BATCH = Number(process.env["BENCH_BATCH"] ?? 200)
const BATCHES = Number(process.env["BENCH_BATCHES"] ?? 400)
const APPLIED = [[APPLIED_HEADER, "1"]] as const
const log = (line: string) => process.stdout.write(`${line}\n`)

const { stream, subjectPrefix } = uniqueTopology("benchpublish")
const subject = `${subjectPrefix}.rfm.changed`
const body = (i: number) =>
  JSON.stringify({
    id: `rfm-${i}-5f0c2a9e41d7b3c8`,
    type: "rfm.changed",
    memberId: `bm${i % 100_000}`,
    occurredAt: new Date().toISOString(),
    properties: { r: 5, f: 3, m: 4, segment: "champions", previous: { r: 2, f: 3, m: 4, segment: "at-risk" } },
    source: "memberflow"
  })

const nc = await natsConnect()
const jsm = await jetstreamManager(nc)
await jsm.streams.add({ name: stream, subjects: [`${subjectPrefix}.>`] })
const publisher = new StreamPublisher(nc)
try {
  const perEvent = { each: [] as Array<number>, group: [] as Array<number> }
  const run = async (way: "each" | "group", offset: number, warmUp: boolean) => {
    const cpu0 = process.cpuUsage()
    const t0 = performance.now()
    for (let b = 0; b < BATCHES; b++) {
      const first = offset + b * BATCH
      if (way === "each") {
        await Promise.all(
          Array.from({ length: BATCH }, async (_, k) => {
            await publisher.publish(subject, body(first + k), { msgID: `e-${first + k}`, headers: APPLIED })
          })
        )
      } else {
        const messages: Array<Outbound> = []
        for (let k = 0; k < BATCH; k++) messages.push({ subject, data: body(first + k), options: { msgID: `e-${first + k}`, headers: APPLIED } })
        await publisher.publishAll(messages)
      }
    }
    const cpu = process.cpuUsage(cpu0)
    const ms = performance.now() - t0
    const n = BATCH * BATCHES
    const micros = (cpu.user + cpu.system) / n
    if (!warmUp) perEvent[way].push(micros)
    log(`${warmUp ? "warm-up " : ""}${way.padEnd(5)} ${n.toLocaleString()} events in ${ms.toFixed(0)} ms: ${Math.round((n / ms) * 1000).toLocaleString()}/s, ${micros.toFixed(2)} µs of this process's CPU each`)
  }
  log(`memberflow publish benchmark: ${BATCHES} batches of ${BATCH} derived events, stream ${stream}`)
  let offset = 0
  for (let round = 0; round < 4; round++) {
    for (const way of ["each", "group"] as const) {
      await run(way, offset, round === 0)
      offset += BATCH * BATCHES
    }
  }
  const median = (values: Array<number>) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!
  log(`median CPU per event: each ${median(perEvent.each).toFixed(2)} µs, group ${median(perEvent.group).toFixed(2)} µs`)
} finally {
  publisher.close()
  await jsm.streams.delete(stream).catch(() => undefined)
  await nc.close()
}
