import { describe, expect, it } from "vitest"
import { type CheckpointCandidate, nextCheckpoint, phaseAfter } from "../../../engine/ingest/CheckpointChoice.ts"

const rule = { intervalMs: 30_000, dirtyPerPartition: 12_500, minGapMs: 937 }
const now = 1_000_000

/** A partition with states to write whose interval is over. */
const due = (partition: number, lastCheckpoint: number, more: Partial<CheckpointCandidate> = {}): CheckpointCandidate => ({
  partition,
  flushing: false,
  releasing: false,
  dirty: 100,
  behind: true,
  lastCheckpoint,
  ...more
})

describe("choosing the partition to checkpoint between two batches", () => {
  it("starts none while a checkpoint is in flight, however many are due", () => {
    const partitions = [due(0, now - 90_000), due(1, now - 60_000, { flushing: true }), due(2, now - 45_000)]
    expect(nextCheckpoint(partitions, now, rule)).toBeNull()
    // Written: the one waiting longest goes next, then the others, one at a time.
    const written = partitions.map((p) => ({ ...p, flushing: false }))
    expect(nextCheckpoint(written, now, rule)?.partition).toBe(0)
  })

  it("takes the due partition waiting longest, wherever it is in the order of partitions", () => {
    // All due at once, as at the end of a pass over every member: oldest phase first.
    const partitions = [due(3, now - 31_000), due(7, now - 95_000), due(1, now - 40_000)]
    expect(nextCheckpoint(partitions, now, rule)?.partition).toBe(7)
  })

  it("waits for the interval unless enough states changed, and skips what has nothing to write", () => {
    expect(nextCheckpoint([due(0, now - 10_000)], now, rule)).toBeNull()
    expect(nextCheckpoint([due(0, now - 10_000, { dirty: 12_500 })], now, rule)?.partition).toBe(0)
    // Nothing changed and the position already committed: nothing to do, however late.
    expect(nextCheckpoint([due(0, now - 90_000, { dirty: 0, behind: false })], now, rule)).toBeNull()
    // Nothing changed but events applied past the committed position: the position moves.
    expect(nextCheckpoint([due(0, now - 90_000, { dirty: 0 })], now, rule)?.partition).toBe(0)
  })

  it("never takes a partition being handed over", () => {
    const partitions = [due(0, now - 90_000, { releasing: true }), due(1, now - 35_000)]
    expect(nextCheckpoint(partitions, now, rule)?.partition).toBe(1)
    expect(nextCheckpoint(partitions.slice(0, 1), now, rule)).toBeNull()
  })

  it("spaces the starts of partitions that fell due together by the least gap, unless one has enough states waiting", () => {
    // Sixteen due at once, as when a pass's listing ends: the first at once.
    const partitions = Array.from({ length: 16 }, (_, p) => due(p, now - 60_000 - p * 1000))
    expect(nextCheckpoint(partitions, now, rule)?.partition).toBe(15)
    // Started 500 ms ago: the next waits for the gap…
    expect(nextCheckpoint(partitions, now, rule, now - 500)).toBeNull()
    // …and goes once the gap is over.
    expect(nextCheckpoint(partitions, now, rule, now - 937)?.partition).toBe(15)
    // A partition with enough changed states does not wait for the gap.
    const pressed = [...partitions, due(16, now - 1_000, { dirty: 12_500 })]
    expect(nextCheckpoint(pressed, now, rule, now - 500)?.partition).toBe(16)
    // Past the gap, the one waiting longest again.
    expect(nextCheckpoint(pressed, now, rule, now - 1_000)?.partition).toBe(15)
  })

  it("keeps each partition's phase: its interval moves on by whole intervals when its checkpoint starts", () => {
    // Staggered at +5 s, then quiet for 2.5 intervals: the next interval still begins at +5 s.
    expect(phaseAfter(5_000, 80_000, 30_000)).toBe(65_000)
    // Started early (enough states changed): the interval is not over, the phase stays.
    expect(phaseAfter(65_000, 70_000, 30_000)).toBe(65_000)
    expect(phaseAfter(65_000, 95_000, 30_000)).toBe(95_000)
  })
})
