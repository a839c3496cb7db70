import { spawnSync } from "node:child_process"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { ENGINE_NODE_FLAGS } from "../../engine/NodeFlags.ts"

const ROOT = join(import.meta.dirname, "../..")
const read = (file: string) => readFileSync(join(ROOT, file), "utf8")

// The flags are spelled out where engine/NodeFlags.ts cannot reach: the image's entry point and the
// README's production command. A flag changed in one place only would run production differently
// from everything measured (BENCHMARKS.md).
describe("the engine's Node flags", () => {
  it("are the Dockerfile's entry point, in the same order", () => {
    const entry = /^ENTRYPOINT (\[.*\])$/m.exec(read("Dockerfile"))
    expect(entry).not.toBeNull()
    expect(JSON.parse(entry![1]!)).toEqual(["node", ...ENGINE_NODE_FLAGS, "bin/memberflow.js"])
  })

  it("are the README's production command", () => {
    expect(read("README.md")).toContain(`\`node ${ENGINE_NODE_FLAGS.join(" ")} bin/memberflow.js run\``)
  })

  it("are flags Node accepts", () => {
    const run = spawnSync(process.execPath, [...ENGINE_NODE_FLAGS, "-e", "process.stdout.write('ok')"], { encoding: "utf8" })
    expect(run.stderr).toBe("")
    expect(run.stdout).toBe("ok")
  })
})
