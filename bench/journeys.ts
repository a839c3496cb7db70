/**
 * npm run bench:journeys — journeys at scale through `memberflow run`.
 *
 * BENCH_MEMBERS members (default 100,000) each enter a journey whose first step waits BENCH_WAIT_S
 * seconds (default 180); the entries are published evenly over BENCH_SPREAD_S seconds (default 60),
 * so all their timers come due within that minute. Measures enrollments/s (entry through ingestion), steps/s, the lateness of each timer
 * (when the step after the wait was written to ClickHouse minus when it was due) as p50/p99/max, and
 * the engine's peak RSS.
 *
 * BENCH_WAITING (default 0) more members first enter a journey that waits 30 days, so that the
 * burst is measured with that many more timers pending (BENCH_WAITING=900000: 1,000,000 members
 * inside journeys). BENCH_TRIGGERS (default 0) triggering events for other members, spread over the
 * minute the timers come due, enter a journey with one send while the timers fire.
 *
 * BENCH_SWEEP=1 puts a sweep marker on the stream 15 s into the burst, as the hourly sweep
 * (`rfm.recompute`) would when its hour falls there: a pass over every member while the timers fire.
 */
import { writeFileSync } from "node:fs"
import { join } from "node:path"
import { jetstream } from "@nats-io/jetstream"
import { startEngine, tempDir } from "../test/support/engine.ts"
import { journeysDir } from "../test/support/journeys.ts"
import { dropTopology, natsConnect, uniqueTopology } from "../test/support/nats.ts"

Error.stackTraceLimit = 0

const MEMBERS = Number(process.env["BENCH_MEMBERS"] ?? 100_000)
const WAIT_S = Number(process.env["BENCH_WAIT_S"] ?? 180)
const SPREAD_S = Number(process.env["BENCH_SPREAD_S"] ?? 60)
const WAITING = Number(process.env["BENCH_WAITING"] ?? 0)
const TRIGGERS = Number(process.env["BENCH_TRIGGERS"] ?? 0)
const SWEEP = process.env["BENCH_SWEEP"] === "1"
const log = (line: string) => process.stdout.write(`${line}\n`)

const JOURNEY = `id: bench-wait
name: bench
status: active
category: transactional
trigger: { event: { type: bench.enter } }
steps:
  - { id: pause, wait: ${WAIT_S}s }
  - id: after
    send: { channel: sms, template: welcome }
`

const WAITING_JOURNEY = `id: bench-long
name: bench (a month's wait)
status: active
category: transactional
trigger: { event: { type: bench.long } }
steps:
  - { id: pause, wait: 30d }
  - id: after
    send: { channel: sms, template: welcome }
`

const TRIGGERED_JOURNEY = `id: bench-now
name: bench (triggered during the burst)
status: active
category: transactional
trigger: { event: { type: bench.now } }
steps:
  - id: hello
    send: { channel: sms, template: welcome }
`

/** Publishes `count` events made by `make`, at most 1,000 unacknowledged, paced over `spreadMs` (0: as fast as acks come). */
const publishPaced = async (js: ReturnType<typeof jetstream>, count: number, spreadMs: number, make: (i: number) => { subject: string; event: { id: string } }) => {
  const t0 = performance.now()
  const pending = new Set<Promise<unknown>>()
  for (let i = 0; i < count; i++) {
    const { subject, event } = make(i)
    const p: Promise<unknown> = js.publish(subject, JSON.stringify(event), { msgID: event.id }).then(() => pending.delete(p))
    pending.add(p)
    if (pending.size >= 1000) await Promise.race(pending)
    const ahead = (i / count) * spreadMs - (performance.now() - t0)
    if (ahead > 5) await new Promise((r) => setTimeout(r, ahead))
  }
  await Promise.all(pending)
}

