import type { TestSpecification } from "vitest/node"
import { BaseSequencer } from "vitest/node"

/**
 * The suite's longest files, near the front: each runs an engine (or several) end to end for a
 * minute or more, or waits that long. Started early, they overlap the hundred short files on the
 * other workers. On a fresh clone vitest has no timings cached and starts the largest files first,
 * so the longest could begin minutes in and run on alone at the end (2026-12-07: Chaos from 386 s
 * to 461 s of a 462 s run; with the others here first but not the cron test, that test from 432 s
 * to 487 s of 488 s). Times from the first of those runs, three files at a time.
 */
export const LONGEST_FIRST: ReadonlyArray<string> = [
  // Waits for the next minute's cron tick: 30–60 s, mostly idle, so it overlaps anything.
  "test/engine/JourneyBroadcast.test.ts",
  "test/engine/Durability.test.ts", // 105 s, up to four engines at once
  "test/engine/PassOrder.test.ts", // 88 s
  "test/chaos/Chaos.test.ts", // 74 s
  // After PassOrder, not beside Durability from the start: the two with several engines each
  // took 130 and 118 s side by side, and a slow hour's fresh clone ran Durability past its limit.
  "test/engine/Partitions.test.ts", // 90 s
  "test/engine/RfmQuintiles.test.ts", // 81 s
  "test/engine/Channels.test.ts", // 70 s
  "test/engine/LookupReplay.test.ts", // 56 s
  "test/engine/Demo.test.ts" // 49 s
]

const rankOf = (spec: TestSpecification): number => {
  const path = spec.moduleId.replaceAll("\\", "/")
  const rank = LONGEST_FIRST.findIndex((file) => path.endsWith(`/${file}`))
  return rank === -1 ? LONGEST_FIRST.length : rank
}

/** Vitest's own order (failed first, then longest by its cache, or largest), the files above before the rest. */
export class LongestFirst extends BaseSequencer {
  override async sort(files: Array<TestSpecification>): Promise<Array<TestSpecification>> {
    const sorted = await super.sort(files)
    return sorted
      .map((spec, at) => ({ spec, at, rank: rankOf(spec) }))
      .sort((a, b) => a.rank - b.rank || a.at - b.at)
      .map(({ spec }) => spec)
  }
}
