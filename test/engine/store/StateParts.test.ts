import { describe, expect, it } from "vitest"
import { bytesOver, cut, headOf, headText, isHead, join, partKeys } from "../../../engine/store/StateParts.ts"

describe("a state in parts", () => {
  it("cuts a state's bytes in pieces of at most the part size and joins them into the same text, a character cut in two included", () => {
    const text = JSON.stringify({ memberId: "鯨", attributes: { name: { v: "會員".repeat(700), at: 1 } } })
    const bytes = Buffer.from(text)
    for (const size of [1, 7, 1_000, bytes.length, bytes.length + 1]) {
      const pieces = cut(bytes, size)
      expect(pieces.length).toBe(Math.ceil(bytes.length / size))
      expect(pieces.every((piece) => piece.length <= size && piece.length > 0)).toBe(true)
      expect(join(pieces, bytes.length)).toBe(text)
    }
    // Three-byte characters at a part size of 1,000: some piece ends inside one.
    expect(cut(bytes, 1_000).some((piece) => piece[piece.length - 1]! >= 0x80 && piece[piece.length - 1]! < 0xc0)).toBe(true)
  })

  it("refuses parts that do not add up to the length the head gives, and a part size that is not positive", () => {
    const bytes = Buffer.from("x".repeat(100))
    expect(() => join(cut(bytes, 30).slice(0, 3), 100)).toThrow("a state's parts hold 90 bytes, its head says 100")
    expect(() => cut(bytes, 0)).toThrow("a part's size must be positive, not 0")
  })

  it("tells a head from a state stored whole, and names fresh parts for each write beside the member's key", () => {
    const keys = partKeys("m.d2hhbGU", 3)
    expect(keys).toHaveLength(3)
    expect(keys.every((key, i) => new RegExp(`^p\\.d2hhbGU\\.[A-Za-z0-9]+\\.${i}$`).test(key))).toBe(true)
    expect(partKeys("m.d2hhbGU", 1)[0]).not.toBe(keys[0])
    const head = headText(keys, 12_345)
    expect(isHead(head)).toBe(true)
    expect(headOf(head)).toEqual({ $parts: keys, bytes: 12_345 })
    expect(headOf('{"memberId":"whale","version":3}')).toBeNull()
    expect(() => headOf('{"$parts":"nope"}')).toThrow("a state's head names no parts")
  })

  it("encodes a text only when it could be over the limit, and gives its bytes only when it is", () => {
    expect(bytesOver("x".repeat(333), 1_000)).toBeNull()
    expect(bytesOver("x".repeat(1_000), 1_000)).toBeNull()
    expect(bytesOver("x".repeat(1_001), 1_000)?.length).toBe(1_001)
    // 400 characters of three bytes each: 1,200 bytes.
    expect(bytesOver("會".repeat(400), 1_000)?.length).toBe(1_200)
    expect(bytesOver("會".repeat(333), 1_000)).toBeNull()
  })
})
