/**
 * npm run bench:journeys — journeys at scale through `memberflow run`.
 *
 * BENCH_MEMBERS members (default 100,000) each enter a journey whose first step waits BENCH_WAIT_S
 * seconds (default 180); the entries are published evenly over BENCH_SPREAD_S seconds (default 60),
 * so all their timers come due within that minute. Measures enrollments/s (entry through ingestion), steps/s, the lateness of each timer
 * (when the step after the wait was written to ClickHouse minus when it was due) as p50/p99/max, and
 * the engine's peak RSS.
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

const main = async () => {
  const topology = uniqueTopology("benchj")
  const dir = journeysDir()
  writeFileSync(join(dir, "bench-wait.yaml"), JOURNEY)
  const nc = await natsConnect()
  const engine = await startEngine({ ...topology.env, JOURNEYS_DIR: dir, MEMBERFLOW_DATA_DIR: tempDir("benchj") }, "benchj")
  const count = async (sql: string) => Number((await engine.sql<{ n: number }>(sql))[0]?.n ?? 0)
  try {
    log(`memberflow journeys benchmark: ${MEMBERS.toLocaleString()} members, each waiting ${WAIT_S} s`)
    const js = jetstream(nc)
    const t0 = performance.now()
    const pending = new Set<Promise<unknown>>()
    // Entries paced evenly over SPREAD_S seconds: a wait counts from its entry's arrival, so the
    // timers come due over the same span ("100,000 timers due in the same minute").
    for (let i = 0; i < MEMBERS; i++) {
      const event = { id: `enter-${i}`, type: "bench.enter", memberId: `jm${i}`, occurredAt: new Date().toISOString() }
      const p: Promise<unknown> = js.publish(`${topology.subjectPrefix}.bench.enter`, JSON.stringify(event), { msgID: event.id }).then(() => pending.delete(p))
      pending.add(p)
      if (pending.size >= 1000) await Promise.race(pending)
      const ahead = (i / MEMBERS) * SPREAD_S * 1000 - (performance.now() - t0)
      if (ahead > 5) await new Promise((r) => setTimeout(r, ahead))
    }
    await Promise.all(pending)
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
    const ranSeconds = Math.max(Number(late?.ranMs ?? 0), 1) / 1000
    log(`all ${MEMBERS.toLocaleString()} timers fired; the steps after them ran within ${ranSeconds.toFixed(1)} s = ${Math.round(MEMBERS / ranSeconds).toLocaleString()} timer steps/s`)
    log(`timers due within ${late?.span} s of each other; lateness p50 ${late?.p50} ms, p99 ${late?.p99} ms, max ${late?.max} ms`)
    const status = (await import("node:fs")).readFileSync(`/proc/${engine.child.pid}/status`, "utf8")
    log(`engine peak RSS ${Math.round(Number(/^VmHWM:\s+(\d+)/m.exec(status)?.[1] ?? 0) / 1024)} MB`)
  } finally {
    await engine.kill("SIGTERM")
    await nc.close()
    await dropTopology(topology)
  }
}

main().catch((error) => {
  process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`)
  process.exitCode = 1
})
