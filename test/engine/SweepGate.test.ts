import { describe, expect, it } from "vitest"
import type { IngestStatus } from "../../engine/Ingest.ts"
import { caughtUp, sweepDecision } from "../../engine/Maintenance.ts"

const status = (lag: number, replaying: ReadonlyArray<number>): IngestStatus => ({
  engineId: "e",
  partitions: 16,
  owned: replaying.map((behind, partition) => ({ partition, applied: 0, processed: 0, committed: 0, replaying: behind })),
  lag
})

describe("when an engine may rank the population (the RFM recompute)", () => {
  it("is caught up only owning partitions, none replaying, and no further behind than allowed", () => {
    expect(caughtUp(status(0, [0, 0]), 0)).toBe(true)
    expect(caughtUp(status(20_000, [0, 0]), 20_000)).toBe(true)
    expect(caughtUp(status(20_001, [0, 0]), 20_000)).toBe(false)
    // A partition still replaying toward the stream's end it was taken at.
    expect(caughtUp(status(0, [0, 12]), 20_000)).toBe(false)
    // Owning nothing, it cannot tell how far the others are.
    expect(caughtUp(status(0, []), 20_000)).toBe(false)
    // NATS did not answer: the lag is unknown.
    expect(caughtUp(status(-1, [0]), 20_000)).toBe(false)
  })

  it("waits while behind, ranks at once when caught up, and ranks anyway once put off for the longest wait", () => {
    const hour = 3_600_000
    expect(sweepDecision(true, null, 1_000, hour)).toBe("now")
    expect(sweepDecision(true, 0, 5 * hour, hour)).toBe("now")
    expect(sweepDecision(false, null, 1_000, hour)).toBe("wait")
    expect(sweepDecision(false, 1_000, 1_000 + hour - 1, hour)).toBe("wait")
    expect(sweepDecision(false, 1_000, 1_000 + hour, hour)).toBe("anyway")
  })
})
