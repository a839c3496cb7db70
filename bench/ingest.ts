/**
 * npm run bench:ingest — sustained ingestion through `memberflow run` on this machine.
 *
 * Publishes BENCH_EVENTS events (default 1,000,000) for BENCH_MEMBERS members (default 100,000) to a
 * fresh stream, then starts BENCH_ENGINES `memberflow run` processes (default 1) and measures: events/s
 * made durable while they drain the backlog, publish→durable latency (p50/p99 from the engines'
 * histograms) under the backlog and at a paced rate (BENCH_PACED_RATE, default half the measured
 * throughput; each second published in BENCH_PACED_STEPS even steps, default 50), each engine's
 * peak RSS, and the raw JetStream consume rate (decode + ack each, nothing else) on the same stream
 * as the ceiling.
 */
import { AckPolicy, jetstream, jetstreamManager } from "@nats-io/jetstream"
import { readdirSync, readFileSync, writeFileSync } from "node:fs"
import { setPriority } from "node:os"
import { dropTopology, natsConnect, uniqueTopology } from "../test/support/nats.ts"
import { drained as enginesDrained, startEngine, tempDir } from "../test/support/engine.ts"
import { journeysDir } from "../test/support/journeys.ts"
import { procStat } from "../engine/ProcStat.ts"
import { StreamPublisher } from "../engine/nats/StreamPublisher.ts"
import { makeEvent as makeBenchEvent } from "./events.ts"

// Cheaper publishes: the NATS client builds an Error per request (LIMITS.md).
Error.stackTraceLimit = 0

const EVENTS = Number(process.env["BENCH_EVENTS"] ?? 1_000_000)
const MEMBERS = Number(process.env["BENCH_MEMBERS"] ?? 100_000)
const PACED_RATE = Number(process.env["BENCH_PACED_RATE"] ?? 0)
/** BENCH_PACED_STEPS: how many even steps each paced second is published in (1 = the whole second's events at once, as before 2026-12-05). */
const PACED_STEPS = Math.max(1, Number(process.env["BENCH_PACED_STEPS"] ?? 50))
/**
 * BENCH_PACED_SPREAD=1: the paced events' times spread over 300 days like the backlog's, as before
 * 2026-12-05, night. By default they happen as they are published (live traffic): spread, each
 * group commit wrote a part into each of ~11 monthly partitions of \`events\`.
 */
const PACED_SPREAD = process.env["BENCH_PACED_SPREAD"] === "1"
/**
 * BENCH_PUBLISHER=client: the events published with the NATS client's `js.publish`, as before
 * 2026-12-06, afternoon. By default they go through the engine's own StreamPublisher (the same
 * wire protocol: `Nats-Msg-Id`, each PubAck awaited), which costs the publishing process about
 * half the CPU. The publisher stands in for upstream services on other machines, yet it runs on
 * the engine's two cores: with `js.publish` it took 11–45% of a core in the paced seconds
 * (BENCHMARKS.md).
 */
const CLIENT_PUBLISH = process.env["BENCH_PUBLISHER"] === "client"
/**
 * BENCH_PUBLISHER_NICE=n: the bench's own thread (its publishing) at nice n for the paced seconds,
 * back to 0 after them. The publisher stands in for upstream services on other machines; at nice 0
 * it competes with the engine's thread as an equal (both in this session's scheduling group). Not
 * set: as before (nice 0 throughout).
 */
const PUBLISHER_NICE = process.env["BENCH_PUBLISHER_NICE"] === undefined ? null : Number(process.env["BENCH_PUBLISHER_NICE"])
/** Engine processes sharing the stream (scale-out); each has its own embedded ClickHouse. */
const ENGINES = Number(process.env["BENCH_ENGINES"] ?? 1)

/** BENCH_JOURNEYS=0: the program alone (profiles, tiers, RFM, tags), no journeys — the pipeline of issue 2. */
const JOURNEYS = process.env["BENCH_JOURNEYS"] !== "0"

/**
 * Whether each paced second is stamped with the monotonic clock: with BENCH_CPU_PROFILE (the engines
 * write CPU profiles on it: test/support/engine.ts) or any BENCH_NODE_ARGS (bench/holds.mjs and
 * bench/promoted.mjs write on it too).
 */
const stampClock = process.env["BENCH_CPU_PROFILE"] !== undefined || (process.env["BENCH_NODE_ARGS"] ?? "").trim() !== ""

