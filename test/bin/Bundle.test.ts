import { copyFileSync, mkdirSync, rmSync, utimesSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { bundlePaths, freshBundle } from "../../bin/bundle.js"
import { eventually, ROOT, runCli, startEngine, tempDir } from "../support/engine.ts"
import { dropTopology, natsConnect, publishEvents, uniqueTopology } from "../support/nats.ts"

/**
 * bin/memberflow.js runs the bundle `npm run build` makes only while it is up to date with what it
 * was built from; otherwise the sources through tsx, so that an edit is never run as the old code.
 */

/** A project folder with a bundle (and the reader thread's) built at `builtAt` (seconds) from `inputs`, each with its time. */
const project = (builtAt: number, inputs: Record<string, number>) => {
  const root = tempDir("bundle")
  const { bundle, reader, inputs: listing } = bundlePaths(root)
  mkdirSync(join(root, "dist/engine"), { recursive: true })
  for (const [path, at] of Object.entries(inputs)) {
    mkdirSync(join(root, path, ".."), { recursive: true })
    writeFileSync(join(root, path), "// source\n")
    utimesSync(join(root, path), at, at)
  }
  writeFileSync(listing, JSON.stringify(Object.keys(inputs)))
  writeFileSync(bundle, "// bundle\n")
  utimesSync(bundle, builtAt, builtAt)
  writeFileSync(reader, "// the event reader's thread\n")
  utimesSync(reader, builtAt, builtAt)
  return { root, bundle, reader, listing }
}

const T = 1_800_000_000

describe("which code memberflow runs", () => {
  it("the bundle while every file it was built from is older than it", () => {
    const { root, bundle } = project(T, { "engine/main.ts": T - 60, "engine/Ingest.ts": T - 5, "node_modules/.package-lock.json": T - 3_600 })
    expect(freshBundle(root, {})).toBe(bundle)
  })

  it("the sources once one of them changed after the build, or one is gone", () => {
    const edited = project(T, { "engine/main.ts": T - 60, "engine/Ingest.ts": T + 1 })
    expect(freshBundle(edited.root, {})).toBeNull()
    // an `npm install` since the build changed what is installed
    const installed = project(T, { "engine/main.ts": T - 60, "node_modules/.package-lock.json": T + 30 })
    expect(freshBundle(installed.root, {})).toBeNull()
    const removed = project(T, { "engine/main.ts": T - 60, "engine/Gone.ts": T - 60 })
    rmSync(join(removed.root, "engine/Gone.ts"))
    expect(freshBundle(removed.root, {})).toBeNull()
  })

  it("the sources with no bundle, no reader thread's bundle, no readable list of inputs, or MEMBERFLOW_NO_BUNDLE=1", () => {
    const none = project(T, { "engine/main.ts": T - 60 })
    rmSync(none.bundle)
    expect(freshBundle(none.root, {})).toBeNull()
    const noReader = project(T, { "engine/main.ts": T - 60 })
    rmSync(noReader.reader)
    expect(freshBundle(noReader.root, {})).toBeNull()
    const unreadable = project(T, { "engine/main.ts": T - 60 })
    writeFileSync(unreadable.listing, "not json")
    expect(freshBundle(unreadable.root, {})).toBeNull()
    const empty = project(T, { "engine/main.ts": T - 60 })
    writeFileSync(empty.listing, "[]")
    expect(freshBundle(empty.root, {})).toBeNull()
    const fresh = project(T, { "engine/main.ts": T - 60 })
    expect(freshBundle(fresh.root, {})).toBe(fresh.bundle)
    expect(freshBundle(fresh.root, { MEMBERFLOW_NO_BUNDLE: "1" })).toBeNull()
  })

  it("the bundle and the sources give the same CLI", async () => {
    const bundled = await runCli(["--help"], {})
    const sources = await runCli(["--help"], { MEMBERFLOW_NO_BUNDLE: "1" })
    expect(bundled.code).toBe(0)
    expect(bundled.stdout).toContain("memberflow")
    expect({ code: bundled.code, stdout: bundled.stdout }).toEqual({ code: sources.code, stdout: sources.stdout })
    const refused = await runCli(["no-such-command"], {})
    const refusedSources = await runCli(["no-such-command"], { MEMBERFLOW_NO_BUNDLE: "1" })
    expect(refused.code).not.toBe(0)
    expect(refused.code).toBe(refusedSources.code)
  })

  it("a bundle copied out of its dist folder still reads events on its own reader thread", async () => {
    // Inside the project, so that the bundle's packages resolve from its node_modules.
    const copy = join(ROOT, "node_modules/.cache", `memberflow-bundle-${process.pid}-${Date.now()}`)
    const { bundle, reader } = bundlePaths(ROOT)
    mkdirSync(join(copy, "engine"), { recursive: true })
    copyFileSync(bundle, join(copy, "engine/main.mjs"))
    copyFileSync(reader, join(copy, "engine/reader.mjs"))
    const topology = uniqueTopology("bundlecopy")
    const nc = await natsConnect()
    const engine = await startEngine(topology.env, "bundlecopy", join(copy, "engine/main.mjs"))
    try {
      await publishEvents(nc, topology, [
        { id: "bc-1", type: "member.registered", memberId: "bc", occurredAt: new Date(Date.now() - 60_000).toISOString(), properties: {} },
        { id: "bc-2", type: "purchase", memberId: "bc", occurredAt: new Date(Date.now() - 30_000).toISOString(), properties: { orderId: "bc-o1", amount: 100, currency: "CNY" } }
      ])
      // Until 2026-12-06 such a copy looked for the reader's TypeScript beside it and read nothing.
      await eventually(async () => ((await engine.get("/members/bc")).body as { purchase?: { count?: number } }).purchase?.count === 1, 20_000, "the copy's engine to apply the purchase", async () => engine.output().slice(-2000))
      expect(engine.output()).not.toContain("reading events failed")
    } finally {
      await engine.kill("SIGTERM")
      await nc.close()
      await dropTopology(topology)
      rmSync(copy, { recursive: true, force: true })
    }
  })
})
