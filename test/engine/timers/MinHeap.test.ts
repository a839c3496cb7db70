import { describe, expect, it } from "vitest"
import { MinHeap } from "../../../engine/timers/MinHeap.ts"

describe("MinHeap", () => {
  it("pops in ascending order whatever the push order, ties included", () => {
    let seed = 7
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31)
    const values = Array.from({ length: 5000 }, () => Math.floor(random() * 1000))
    const heap = new MinHeap<number>((a, b) => a - b)
    for (const value of values) heap.push(value)
    expect(heap.size).toBe(5000)
    const popped: Array<number> = []
    while (heap.size > 0) popped.push(heap.pop()!)
    expect(popped).toEqual([...values].sort((a, b) => a - b))
    expect(heap.pop()).toBeUndefined()
    expect(heap.peek()).toBeUndefined()
  })

  it("interleaved pushes and pops always give the least left", () => {
    const heap = new MinHeap<{ due: number }>((a, b) => a.due - b.due)
    heap.push({ due: 30 })
    heap.push({ due: 10 })
    expect(heap.pop()?.due).toBe(10)
    heap.push({ due: 5 })
    heap.push({ due: 40 })
    expect(heap.peek()?.due).toBe(5)
    expect([heap.pop()?.due, heap.pop()?.due, heap.pop()?.due]).toEqual([5, 30, 40])
  })
})
