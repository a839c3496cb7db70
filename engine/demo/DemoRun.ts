import { Clock, Console, Effect } from "effect"
import { Nats } from "../Nats.ts"
import { subjectOf, Topology } from "../Topology.ts"
import type { DemoEngine } from "./DemoEngine.ts"
import { parseMetrics, progressLine, total } from "./Progress.ts"
import { type Enrolled, type GoalPlan, respond, type Response } from "./Responder.ts"

/**
 * The demo while the engine works: members answer their journeys (the responder), a progress line
 * every few seconds, and the wait until everything has settled — history applied, every
 * enrollment ended, every message handed over, every answer published — or the time is up.
 */

export interface RunOptions {
  readonly engine: DemoEngine
  readonly seed: string
  readonly currency: string
  readonly dayMs: number
  readonly plans: ReadonlyMap<string, GoalPlan>
  readonly history: number
  readonly started: number
  readonly deadline: number
}

export interface RunResult {
  readonly settled: boolean
  /** when the engine had applied the whole history (ms since start), if it did */
  readonly caughtUpAt: number | null
  readonly settledAt: number
  readonly planned: number
  readonly published: number
}

const num = (value: unknown): number => (typeof value === "number" ? value : Number(value))

export const runUntilSettled = (options: RunOptions) =>
  Effect.gen(function* () {
    const { engine } = options
    const { js, use } = yield* Nats
    const topology = yield* Topology
    const seen = new Set<string>()
    /** members who have had their answer decided: one per member, experiments first */
    const decided = new Set<string>()
    const ordinals = new Map<string, number>()
    const pending: Array<Response> = []
    let watermark = 0
    let planned = 0
    let published = 0
    let caughtUpAt: number | null = null
    let calm = 0
    let lastLine = 0
    const journeyList = [...options.plans.keys()].map((id) => `'${id}'`).join(", ")

    /** New enrollments since the last look (rows arrive a little after entered_at: look back a minute). */
    const watch = Effect.gen(function* () {
      if (journeyList === "") return
      const rows = yield* engine.sql<{ enrollment_id: string; journey_id: string; member_id: string; variant: string; entered: number | string }>(
        `SELECT enrollment_id, journey_id, member_id, variant, toUnixTimestamp64Milli(entered_at) AS entered
         FROM journey_enrollments FINAL
         WHERE journey_id IN (${journeyList}) AND entered_at >= fromUnixTimestamp64Milli(toInt64(${Math.max(0, watermark - 60_000)}), 'UTC')`
      )
      // A purchase counts for every journey the member is in: a member answers one journey only,
      // one with an experiment when they are in one, so no arm converts through another journey.
      const fresh = rows.filter((row) => !seen.has(row.enrollment_id))
      const experimentFirst = (row: { journey_id: string }) => ((options.plans.get(row.journey_id)?.variants.length ?? 0) > 0 ? 0 : 1)
      fresh.sort((a, b) => experimentFirst(a) - experimentFirst(b) || num(a.entered) - num(b.entered) || a.enrollment_id.localeCompare(b.enrollment_id))
      for (const row of fresh) {
        seen.add(row.enrollment_id)
        const enrolled: Enrolled = { enrollmentId: row.enrollment_id, journeyId: row.journey_id, memberId: row.member_id, variant: row.variant, enteredAt: num(row.entered) }
        watermark = Math.max(watermark, enrolled.enteredAt)
        const plan = options.plans.get(enrolled.journeyId)
        if (plan === undefined || decided.has(enrolled.memberId)) continue
        decided.add(enrolled.memberId)
        const arm = `${enrolled.journeyId}/${enrolled.variant}`
        const ordinal = ordinals.get(arm) ?? 0
        ordinals.set(arm, ordinal + 1)
        const response = respond(options.seed, plan, enrolled, ordinal, options.dayMs, options.currency)
        if (response === null) continue
        pending.push(response)
        planned++
      }
    })

    /** Answers whose time has come, published like any upstream event. */
    const answer = Effect.gen(function* () {
      const now = yield* Clock.currentTimeMillis
      const due = pending.filter((r) => r.at <= now)
      if (due.length === 0) return
      yield* use("publish responses", () =>
        Promise.all(due.map((r) => js.publish(subjectOf(topology, r.event.type), JSON.stringify(r.event), { msgID: r.event.id })))
      )
      for (const r of due) pending.splice(pending.indexOf(r), 1)
      published += due.length
    })

    // what the engine has not handled yet of the stream (its /readyz)
    const backlog = Effect.map(engine.lag, (lag) => (lag < 0 ? Number.MAX_SAFE_INTEGER : lag))

    const progress = (phase: string, lag: number) =>
      Effect.gen(function* () {
        const samples = parseMetrics(yield* engine.metrics)
        // the tables, not the metrics: the engine's counters count a row each time it is written,
        // and rows written twice (a member written again before its rows were cleared) counted twice
        const enrolled = yield* engine.sql<{ journey_id: string; n: number | string }>(
          "SELECT journey_id, count() AS n FROM journey_enrollments FINAL GROUP BY journey_id"
        )
        const messages = yield* engine.sql<{ channel: string; status: string; n: number | string }>(
          "SELECT channel, status, count() AS n FROM messages FINAL GROUP BY channel, status"
        )
        const [conversions] = yield* engine.sql<{ n: number | string }>("SELECT count() AS n FROM conversions FINAL")
        const now = yield* Clock.currentTimeMillis
        yield* Console.error(
          progressLine({
            elapsedMs: now - options.started,
            phase,
            published: options.history,
            history: options.history,
            applied: total(samples, "memberflow_events_applied_total"),
            backlog: lag,
            enrolled: new Map(enrolled.map((r) => [r.journey_id, num(r.n)])),
            messages: new Map(messages.map((r) => [`${r.channel}/${r.status}`, num(r.n)])),
            responses: { planned, published },
            conversions: num(conversions?.n ?? 0)
          })
        )
      })

    for (;;) {
      yield* engine.alive
      yield* watch
      yield* answer
      const lag = yield* backlog
      const now = yield* Clock.currentTimeMillis
      if (lag === 0 && caughtUpAt === null) caughtUpAt = now - options.started
      const phase = caughtUpAt === null ? "applying history" : "journeys running"
      if (now - lastLine >= 5_000) {
        lastLine = now
        yield* progress(phase, lag)
      }
      // settled: nothing left anywhere, twice in a row (an answer in flight starts more work)
      if (lag === 0 && pending.length === 0) {
        const [open] = yield* engine.sql<{ active: number | string; queued: number | string }>(
          `SELECT (SELECT countIf(status = 'active') FROM journey_enrollments FINAL) AS active,
                  (SELECT countIf(status = 'queued') FROM messages FINAL) AS queued`
        )
        calm = num(open?.active ?? 1) === 0 && num(open?.queued ?? 1) === 0 ? calm + 1 : 0
      } else {
        calm = 0
      }
      if (calm >= 2) {
        yield* progress("settled", lag)
        return { settled: true, caughtUpAt, settledAt: now - options.started, planned, published } satisfies RunResult
      }
      if (now > options.deadline) {
        yield* progress("out of time", lag)
        return { settled: false, caughtUpAt, settledAt: now - options.started, planned, published } satisfies RunResult
      }
      yield* Effect.sleep("2 seconds")
    }
  }).pipe(
    // An admin API that stops answering is most often an engine that died: say so, with its log.
    Effect.catchAll((error) => Effect.zipRight(options.engine.alive, Effect.fail(error)))
  )