const main = async () => {
  const topology = uniqueTopology("benchj")
  const dir = journeysDir()
  writeFileSync(join(dir, "bench-wait.yaml"), JOURNEY)
  writeFileSync(join(dir, "bench-long.yaml"), WAITING_JOURNEY)
  writeFileSync(join(dir, "bench-now.yaml"), TRIGGERED_JOURNEY)
  const nc = await natsConnect()
  const engine = await startEngine({ ...topology.env, JOURNEYS_DIR: dir, MEMBERFLOW_DATA_DIR: tempDir("benchj") }, "benchj")
  const count = async (sql: string) => Number((await engine.sql<{ n: number }>(sql))[0]?.n ?? 0)
  /**
   * The engine's "sweep done" log lines so far (the one at its start, the injected one, and the
   * hour's own when the hour turns during the run), with whether each is the injected one: a pass
   * starts when the engine reaches its marker, so the injected one started after it was published.
   */
  let markerAt = Number.POSITIVE_INFINITY
  const sweepsDone = () =>
    engine
      .output()
      .split("\n")
      .filter((line) => line.includes('"sweep done"'))
      .map((line) => {
        const { timestamp, annotations } = JSON.parse(line) as { timestamp: string; annotations: { members: number; ms: number } }
        return { timestamp, ...annotations, injected: Date.parse(timestamp) - annotations.ms >= markerAt - 1000 }
      })
  try {
    log(`memberflow journeys benchmark: ${MEMBERS.toLocaleString()} members, each waiting ${WAIT_S} s; ${WAITING.toLocaleString()} more waiting 30 days; ${TRIGGERS.toLocaleString()} triggering events during the burst`)
    const js = jetstream(nc)
    if (WAITING > 0) {
      const w0 = performance.now()
      await publishPaced(js, WAITING, 0, (i) => ({
        subject: `${topology.subjectPrefix}.bench.long`,
        event: { id: `long-${i}`, type: "bench.long", memberId: `lm${i}`, occurredAt: new Date().toISOString() }
      }))
      let waiting = 0
      while ((waiting = await count("SELECT count() AS n FROM journey_enrollments FINAL WHERE journey_id = 'bench-long'")) < WAITING) {
        await new Promise((r) => setTimeout(r, 2000))
      }
      const seconds = (performance.now() - w0) / 1000
      log(`${waiting.toLocaleString()} members waiting 30 days, enrolled in ${seconds.toFixed(1)} s = ${Math.round(waiting / seconds).toLocaleString()} enrollments/s (published as fast as acknowledged)`)
      const metrics = String((await engine.get("/metrics")).body)
      log(`timers the engine keeps: ${/^memberflow_timers_pending\S* (\d+)/m.exec(metrics)?.[1] ?? "?"}`)
    }
    const t0 = performance.now()
    // Entries paced evenly over SPREAD_S seconds: a wait counts from its entry's arrival, so the
    // timers come due over the same span ("100,000 timers due in the same minute").
    await publishPaced(js, MEMBERS, SPREAD_S * 1000, (i) => ({
      subject: `${topology.subjectPrefix}.bench.enter`,
      event: { id: `enter-${i}`, type: "bench.enter", memberId: `jm${i}`, occurredAt: new Date().toISOString() }
    }))
    const sweep = !SWEEP
      ? Promise.resolve()
      : new Promise((r) => setTimeout(r, Math.max(0, t0 + (WAIT_S + 15) * 1000 - performance.now()))).then(async () => {
          const at = Date.now()
          markerAt = at
          const marker = { id: `mf-pass-sweep-bench-${at}`, type: "memberflow.pass", memberId: "memberflow", occurredAt: new Date(at).toISOString(), properties: { kind: "sweep", cutpoints: null }, source: "memberflow" }
          await js.publish(`${topology.subjectPrefix}.memberflow.pass`, JSON.stringify(marker), { msgID: marker.id })
          log(`sweep marker published at ${new Date(at).toISOString().slice(11, 19)}`)
        })
    // Triggering events during the minute the timers come due (they start WAIT_S after the first entry).
    const triggers =
      TRIGGERS === 0
        ? Promise.resolve()
        : new Promise((r) => setTimeout(r, Math.max(0, t0 + WAIT_S * 1000 - performance.now()))).then(() =>
            publishPaced(js, TRIGGERS, SPREAD_S * 1000, (i) => ({
              subject: `${topology.subjectPrefix}.bench.now`,
              event: { id: `now-${i}`, type: "bench.now", memberId: `nm${i}`, occurredAt: new Date().toISOString() }
            }))
          )
    let entered = 0
    while ((entered = await count("SELECT count() AS n FROM journey_enrollments FINAL WHERE journey_id = 'bench-wait'")) < MEMBERS) {
      await new Promise((r) => setTimeout(r, 1000))
    }
    const enrolSeconds = (performance.now() - t0) / 1000
    log(`enrolled ${entered.toLocaleString()} members in ${enrolSeconds.toFixed(1)} s = ${Math.round(entered / enrolSeconds).toLocaleString()} enrollments/s (each: entry, a step, a timer)`)

    let done = 0
    while ((done = await count("SELECT count() AS n FROM journey_steps FINAL WHERE journey_id = 'bench-wait' AND step_id = 'after'")) < MEMBERS) {
      await new Promise((r) => setTimeout(r, 1000))
      if (performance.now() - t0 > (WAIT_S + 1200) * 1000) throw new Error(`only ${done} of ${MEMBERS} timers fired`)
    }
    // Lateness: from when the wait was due to when the step after it was written to ClickHouse
    // (`written_at`, set by ClickHouse) — the engine's own `at` is the arrival of the timer event.
    const [late] = await engine.sql<{ p50: number; p99: number; max: number; span: number; ranMs: number }>(
      `WITH per AS (
         SELECT enrollment_id,
                minIf(at, outcome = 'waiting') + toIntervalSecond(${WAIT_S}) AS due,
                minIf(written_at, step_id = 'after') AS ran
         FROM journey_steps WHERE journey_id = 'bench-wait' GROUP BY enrollment_id)
       SELECT quantileExact(0.5)(dateDiff('millisecond', due, ran)) AS p50,
              quantileExact(0.99)(dateDiff('millisecond', due, ran)) AS p99,
              max(dateDiff('millisecond', due, ran)) AS max,
              dateDiff('second', min(due), max(due)) AS span,
              dateDiff('millisecond', min(ran), max(ran)) AS ranMs
       FROM per`
    )
    // Where the late ones are: p99 per 5 s of due time (a spike points at a pause: checkpoint, GC).
    const buckets = await engine.sql<{ at: string; n: number; p50: number; p99: number }>(
      `WITH per AS (
         SELECT enrollment_id,
                minIf(at, outcome = 'waiting') + toIntervalSecond(${WAIT_S}) AS due,
                minIf(written_at, step_id = 'after') AS ran
         FROM journey_steps WHERE journey_id = 'bench-wait' GROUP BY enrollment_id)
       SELECT toString(toStartOfInterval(due, INTERVAL 5 SECOND)) AS at, count() AS n,
              quantileExact(0.5)(dateDiff('millisecond', due, ran)) AS p50,
              quantileExact(0.99)(dateDiff('millisecond', due, ran)) AS p99
       FROM per GROUP BY at ORDER BY at`
    )
    log(`lateness by due time (5 s buckets): ${buckets.map((b) => `${b.at.slice(11)} n=${b.n} p50=${b.p50} p99=${b.p99}`).join("; ")}`)
    const ranSeconds = Math.max(Number(late?.ranMs ?? 0), 1) / 1000
    log(`all ${MEMBERS.toLocaleString()} timers fired; the steps after them ran within ${ranSeconds.toFixed(1)} s = ${Math.round(MEMBERS / ranSeconds).toLocaleString()} timer steps/s`)
    log(`timers due within ${late?.span} s of each other; lateness p50 ${late?.p50} ms, p99 ${late?.p99} ms, max ${late?.max} ms`)
    await triggers
    await sweep
    // The injected sweep's own end (a pass over every member, worked through between batches).
    if (SWEEP) {
      const s0 = performance.now()
      while (!sweepsDone().some((done) => done.injected) && performance.now() - s0 < 600_000) {
        await new Promise((r) => setTimeout(r, 2000))
      }
    }
    if (TRIGGERS > 0) {
      const [now] = await engine.sql<{ n: number; p50: number; p99: number }>(
        `SELECT count() AS n, quantileExact(0.5)(dateDiff('millisecond', at, written_at)) AS p50, quantileExact(0.99)(dateDiff('millisecond', at, written_at)) AS p99
         FROM journey_steps WHERE journey_id = 'bench-now' AND step_id = 'hello'`
      )
      log(`triggered entries during the burst: ${now?.n}; from the event's arrival to the step written: p50 ${now?.p50} ms, p99 ${now?.p99} ms`)
    }
    for (const done of sweepsDone()) {
      const which = done.injected ? "the injected sweep" : "a sweep of the engine's own (its start, or the hour's)"
      log(`${which} done at ${done.timestamp.slice(11, 19)}: ${done.members.toLocaleString()} members in ${(done.ms / 1000).toFixed(1)} s`)
    }
    if (SWEEP && !sweepsDone().some((done) => done.injected)) log("the injected sweep was not done within 10 minutes")
    const status = (await import("node:fs")).readFileSync(`/proc/${engine.child.pid}/status`, "utf8")
    log(`engine peak RSS ${Math.round(Number(/^VmHWM:\s+(\d+)/m.exec(status)?.[1] ?? 0) / 1024)} MB`)
  } finally {
    await engine.kill("SIGTERM")
    // BENCH_ENGINE_LOG=<file>: the engine's log, for looking into a run.
    const logFile = process.env["BENCH_ENGINE_LOG"]
    if (logFile !== undefined) writeFileSync(logFile, engine.output())
    await nc.close()
    await dropTopology(topology)
  }
}

main().catch((error) => {
  process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`)
  process.exitCode = 1
})
