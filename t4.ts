import { applyEvents, emptyState, profileRow, type MemberState } from "./engine/member/MemberState.ts"
import { parseProgram } from "./engine/program/ProgramFile.ts"
import { readFileSync } from "node:fs"
import { Either } from "effect"
const prog = parseProgram(readFileSync("journeys/program.yaml", "utf8"), "p")
if (Either.isLeft(prog)) throw new Error("bad")
const ctx = { program: prog.right, cutpoints: null }
const lines = readFileSync("/tmp/prof.jsonl", "utf8").trim().split("\n").map((l) => JSON.parse(l))
const states = new Map<string, MemberState>()
const now = Date.now()
const t0 = performance.now()
for (let b = 0; b < lines.length; b += 4000) {
  const by = new Map<string, any[]>()
  for (const e of lines.slice(b, b + 4000)) { const ev = { ...e, at: Date.parse(e.occurredAt), source: undefined, properties: e.properties ?? {} }; (by.get(e.memberId) ?? by.set(e.memberId, []).get(e.memberId)!).push(ev) }
  for (const [m, evs] of by) {
    const r = applyEvents(states.get(m) ?? emptyState(m), evs, ctx, now)
    states.set(m, r.state)
  }
}
console.log(`${(performance.now() - t0).toFixed(0)} ms`)
