/**
 * npm run bench:apply — the engine's pure per-event work on one core, no NATS, no ClickHouse:
 * decode → apply to member state → journeys → the rows an analyst gets. It is the floor under
 * `bench:ingest`: whatever the storage design, ingestion cannot beat this rate.
 *
 * BENCH_EVENTS / BENCH_MEMBERS as in bench:ingest (same event mix); BENCH_JOURNEYS=0 leaves journeys out.
 */
import { Effect, Either } from "effect"
import { join } from "node:path"
import { decodeEvent } from "../engine/ingest/Decode.ts"
import { brandConfig } from "../engine/journeys/Context.ts"
import { loadJourneys } from "../engine/journeys/JourneyFile.ts"
import { runJourneys, type JourneySet } from "../engine/journeys/Apply.ts"
import { applyEvents, emptyState, type MemberState, profileRow } from "../engine/member/MemberState.ts"
import { loadProgram } from "../engine/program/ProgramFile.ts"
import { versioned } from "../engine/JourneyRuntime.ts"
import { makeEvent } from "./events.ts"

const EVENTS = Number(process.env["BENCH_EVENTS"] ?? 200_000)
const MEMBERS = Number(process.env["BENCH_MEMBERS"] ?? 20_000)
const JOURNEYS = process.env["BENCH_JOURNEYS"] !== "0"
const KINDS = process.env["BENCH_KINDS"] === "1"
const BATCH = 4000

const main = Effect.gen(function* () {
  const dir = join(import.meta.dirname, "../journeys")
  const program = yield* loadProgram(dir)
  const loaded = yield* loadJourneys(dir)
  const brand = yield* brandConfig
  const current = versioned(loaded.journeys)
  const set: JourneySet = { current: JOURNEYS ? current : [], versions: new Map(current.map((j) => [j.version, j.journey])), templates: loaded.templates, brand, winners: new Map() }
  const ctx = { program, cutpoints: null }
  const encoder = new TextEncoder()
  const base = Date.now() - 60_000
  const messages = Array.from({ length: EVENTS }, (_, i) => {
    const event = makeEvent(i, base, EVENTS, MEMBERS)
    return { subject: `events.${event.type}`, data: encoder.encode(JSON.stringify(event)) }
  })
  const states = new Map<string, MemberState>()
  let rows = 0
  const kinds = new Map<string, number>()
  let derived = 0
  const t0 = performance.now()
  // As the engine applies them: one event at a time, in stream order, `now` being the event's arrival
  // in the stream (so a replay decides the same); a profile row per member changed in a batch.
  const arrival0 = Date.now() - 30_000
  for (let b = 0; b < messages.length; b += BATCH) {
    const touched = new Set<string>()
    const batch = messages.slice(b, b + BATCH)
    for (let k = 0; k < batch.length; k++) {
      const msg = batch[k]!
      const now = arrival0 + ((b + k) >> 4)
      const decoded = decodeEvent(msg.subject, msg.data, { subjectPrefix: "events", now, maxBytes: 65536 })
      if (Either.isLeft(decoded)) throw new Error(decoded.left)
      const memberId = decoded.right.memberId
      const state = states.get(memberId) ?? emptyState(memberId)
      const result = runJourneys(applyEvents(state, [decoded.right], ctx, now, { owned: true }), set, ctx, now, { owned: true })
      derived += result.state.outbox.length
      rows += (result.state.rows ?? []).length
      // Tallied only when asked for: a string and a map update per row are the bench's work, not the engine's.
      if (KINDS) {
        for (const e of result.state.outbox) kinds.set(e.type, (kinds.get(e.type) ?? 0) + 1)
        for (const r of result.state.rows ?? []) kinds.set(`row ${r.table}`, (kinds.get(`row ${r.table}`) ?? 0) + 1)
      }
      // what the engine does once the outbox is published and the rows written
      const kept = result.state as unknown as { outbox: Array<unknown>; rows: Array<unknown> }
      kept.outbox = []
      kept.rows = []
      states.set(memberId, result.state)
      touched.add(memberId)
    }
    const now = arrival0 + ((b + batch.length) >> 4)
    for (const memberId of touched) {
      profileRow(states.get(memberId)!, ctx, now)
      rows++
    }
  }
  const seconds = (performance.now() - t0) / 1000
  const json = [...states.values()].slice(0, 1000).map((s) => JSON.stringify(s).length)
  console.log(`${EVENTS.toLocaleString()} events, ${MEMBERS.toLocaleString()} members, journeys ${JOURNEYS ? "on" : "off"}: ${seconds.toFixed(2)} s = ${Math.round(EVENTS / seconds).toLocaleString()} events/s (${((seconds * 1e6) / EVENTS).toFixed(1)} µs/event); ${derived.toLocaleString()} derived events, ${rows.toLocaleString()} rows; state JSON ~${Math.round(json.reduce((a, b) => a + b, 0) / json.length)} bytes; heap ${Math.round(process.memoryUsage().heapUsed / 1e6)} MB`)
  if (process.env["BENCH_HEAP"] === "1") {
    const g = (globalThis as { gc?: () => void }).gc
    g?.()
    const withObjects = process.memoryUsage().heapUsed
    const jsonStates = new Map([...states].map(([id, state]) => [id, JSON.stringify(state)]))
    states.clear()
    g?.()
    const withJson = process.memoryUsage().heapUsed
    const size = jsonStates.size
    jsonStates.clear()
    g?.()
    const none = process.memoryUsage().heapUsed
    console.log(`heap per member: ${Math.round((withObjects - none) / MEMBERS)} bytes as objects, ${Math.round((withJson - none) / MEMBERS)} bytes as JSON (${size})`)
  }
  if (process.env["BENCH_DUMP"] !== undefined) console.log(JSON.stringify(states.get(process.env["BENCH_DUMP"]), null, 1))
  if (KINDS) console.log([...kinds].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k}: ${n}`).join("\n"))
})

Effect.runPromise(main).catch((error) => {
  console.error(error)
  process.exitCode = 1
})
