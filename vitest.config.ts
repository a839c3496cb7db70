import { defineConfig } from "vitest/config"

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
    maxWorkers: 2,
    minWorkers: 1
  }
})
