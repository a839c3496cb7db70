import { describe, expect, it } from "@effect/vitest"
import { BodyPool, columnsOf, encodeRows } from "../../../engine/store/RowBody.ts"

const linesOf = (bytes: Buffer): Array<unknown> => {
  const text = bytes.toString("utf8")
  expect(text.endsWith("\n")).toBe(true)
  return text.slice(0, -1).split("\n").map((line) => JSON.parse(line))
}

describe("RowBody", () => {
  it("columns are every key any row has, in the order first seen", () => {
    expect(columnsOf([{ a: 1, b: 2 }, { c: 3, a: 4 }, {}])).toEqual(["a", "b", "c"])
  })

  it("each row is one JSON array line in the column order, a missing or undefined value null", () => {
    const body = encodeRows([{ a: 1, b: "x" }, { b: undefined, c: [1, "二"] }, { a: null, c: { k: "v" } }], new BodyPool())
    expect(body.columns).toEqual(["a", "b", "c"])
    expect(linesOf(body.bytes)).toEqual([[1, "x", null], [null, null, [1, "二"]], [null, null, { k: "v" }]])
  })

  it("text that takes 3 and 4 bytes in UTF-8, and newlines inside values, stay one line per row", () => {
    const rows = Array.from({ length: 5_000 }, (_, i) => ({ id: i, text: `金卡會員 🎁🎁 ${"長".repeat(i % 97)}\nline\r"q"\\` }))
    const body = encodeRows(rows, new BodyPool())
    // Grown past the first buffer, every byte accounted for.
    expect(body.bytes.length).toBe(Buffer.byteLength(rows.map((row) => JSON.stringify([row.id, row.text]) + "\n").join("")))
    expect(linesOf(body.bytes)).toEqual(rows.map((row) => [row.id, row.text]))
  })

  it("a buffer given back serves the next body; one still in use is never handed out twice", () => {
    const pool = new BodyPool()
    const first = encodeRows([{ a: 1 }], pool)
    const second = encodeRows([{ a: 2 }], pool)
    expect(second.buffer).not.toBe(first.buffer)
    expect(linesOf(first.bytes)).toEqual([[1]])
    pool.give(first.buffer)
    const third = encodeRows([{ a: 3 }], pool)
    expect(third.buffer).toBe(first.buffer)
    expect(linesOf(third.bytes)).toEqual([[3]])
    expect(linesOf(second.bytes)).toEqual([[2]])
  })
})
