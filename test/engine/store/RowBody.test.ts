import { describe, expect, it } from "@effect/vitest"
import { BodyPool, columnsOf, encodeRows, RowLines } from "../../../engine/store/RowBody.ts"

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
    const lines = encodeRows([{ a: 1, b: "x" }, { b: undefined, c: [1, "二"] }, { a: null, c: { k: "v" } }], new BodyPool())
    expect(lines.columns).toEqual(["a", "b", "c"])
    expect(lines.rows).toBe(3)
    expect(linesOf(lines.bytes)).toEqual([[1, "x", null], [null, null, [1, "二"]], [null, null, { k: "v" }]])
  })

  it("text that takes 3 and 4 bytes in UTF-8, and newlines inside values, stay one line per row", () => {
    const rows = Array.from({ length: 5_000 }, (_, i) => ({ id: i, text: `金卡會員 🎁🎁 ${"長".repeat(i % 97)}\nline\r"q"\\` }))
    const lines = encodeRows(rows, new BodyPool())
    // Grown past the first buffer, every byte accounted for.
    expect(lines.bytes.length).toBe(Buffer.byteLength(rows.map((row) => JSON.stringify([row.id, row.text]) + "\n").join("")))
    expect(linesOf(lines.bytes)).toEqual(rows.map((row) => [row.id, row.text]))
  })

  it("rows appended later follow the lines' columns; a row with a column they lack is refused whole", () => {
    const lines = encodeRows([{ a: 1, b: 2 }], new BodyPool())
    expect(lines.append([{ b: 3 }, { a: 4, b: 5 }])).toBe(true)
    expect(lines.append([{ a: 6 }, { a: 7, c: 8 }])).toBe(false)
    expect(lines.rows).toBe(3)
    expect(linesOf(lines.bytes)).toEqual([[1, 2], [null, 3], [4, 5]])
  })

  it("released lines hand their buffer to the next; lines still in use never share one", () => {
    const pool = new BodyPool()
    const first = encodeRows([{ a: 1 }], pool)
    const firstBuffer = first.bytes.buffer
    const second = encodeRows([{ a: 2 }], pool)
    expect(second.bytes.buffer).not.toBe(firstBuffer)
    expect(linesOf(first.bytes)).toEqual([[1]])
    first.release()
    expect(first.rows).toBe(0)
    expect(first.bytes.length).toBe(0)
    const third = new RowLines(["a"], pool)
    third.append([{ a: 3 }])
    expect(third.bytes.buffer).toBe(firstBuffer)
    expect(linesOf(third.bytes)).toEqual([[3]])
    expect(linesOf(second.bytes)).toEqual([[2]])
  })
})
