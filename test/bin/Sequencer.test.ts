import { existsSync } from "node:fs"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { ROOT } from "../support/engine.ts"
import { LONGEST_FIRST } from "../support/sequencer.ts"

describe("the suite's order (test/support/sequencer.ts)", () => {
  it("names test files that exist, each once: a file renamed would silently lose its place at the front", () => {
    expect(LONGEST_FIRST.filter((file) => !existsSync(join(ROOT, file)))).toEqual([])
    expect(new Set(LONGEST_FIRST).size).toBe(LONGEST_FIRST.length)
    expect(LONGEST_FIRST.every((file) => file.startsWith("test/") && file.endsWith(".test.ts"))).toBe(true)
  })
})
