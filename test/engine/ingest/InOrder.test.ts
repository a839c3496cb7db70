import { describe, expect, it } from "vitest"
import { InOrder } from "../../../engine/ingest/InOrder.ts"

describe("batches' completions in the order the batches were applied", () => {
  it("runs a callback only after every one registered before it, whatever order the work finishes in", () => {
    const order = new InOrder()
    const ran: Array<string> = []
    const first = order.after(() => ran.push("first"))
    const second = order.after(() => ran.push("second"))
    const third = order.after(() => ran.push("third"))
    // The later batches' writes finish first: nothing runs until the first's do.
    third()
    second()
    expect(ran).toEqual([])
    expect(order.pending).toBe(3)
    first()
    expect(ran).toEqual(["first", "second", "third"])
    expect(order.pending).toBe(0)
  })

  it("runs each callback once, and one whose turn has come at once", () => {
    const order = new InOrder()
    const ran: Array<number> = []
    const one = order.after(() => ran.push(1))
    one()
    one()
    expect(ran).toEqual([1])
    const two = order.after(() => ran.push(2))
    const three = order.after(() => ran.push(3))
    two()
    expect(ran).toEqual([1, 2])
    three()
    three()
    expect(ran).toEqual([1, 2, 3])
  })
})
