/**
 * Run by test/engine/member/ArrayKinds.test.ts as `node --allow-natives-syntax --import tsx`:
 * builds member states from the benchmark's event mix (refunds of orders never seen among them)
 * the way the engine does, long enough for the code that appends to them to be optimized, and
 * prints how many of their arrays of times hold doubles inline and how many hold anything else.
 */
import { Effect } from "effect"
import { join } from "node:path"
import { decodedEvent, settled } from "../../bench/events.ts"
import { applyEvents, emptyState, type MemberState } from "../../engine/member/MemberState.ts"
import { loadProgram } from "../../engine/program/ProgramFile.ts"

// V8's own test of an array's elements kind (needs --allow-natives-syntax).
const holdsDoubles = new Function("a", "return %HasDoubleElements(a)") as (array: unknown) => boolean

const EVENTS = 60_000
const MEMBERS = 6_000

const main = Effect.gen(function* () {
  const ctx = { program: yield* loadProgram(join(import.meta.dirname, "../../journeys")), cutpoints: null }
  const base = Date.now() - 60_000
  const states = new Map<string, MemberState>()
  for (let i = 0; i < EVENTS; i++) {
    const event = decodedEvent(i, base, EVENTS, MEMBERS)
    const { state } = applyEvents(states.get(event.memberId) ?? emptyState(event.memberId), [event], ctx, base + i, { owned: true })
    states.set(event.memberId, settled(state))
  }
  const count = (arrays: ReadonlyArray<ReadonlyArray<unknown>>) => {
    const filled = arrays.filter((array) => array.length > 0)
    return { doubles: filled.filter(holdsDoubles).length, other: filled.filter((array) => !holdsDoubles(array)).length }
  }
  const all = [...states.values()]
  const undated = all.filter((state) => state.orders.at.some((at) => Number.isNaN(at))).length
  console.log(JSON.stringify({ history: count(all.flatMap((state) => Object.values(state.history).map((h) => h.at))), orders: count(all.map((state) => state.orders.at)), undated }))
})

Effect.runPromise(main)
