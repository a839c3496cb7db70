/**
 * npm run bench:state — the heap the member states take, as the engine builds them: the events of
 * bench:ingest (BENCH_EVENTS for BENCH_MEMBERS, same mix) applied one at a time, each batch's
 * derived events published (cleared), no NATS, no ClickHouse. It prints the heap they take, then
 * the same states after a JSON round trip (what they would take with no spare room), then how much
 * each part of them takes (`BENCH_PARTS=0` leaves that out). With each of the two it prints how long a
 * full collection takes (median of five). `BENCH_JOURNEYS=1` runs the shipped
 * journeys too, as bench:apply does; `BENCH_ROWS=1` makes each event's member_profiles row as the
 * engine does (what the rows keep beside the states is then in the heap measured);
 * `BENCH_DUMP=<member id>` prints that member's state.
 */
import { Effect } from "effect"
import { join } from "node:path"
import { type JourneySet, runJourneys } from "../engine/journeys/Apply.ts"
import { brandConfig } from "../engine/journeys/Context.ts"
import { loadJourneys } from "../engine/journeys/JourneyFile.ts"
import { applyEvents, emptyState, type MemberState, profileRow } from "../engine/member/MemberState.ts"
import { loadProgram } from "../engine/program/ProgramFile.ts"
import { versioned } from "../engine/JourneyRuntime.ts"
import { decodedEvent, settled } from "./events.ts"

const EVENTS = Number(process.env["BENCH_EVENTS"] ?? 1_000_000)
const MEMBERS = Number(process.env["BENCH_MEMBERS"] ?? 100_000)
const PARTS = process.env["BENCH_PARTS"] !== "0"
const JOURNEYS = process.env["BENCH_JOURNEYS"] === "1"
const ROWS = process.env["BENCH_ROWS"] === "1"

const gc = (globalThis as { gc?: () => void }).gc
if (gc === undefined) throw new Error("run with node --expose-gc (npm run bench:state does)")
const heapUsed = (): number => {
  gc()
  gc()
  return process.memoryUsage().heapUsed
}
const mb = (bytes: number): string => `${(bytes / 1e6).toFixed(1)} MB`
/**
 * A full collection's time (median of five) with the states live: what the engine's thread pays
 * for them at each one, as most of its marking falls on that thread on a busy machine (BENCHMARKS.md).
 */
const fullCollection = (): string => {
  const times: Array<number> = []
  for (let i = 0; i < 5; i++) {
    const start = performance.now()
    gc()
    times.push(performance.now() - start)
  }
  return `${times.sort((a, b) => a - b)[2]!.toFixed(0)} ms`
}

const main = Effect.gen(function* () {
  const dir = join(import.meta.dirname, "../journeys")
  const program = yield* loadProgram(dir)
  const ctx = { program, cutpoints: null }
  const loaded = yield* loadJourneys(dir)
  const current = versioned(loaded.journeys)
  const set: JourneySet = { current, versions: new Map(current.map((j) => [j.version, j.journey])), templates: loaded.templates, brand: yield* brandConfig, winners: new Map() }
  const base = Date.now() - 60_000
  const states = new Map<string, MemberState>()
  const before = heapUsed()
  for (let i = 0; i < EVENTS; i++) {
    const event = decodedEvent(i, base, EVENTS, MEMBERS)
    const memberId = event.memberId
    const applied = applyEvents(states.get(memberId) ?? emptyState(memberId), [event], ctx, base + i, { owned: true })
    const result = JOURNEYS ? runJourneys(applied, set, ctx, base + i, { owned: true }) : applied
    states.set(memberId, settled(result.state))
    if (ROWS) profileRow(result.state, ctx, base + i)
  }
  const built = heapUsed() - before
  console.log(`${EVENTS.toLocaleString("en")} events for ${states.size.toLocaleString("en")} members, journeys ${JOURNEYS ? "on" : "off"}, profile rows ${ROWS ? "made" : "not made"}`)
  const dump = process.env["BENCH_DUMP"]
  if (dump !== undefined) console.log(JSON.stringify(states.get(dump), null, 1))
  console.log(`states as built: ${mb(built)} (${Math.round(built / states.size)} bytes per member), a full collection ${fullCollection()}`)
  let json = 0
  for (const [memberId, state] of states) {
    const text = JSON.stringify(state)
    json += text.length
    states.set(memberId, JSON.parse(text) as MemberState)
  }
  const roundTrip = heapUsed() - before
  console.log(`after a JSON round trip: ${mb(roundTrip)}, a full collection ${fullCollection()}; as JSON: ${mb(json)}`)
  if (!PARTS) return
  // Each part dropped from every state in turn: the heap it freed is what it took.
  let last = heapUsed()
  const drop = (label: string, f: (state: Record<string, unknown>) => void) => {
    for (const state of states.values()) f(state as unknown as Record<string, unknown>)
    const now = heapUsed()
    console.log(`  ${label.padEnd(16)} ${mb(last - now)}`)
    last = now
  }
  drop("history.recent", (s) => Object.values(s["history"] as object).forEach((h: Record<string, unknown>) => (h["recent"] = null)))
  drop("history.at", (s) => Object.values(s["history"] as object).forEach((h: Record<string, unknown>) => (h["at"] = null)))
  for (const part of ["history", "orders", "seen", "attributes", "consent", "tier", "rfm", "points", "journeys", "entryTimers", "rows", "outbox", "sent"]) drop(part, (s) => (s[part] = null))
  console.log(`  ${"the rest".padEnd(16)} ${mb(last - before)} (${states.size} states)`)
})

Effect.runPromise(main)