const log = (line: string) => process.stdout.write(`${line}\n`)

const makeEvent = (i: number, base: number, live = false) => makeBenchEvent(i, base, EVENTS, MEMBERS, live)

interface Histogram { readonly buckets: Array<[number, number]>; readonly count: number }

const mb = (bytes: number) => `${Math.round(bytes / 1048576).toLocaleString()} MB`

const parseMetrics = (text: string) => {
  const value = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, "m").exec(text)?.[1] ?? 0)
  const buckets: Array<[number, number]> = []
  for (const match of text.matchAll(/^memberflow_event_latency_seconds_bucket\{le="([^"]+)"\} (\S+)$/gm)) {
    buckets.push([match[1] === "+Inf" ? Infinity : Number(match[1]), Number(match[2])])
  }
  // ClickHouse group commits by table: [count, seconds in total].
  const inserts = new Map<string, [number, number]>()
  for (const match of text.matchAll(/^memberflow_clickhouse_insert_seconds_(count|sum)\{table="([^"]+)"\} (\S+)$/gm)) {
    const entry = inserts.get(match[2]!) ?? [0, 0]
    entry[match[1] === "count" ? 0 : 1] = Number(match[3])
    inserts.set(match[2]!, entry)
  }
  return {
    memory: `RSS ${mb(value("process_resident_memory_bytes"))}, V8 heap ${mb(value("nodejs_heap_used_bytes"))} of ${mb(value("nodejs_heap_size_total_bytes"))}, external ${mb(value("nodejs_external_memory_bytes"))}`,
    inserts,
    received: value("memberflow_events_received_total"),
    applied: value("memberflow_events_applied_total"),
    derived: value("memberflow_derived_events_published_total"),
    /** Seconds the ingest loop waited, with the next batch applied, on earlier batches' writes (as many as are written at once being under way). */
    writeWait: value("memberflow_ingest_write_wait_seconds_total"),
    /** Member states written to KV by checkpoints. */
    checkpointed: value("memberflow_checkpoint_states_total"),
    /** Batches' publishes: how many, and their seconds from the first publish to the last acknowledgement in all. */
    publishBatches: value("memberflow_publish_seconds_count"),
    publishSeconds: value("memberflow_publish_seconds_sum"),
    /** Seconds batches waited for the ClickHouse sink to take their rows. */
    sinkWait: value("memberflow_row_sink_wait_seconds_total"),
    /** CPU seconds so far: the engine's own thread, and its whole process (reader thread, ClickHouse, V8's helpers too). */
    threadCpu: value("memberflow_engine_thread_cpu_seconds_total"),
    processCpu: value("process_cpu_seconds_total"),
    /**
     * The engine's thread ready to run and waiting for a core so far; its holds of 250 ms or more, and
     * of them its time on a core and waiting for one (engine/Metrics.ts, `watchHolds`; the rest it was blocked).
     */
    threadWaiting: value("memberflow_engine_thread_waiting_seconds_total"),
    held: value("memberflow_event_loop_held_seconds_total"),
    heldCpu: value("memberflow_event_loop_held_cpu_seconds_total"),
    heldWaiting: value("memberflow_event_loop_held_waiting_seconds_total"),
    /** The longest the engine's thread held its callbacks up since the previous scrape. */
    loopMaxMs: Math.round(value("nodejs_eventloop_lag_max_seconds") * 1000),
    /** The longest single collector pause since the previous scrape, and the collector's pauses in all so far (ms). */
    gcMaxMs: Math.round(value("nodejs_gc_pause_max_seconds") * 1000),
    /** Passes over every member under way (the hourly sweep): the engine's gauge at the scrape. */
    passes: value("memberflow_passes_under_way"),
    gcMs: [...text.matchAll(/^memberflow_gc_pause_seconds_sum\{kind="[^"]+"\} (\S+)$/gm)].reduce((sum, match) => sum + Number(match[1]) * 1000, 0),
    /**
     * Full collections ended so far (Node's `gc` entries of kind major). Their marking, most of it on
     * the engine's thread on a full machine, comes in the second or so before each (BENCHMARKS.md,
     * 2026-12-08).
     */
    fullGcs: Number(/^memberflow_gc_pause_seconds_count\{kind="major"\} (\S+)$/m.exec(text)?.[1] ?? 0),
    latency: { buckets, count: value("memberflow_event_latency_seconds_count") } as Histogram
  }
}

const quantile = (h: Histogram, base: Histogram | null, q: number): string => {
  const count = h.count - (base?.count ?? 0)
  if (count <= 0) return "n/a"
  for (let i = 0; i < h.buckets.length; i++) {
    const [le, c] = h.buckets[i]!
    if (c - (base?.buckets[i]?.[1] ?? 0) >= q * count) return Number.isFinite(le) ? `≤ ${le * 1000} ms` : "> 30 s"
  }
  return "n/a"
}

/** `h` minus `base`, bucket by bucket, added to `into` (null: start from nothing). */
const addDelta = (into: Histogram | null, h: Histogram, base: Histogram): Histogram => ({
  buckets: h.buckets.map(([le, c], i): [number, number] => [le, (into?.buckets[i]?.[1] ?? 0) + c - (base.buckets[i]?.[1] ?? 0)]),
  count: (into?.count ?? 0) + h.count - base.count
})

/**
 * The paced seconds' latency told apart by a yes or no of each second: the events written in the
 * seconds of each kind, and the count of the "yes" seconds. What was written after the last second
 * goes with it (`addRest`).
 */
class SecondsApart {
  yes: Histogram | null = null
  no: Histogram | null = null
  yesSeconds = 0
  last = false

  add(yes: boolean, h: Histogram, base: Histogram): void {
    this.last = yes
    if (yes) this.yesSeconds++
    this.addRest(h, base)
  }

  /** Written since `base`, with the kind of the last second. */
  addRest(h: Histogram, base: Histogram): void {
    if (this.last) this.yes = addDelta(this.yes, h, base)
    else this.no = addDelta(this.no, h, base)
  }
}

/** Events written in `h` and not in `base` that took more than `seconds` (a bucket bound). */
const slowerThan = (h: Histogram, base: Histogram, seconds: number): number => {
  const at = h.buckets.findIndex(([le]) => le === seconds)
  if (at === -1) return 0
  return h.count - base.count - (h.buckets[at]![1] - (base.buckets[at]?.[1] ?? 0))
}

const rssOf = (pid: number) => {
  const status = readFileSync(`/proc/${pid}/status`, "utf8")
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+)`, "m").exec(status)?.[1] ?? 0)
  return { peakMb: kb("VmHWM") / 1024, nowMb: kb("VmRSS") / 1024 }
}

/** CPU seconds the whole machine has been busy (not idle nor waiting on I/O), from /proc/stat. */
const boxBusySeconds = (): number => {
  const fields = readFileSync("/proc/stat", "latin1").split("\n", 1)[0]!.trim().split(/\s+/).slice(1).map(Number)
  const idle = (fields[3] ?? 0) + (fields[4] ?? 0)
  return (fields.reduce((sum, n) => sum + n, 0) - idle) / 100
}

/** The local nats-server's pid, found once by name, or null. */
const natsPid = (() => {
  for (const entry of readdirSync("/proc")) {
    if (/^\d+$/.test(entry) && procStat(`/proc/${entry}/stat`)?.name === "nats-server") return Number(entry)
  }
  return null
})()
/** CPU seconds the local nats-server process has used, or null. */
const natsCpuSeconds = (): number | null => {
  const stat = natsPid === null ? null : procStat(`/proc/${natsPid}/stat`)
  // utime and stime, in ticks of 1/100 s.
  return stat === null ? null : (stat.field(14) + stat.field(15)) / 100
}

const main = async () => {
  const topology = uniqueTopology("bench")
  Object.assign(topology.env, JOURNEYS ? {} : { JOURNEYS_DIR: journeysDir([], { programOnly: true }) })
  const nc = await natsConnect()
  log(`memberflow ingest benchmark: ${EVENTS.toLocaleString()} events, ${MEMBERS.toLocaleString()} members, ${JOURNEYS ? "the shipped journeys running" : "no journeys (program.yaml only)"}, stream ${topology.stream}`)
  // The stream and consumer exist before the first publish: `memberflow migrate`-like set-up run.
  const setup = await startEngine({ ...topology.env, MEMBERFLOW_DATA_DIR: tempDir("bench-setup") }, "bench")
  await setup.kill("SIGTERM")
  let engines = [setup]
  // Let the stopped engine's outstanding pull expire (5 s) so no event is parked on it.
  await new Promise((r) => setTimeout(r, 6_000))
  // Summed over the engines; the latency histogram too (same buckets), which is what a pooled p99 needs.
  const metrics = async () => {
    const each = await Promise.all(engines.map(async (engine) => parseMetrics(String((await engine.get("/metrics")).body))))
    return each.reduce((sum, m) => ({
      memory: `${sum.memory}; ${m.memory}`,
      inserts: new Map([...sum.inserts, ...m.inserts].map(([table]) => [table, [0, 1].map((k) => (sum.inserts.get(table)?.[k] ?? 0) + (m.inserts.get(table)?.[k] ?? 0)) as [number, number]])),
      received: sum.received + m.received,
      applied: sum.applied + m.applied,
      derived: sum.derived + m.derived,
      writeWait: sum.writeWait + m.writeWait,
      checkpointed: sum.checkpointed + m.checkpointed,
      publishBatches: sum.publishBatches + m.publishBatches,
      publishSeconds: sum.publishSeconds + m.publishSeconds,
      sinkWait: sum.sinkWait + m.sinkWait,
      threadCpu: sum.threadCpu + m.threadCpu,
      processCpu: sum.processCpu + m.processCpu,
      threadWaiting: sum.threadWaiting + m.threadWaiting,
      held: sum.held + m.held,
      heldCpu: sum.heldCpu + m.heldCpu,
      heldWaiting: sum.heldWaiting + m.heldWaiting,
      loopMaxMs: Math.max(sum.loopMaxMs, m.loopMaxMs),
      gcMaxMs: Math.max(sum.gcMaxMs, m.gcMaxMs),
      gcMs: sum.gcMs + m.gcMs,
      fullGcs: sum.fullGcs + m.fullGcs,
      passes: sum.passes + m.passes,
      latency: {
        buckets: sum.latency.buckets.map(([le, c], i): [number, number] => [le, c + (m.latency.buckets[i]?.[1] ?? 0)]),
        count: sum.latency.count + m.latency.count
      }
    }))
  }
  const streamPublisher = new StreamPublisher(nc)
  try {
    const js = jetstream(nc)
    const publish = (subject: string, data: string, msgID: string): Promise<unknown> =>
      CLIENT_PUBLISH ? js.publish(subject, data, { msgID }) : streamPublisher.publish(subject, data, { msgID })
    const base = Date.now() - 60_000
    const t0 = performance.now()
    let published = 0
    const pending = new Set<Promise<unknown>>()
    for (let i = 0; i < EVENTS; i++) {
      const event = makeEvent(i, base)
      const p = publish(`${topology.subjectPrefix}.${event.type}`, JSON.stringify(event), event.id).then(() => {
        published++
        pending.delete(p)
      })
      pending.add(p)
      if (pending.size >= 1000) await Promise.race(pending)
    }
    await Promise.all(pending)
    const publishSeconds = (performance.now() - t0) / 1000
    log(`published ${published.toLocaleString()} in ${publishSeconds.toFixed(1)} s (${Math.round(published / publishSeconds).toLocaleString()}/s)`)

    // Throughput: the engine drains the whole backlog; nothing else runs on the machine meanwhile.
    engines = await Promise.all(
      Array.from({ length: ENGINES }, (_, i) => startEngine({ ...topology.env, MEMBERFLOW_DATA_DIR: tempDir(`bench-${i}`) }, "bench"))
    )
    const d0 = performance.now()
    const jsm = await jetstreamManager(nc)
    const drained = () => enginesDrained(engines)
    let last = await metrics()
    // Done when the engine's consumer has nothing left, derived events included.
    while (last.received < EVENTS || !(await drained())) {
      await new Promise((r) => setTimeout(r, 500))
      last = await metrics()
      if (Math.round(performance.now() - d0) % 5000 < 500) {
        const lags = await Promise.all(engines.map(async (engine) => ((await engine.get("/readyz")).body as { ingest?: { lag?: number } }).ingest?.lag ?? -1))
        const stream = await jsm.streams.info(topology.stream)
        log(`  ${((performance.now() - d0) / 1000).toFixed(0)} s: ${last.received.toLocaleString()} received, ${last.applied.toLocaleString()} applied, ${last.derived.toLocaleString()} derived published; stream at ${stream.state.last_seq.toLocaleString()}, engines behind by ${lags.map((l) => l.toLocaleString()).join(", ")}; ${last.memory}; ${last.writeWait.toFixed(1)} s waiting on batches' writes so far`)
      }
      if (performance.now() - d0 > 30 * 60_000) throw new Error("engine did not finish in 30 minutes")
    }
    const totalSeconds = (performance.now() - d0) / 1000
    const saturated = last.latency
    const rate = EVENTS / totalSeconds
    const rss = engines.map((engine) => rssOf(engine.child.pid!))
    log(`${ENGINES} engine${ENGINES > 1 ? "s" : ""}: ${EVENTS.toLocaleString()} events made durable from a backlog in ${totalSeconds.toFixed(1)} s = ${Math.round(rate).toLocaleString()} events/s sustained`)
    log(`latency publish→durable under a full backlog: p50 ${quantile(saturated, null, 0.5)}, p99 ${quantile(saturated, null, 0.99)}`)

    // The first sweep. An engine ranks the population only once it has caught up with the stream
    // (engine/Maintenance.ts), so after a history import the first cut points come now, and the pass
    // at their marker scores every member (an `rfm.changed` each, published and written like an
    // event). That is a fresh deployment's one-off, twice the work of an event for each member an
    // event comes for while it lasts: it is waited for here and reported on its own, and the paced
    // seconds below are the live traffic after it. (On 2026-12-06 it fell inside the paced seconds:
    // p99 ≤ 2.5 s in them, 7–12% over 1 s; BENCHMARKS.md.)
    const s0 = performance.now()
    const derivedBefore = last.derived
    let sawPass = false
    for (;;) {
      await new Promise((r) => setTimeout(r, 250))
      last = await metrics()
      if (last.passes > 0) sawPass = true
      else if (sawPass && (await drained())) break
      if (!sawPass && performance.now() - s0 > 30_000) break
      if (performance.now() - s0 > 180_000) throw new Error("the first sweep did not end in 3 minutes")
    }
    log(
      sawPass
        ? `first sweep (cut points from the whole population, every member scored at its marker): over ${((performance.now() - s0) / 1000).toFixed(1)} s after the backlog, ${(last.derived - derivedBefore).toLocaleString()} derived events published`
        : "no sweep began within 30 s of the backlog's end"
    )

    let paced = ""
    const pacedRate = PACED_RATE > 0 ? PACED_RATE : Math.round((rate * 0.5) / 100) * 100
    if (pacedRate > 0) {
      const before = last.latency
      // The previous second's scrape: each paced second's figures are what changed since it.
      let prior = last
      let priorBox = boxBusySeconds()
      let priorNats = natsCpuSeconds()
      // The paced seconds apart by whether a pass over every member (the hourly sweep) was under way
      // at their start or end: the sweep is an hour's minute or so, and this phase can be all of it.
      const pass = new SecondsApart()
      // The paced seconds apart by whether the engines published derived events at a quarter or more
      // of the paced rate in them (the burst after the history: `derivedThisSecond` below), so that
      // the burst and steady live traffic each have their own figures (by the second an event was
      // written in, as for the pass). The headline p99 is over all of them.
      const burst = new SecondsApart()
      const insertsBefore = last.inserts
      const seconds = 20
      // Per paced second: the events written in it after more than 1 s, and the full collections that ended in it.
      const lateBySecond: Array<number> = []
      const fullGcsBySecond: Array<number> = []
      // The calling thread only (Linux): the engines, started before, keep their own.
      if (PUBLISHER_NICE !== null) setPriority(PUBLISHER_NICE)
      for (let s = 0; s < seconds; s++) {
        const tick = performance.now()
        const batch: Array<Promise<unknown>> = []
        // Spread over the second in PACED_STEPS even steps (20 ms each by default), as independent
        // upstream publishers would be (the whole second's events published at once made the last of
        // them wait behind the rest).
        for (let step = 0, k = 0; step < PACED_STEPS; step++) {
          await new Promise((r) => setTimeout(r, Math.max(0, tick + (step * 1000) / PACED_STEPS - performance.now())))
          for (const end = Math.round(((step + 1) * pacedRate) / PACED_STEPS); k < end; k++) {
            const event = makeEvent(EVENTS + s * pacedRate + k, Date.now(), !PACED_SPREAD)
            batch.push(publish(`${topology.subjectPrefix}.${event.type}`, JSON.stringify({ ...event, id: `paced-${event.id}` }), `paced-${event.id}`))
          }
        }
        await Promise.all(batch)
        await new Promise((r) => setTimeout(r, Math.max(0, 1000 - (performance.now() - tick))))
        // Where a paced event waits: still unread (received behind published), or read and not yet written.
        const lags = await Promise.all(engines.map(async (engine) => ((await engine.get("/readyz")).body as { ingest?: { lag?: number } }).ingest?.lag ?? -1))
        const scraped = await metrics()
        const now = scraped.latency
        const durable = now.count - before.count
        // When the late events were written: those over 1 s in this second (a stall shows as a spike).
        const late = slowerThan(now, prior.latency, 1)
        pass.add(prior.passes > 0 || scraped.passes > 0, now, prior.latency)
        const gcThisSecond = Math.round(scraped.gcMs - prior.gcMs)
        const fullGcsThisSecond = scraped.fullGcs - prior.fullGcs
        lateBySecond.push(late)
        fullGcsBySecond.push(fullGcsThisSecond)
        // The engine's own events published this second: after the history, each member's first live
        // event moves its recency score (an rfm.changed) and often a tag, nearly one per event at first.
        const derivedThisSecond = scraped.derived - prior.derived
        burst.add(derivedThisSecond * 4 >= pacedRate, now, prior.latency)
        // How long the engines' loops sat idle on NATS's acknowledgements or the ClickHouse sink this second.
        const waitedThisSecond = Math.round((scraped.writeWait - prior.writeWait) * 1000)
        const checkpointedThisSecond = scraped.checkpointed - prior.checkpointed
        // What the loop waited on: the batches' acknowledgements (mean per batch), the sink taking rows.
        const acked = scraped.publishBatches - prior.publishBatches
        const ackMs = acked > 0 ? Math.round(((scraped.publishSeconds - prior.publishSeconds) * 1000) / acked) : 0
        const sinkWaitMs = Math.round((scraped.sinkWait - prior.sinkWait) * 1000)
        // Where the two cores went this second: the engine's thread, its whole process, NATS, the machine.
        const box = boxBusySeconds()
        const nats = natsCpuSeconds()
        const ms = (seconds: number) => Math.round(seconds * 1000)
        const cpuText = `CPU: engine thread ${ms(scraped.threadCpu - prior.threadCpu)} ms (waiting for a core ${ms(scraped.threadWaiting - prior.threadWaiting)} ms), engine process ${ms(scraped.processCpu - prior.processCpu)} ms, nats-server ${nats === null || priorNats === null ? "?" : ms(nats - priorNats)} ms, machine ${ms(box - priorBox)} ms busy; holds ${ms(scraped.held - prior.held)} ms, the thread on a core ${ms(scraped.heldCpu - prior.heldCpu)} ms of them and waiting for one ${ms(scraped.heldWaiting - prior.heldWaiting)} ms`
        priorBox = box
        priorNats = nats
        prior = scraped
        log(`  paced ${s + 1} s: ${((s + 1) * pacedRate).toLocaleString()} published, ${durable.toLocaleString()} durable (${late.toLocaleString()} of them written this second after more than 1 s); engines behind the stream by ${lags.map((l) => l.toLocaleString()).join(", ")};${pass.last ? " a pass under way;" : ""} event loop held up to ${scraped.loopMaxMs} ms; collector ${gcThisSecond} ms, longest pause ${scraped.gcMaxMs} ms, ${fullGcsThisSecond} full collections ended; ${derivedThisSecond.toLocaleString()} derived published; ${waitedThisSecond} ms waiting on earlier batches' writes; ${checkpointedThisSecond.toLocaleString()} states checkpointed; publishes acknowledged in ${ackMs} ms a batch (${acked} batches), ${sinkWaitMs} ms waiting for the row sink; ${cpuText}${stampClock ? ` (monotonic ${(Number(process.hrtime.bigint() / 1000n) / 1e6).toFixed(2)} s, the profiles' clock)` : ""}`)
      }
      const target = EVENTS + seconds * pacedRate
      while ((last = await metrics()).received < target || !(await drained())) await new Promise((r) => setTimeout(r, 250))
      if (PUBLISHER_NICE !== null) setPriority(0)
      paced = `latency at a paced ${pacedRate.toLocaleString()} events/s for ${seconds} s: p50 ${quantile(last.latency, before, 0.5)}, p99 ${quantile(last.latency, before, 0.99)}`
      log(paced)
      // What was written after the last paced second belongs with it.
      pass.addRest(last.latency, prior.latency)
      burst.addRest(last.latency, prior.latency)
      const part = (h: Histogram | null, n: number) =>
        h === null || n === 0 ? `${n} s, no events` : `${n} s, ${h.count.toLocaleString()} events: p50 ${quantile(h, null, 0.5)}, p99 ${quantile(h, null, 0.99)}, over 1 s ${slowerThan(h, { buckets: [], count: 0 }, 1).toLocaleString()}`
      log(`  while a pass over every member was under way: ${part(pass.yes, pass.yesSeconds)}; with none: ${part(pass.no, seconds - pass.yesSeconds)}`)
      log(`  with derived events at a quarter of the paced rate or more (the first live events after the history): ${part(burst.yes, burst.yesSeconds)}; the other seconds: ${part(burst.no, seconds - burst.yesSeconds)}`)
      // A full collection's marking takes the engine's thread in the second or so before it ends: the
      // late events written in a second with one ending, or on either side of it, are counted as near it.
      const withFull = fullGcsBySecond.flatMap((n, s) => (n > 0 ? [s] : []))
      const near = new Set(withFull.flatMap((s) => [s - 1, s, s + 1]))
      const lateNear = lateBySecond.reduce((sum, n, s) => sum + (near.has(s) ? n : 0), 0)
      const lateAll = lateBySecond.reduce((sum, n) => sum + n, 0)
      log(
        `  full collections ended in the paced seconds: ${withFull.length === 0 ? "none" : withFull.map((s) => `${s + 1}`).join(", ")}; events written after more than 1 s in those seconds or beside them: ${lateNear.toLocaleString()} of ${lateAll.toLocaleString()}`
      )
      // The whole distribution, bucket by bucket: the quantiles above only name a bucket's bound.
      const spread = last.latency.buckets.map(([le, c], i) => {
        const below = i === 0 ? 0 : last.latency.buckets[i - 1]![1] - (before.buckets[i - 1]?.[1] ?? 0)
        return `${Number.isFinite(le) ? `≤ ${le * 1000} ms` : "more"} ${(c - (before.buckets[i]?.[1] ?? 0) - below).toLocaleString()}`
      })
      log(`  paced latency by bucket: ${spread.join(", ")}`)
      const inserts = [...last.inserts].map(([table, [count, sum]]) => {
        const [count0, sum0] = insertsBefore.get(table) ?? [0, 0]
        return `${table} ${(count - count0).toLocaleString()}, mean ${((1000 * (sum - sum0)) / Math.max(1, count - count0)).toFixed(0)} ms`
      })
      log(`ClickHouse group commits while paced: ${inserts.join("; ")}`)
    }
    log(`engine peak RSS ${rss.map((r) => `${r.peakMb.toFixed(0)} MB`).join(", ")}`)

    // The ceiling: a bare consumer on the same stream, decode + ack each message, nothing else.
    await jsm.consumers.add(topology.stream, { durable_name: "raw", ack_policy: AckPolicy.Explicit, max_ack_pending: 50_000 })
    const consumer = await js.consumers.get(topology.stream, "raw")
    const messages = await consumer.consume({ max_messages: 8000 })
    const r0 = performance.now()
    let raw = 0
    for await (const msg of messages) {
      JSON.parse(new TextDecoder().decode(msg.data))
      msg.ack()
      if (++raw >= EVENTS) break
    }
    const rawRate = raw / ((performance.now() - r0) / 1000)
    log(`raw JetStream consume (decode + ack each): ${Math.round(rawRate).toLocaleString()} events/s`)
    log(`ratio engine / raw consume: ${(rate / rawRate).toFixed(2)}`)
  } finally {
    await Promise.all(engines.map((engine) => engine.kill("SIGTERM")))
    // BENCH_ENGINE_LOG=<file>: the engines' logs, for looking into a run.
    const logFile = process.env["BENCH_ENGINE_LOG"]
    if (logFile !== undefined) writeFileSync(logFile, engines.map((engine) => engine.output()).join("\n"))
    streamPublisher.close()
    await nc.close()
    await dropTopology(topology)
  }
}

main().catch((error) => {
  process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`)
  process.exitCode = 1
})
