import { describe, expect, it } from "vitest"
import { TimerHeap } from "../../../engine/timers/TimerHeap.ts"

let seed = 7
const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31

describe("TimerHeap", () => {
  it("pops in due order whatever the push order, ties included, each with its own sequence and payload", () => {
    const timers = Array.from({ length: 5000 }, (_, i) => ({ due: Math.floor(random() * 1000), seq: i + 1, payload: JSON.stringify([`會員-${i}`, "birthday", null, i % 3 === 0 ? "entry" : null]) }))
    const heap = new TimerHeap()
    for (const t of timers) heap.push(t.due, t.seq, t.payload)
    expect(heap.size).toBe(5000)
    const popped: Array<{ due: number; seq: number; payload: string }> = []
    while (heap.size > 0) popped.push(heap.pop()!)
    expect(popped.map((t) => t.due)).toEqual(timers.map((t) => t.due).sort((a, b) => a - b))
    // every timer came out once, with the payload it went in with
    expect(popped.map((t) => `${t.seq}:${t.payload}`).sort()).toEqual(timers.map((t) => `${t.seq}:${t.payload}`).sort())
    expect(heap.pop()).toBeUndefined()
    expect(heap.peekDue()).toBe(Infinity)
  })

  it("keeps every payload whole through long churn (its arena squeezed and grown many times)", () => {
    const heap = new TimerHeap()
    const held = new Map<number, { due: number; payload: string }>()
    let seq = 0
    let now = 0
    for (let round = 0; round < 200; round++) {
      for (let i = 0; i < 400; i++) {
        const due = now + Math.floor(random() * 10_000)
        const payload = `${"x".repeat(Math.floor(random() * 300))}|${++seq}|ünïcødé 🎂`
        heap.push(due, seq, payload)
        held.set(seq, { due, payload })
      }
      now += 2_500
      while (heap.peekDue() <= now) {
        const timer = heap.pop()!
        expect(timer.due).toBeLessThanOrEqual(now)
        expect(held.get(timer.seq)).toEqual({ due: timer.due, payload: timer.payload })
        held.delete(timer.seq)
      }
      expect(heap.size).toBe(held.size)
    }
    expect(held.size).toBeGreaterThan(0)
    // the arena holds not much more than what is live: dead payloads are squeezed out
    const liveBytes = [...held.values()].reduce((n, t) => n + Buffer.byteLength(t.payload), 0)
    expect(heap.bytes).toBeLessThan(liveBytes * 3 + 64 * heap.size + 1_000_000)
    let last = -Infinity
    while (heap.size > 0) {
      const timer = heap.pop()!
      expect(timer.due).toBeGreaterThanOrEqual(last)
      last = timer.due
      expect(held.get(timer.seq)?.payload).toBe(timer.payload)
      held.delete(timer.seq)
    }
    expect(held.size).toBe(0)
  })

  it("counts the timers due by a time, up to a cap, as a scan of them all would", () => {
    const heap = new TimerHeap()
    expect(heap.countDueBy(100, 10)).toBe(0)
    const dues = Array.from({ length: 20_000 }, () => Math.floor(random() * 100_000))
    dues.forEach((due, i) => heap.push(due, i + 1, `m${i}`))
    for (const by of [-1, 0, 50, 1_000, 37_123, 99_999, 200_000]) {
      const all = dues.filter((due) => due <= by).length
      expect(heap.countDueBy(by, Infinity)).toBe(all)
      expect(heap.countDueBy(by, 500)).toBe(Math.min(all, 500))
    }
    expect(heap.countDueBy(200_000, 0)).toBe(0)
    // What pops by then is what was counted.
    let popped = 0
    while (heap.peekDue() <= 25_000) {
      heap.pop()
      popped++
    }
    expect(popped).toBe(dues.filter((due) => due <= 25_000).length)
    expect(heap.countDueBy(25_000, Infinity)).toBe(0)
    expect(heap.countDueBy(30_000, Infinity)).toBe(dues.filter((due) => due > 25_000 && due <= 30_000).length)
  })
})
