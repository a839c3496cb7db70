import { readFileSync } from "node:fs"
import { BaseSequencer, type TestSpecification } from "vitest/node"
import { defineConfig } from "vitest/config"

/**
 * The files that start processes (engines, the CLI, the chaos harness) before the others, each group
 * in vitest's own order (the longest first when it has timings from an earlier run, else the
 * largest file first). On a fresh clone, with no timings, the order by size started the chaos file
 * (small: it calls a harness) after 496 of the 579 s, and one worker then ran it alone for 74 s.
 */
class ProcessesFirst extends BaseSequencer {
  override async sort(files: Array<TestSpecification>): Promise<Array<TestSpecification>> {
    const sorted = await super.sort(files)
    const starts = (spec: TestSpecification) => /\b(startEngine|runCli|runChaos|spawn)\(/.test(readFileSync(spec.moduleId, "utf8"))
    const first = sorted.filter(starts)
    return [...first, ...sorted.filter((spec) => !first.includes(spec))]
  }
}

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Removes each file's temp directories after its own hooks have run.
    setupFiles: ["test/support/setup.ts"],
    // Two files at a time: most end-to-end tests wait on engine processes, so the 2 cores are not
    // idle twice over (about 7 minutes instead of 11). The end-to-end tests then share the cores
    // with another file's engine: their limits allow for it.
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: "forks",
    sequence: { sequencer: ProcessesFirst },
    maxWorkers: 2,
    minWorkers: 1
  }
})
