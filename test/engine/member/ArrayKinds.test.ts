import { execFile } from "node:child_process"
import { join } from "node:path"
import { promisify } from "node:util"
import { describe, expect, it } from "vitest"

const ROOT = join(import.meta.dirname, "../../..")

describe("the member states' arrays of times", () => {
  // A time in an array of any value is a heap object of its own, which every full collection
  // marks; in an array of doubles it is 8 bytes inline (BENCHMARKS.md, 2026-12-05, night). Seen
  // only through V8's own test of an array's kind, in a process of its own (test/support/arrayKinds.ts).
  it("hold their times inline as doubles, once the code appending to them is optimized, orders known only from a refund among them", { timeout: 120_000 }, async () => {
    const { stdout } = await promisify(execFile)(process.execPath, ["--allow-natives-syntax", "--import", "tsx", join(ROOT, "test/support/arrayKinds.ts")], { cwd: ROOT })
    const kinds = JSON.parse(stdout) as { history: { doubles: number; other: number }; orders: { doubles: number; other: number }; undated: number }
    // The mix has refunds of orders the member never placed: undated orders, in many states.
    expect(kinds.undated).toBeGreaterThan(100)
    expect(kinds.history.doubles).toBeGreaterThan(10_000)
    expect(kinds.history.other).toBe(0)
    expect(kinds.orders.doubles).toBeGreaterThan(3_000)
    expect(kinds.orders.other).toBe(0)
  })
})
