import { defineConfig } from "vitest/config"
import { LongestFirst } from "./test/support/sequencer.ts"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Removes each file's temp directories after its own hooks have run.
    setupFiles: ["test/support/setup.ts"],
    // Three files at a time on the 2 cores: most end-to-end tests wait (on engine processes, on
    // retries' backoff, on a quiet-hours minute), so the cores are not idle meanwhile. On
    // 2026-12-06 a full run took 395 s with three, 489 s with two and about 11 minutes with one.
    // The end-to-end tests then share the cores with other files' engines: their limits allow for
    // it (the heaviest, Durability and Chaos, took about twice as long as alone).
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: "forks",
    maxWorkers: 3,
    minWorkers: 1,
    // The end-to-end files that take a minute or more start first (test/support/sequencer.ts).
    sequence: { sequencer: LongestFirst }
  }
})
