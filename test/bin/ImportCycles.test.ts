import { build, type Metafile } from "esbuild"
import { readdirSync } from "node:fs"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { ROOT } from "../support/engine.ts"

/**
 * An ES module that imports, at run time, a module that imports it back reads the other's exports
 * before they exist when the cycle is entered from the other side: `Cannot access 'X' before
 * initialization`. Which side is entered first depends on the entry point, so such a cycle passes
 * through the engine's bundle and the tests and breaks another entry: bench:state and bench:publish
 * failed that way for a day (engine/Settings.ts importing the event reader for one setting).
 */

const entryPoints = [
  "engine/main.ts",
  "engine/ingest/ReaderThread.ts",
  ...readdirSync(join(ROOT, "bench")).filter((file) => file.endsWith(".ts")).map((file) => `bench/${file}`)
]

/** The project's modules (not packages) and the ones each imports at run time. */
const importGraph = async (): Promise<Map<string, ReadonlyArray<string>>> => {
  // esbuild elides an import that only brings types, as TypeScript does, so the metafile's imports
  // are the ones that run.
  const result = await build({
    absWorkingDir: ROOT,
    entryPoints,
    outdir: join(ROOT, "dist/import-cycles"),
    write: false,
    bundle: true,
    platform: "node",
    format: "esm",
    packages: "external",
    metafile: true,
    logLevel: "silent"
  })
  const metafile: Metafile = result.metafile
  return new Map(
    Object.entries(metafile.inputs).map(([file, input]) => [
      file,
      input.imports.filter((imported) => !imported.external && imported.kind === "import-statement").map((imported) => imported.path)
    ])
  )
}

/** Each cycle found by a depth-first walk, as the files around it. */
const cyclesOf = (graph: ReadonlyMap<string, ReadonlyArray<string>>): Array<Array<string>> => {
  const cycles: Array<Array<string>> = []
  const done = new Set<string>()
  const path: Array<string> = []
  const visit = (file: string): void => {
    const at = path.indexOf(file)
    if (at !== -1) {
      cycles.push([...path.slice(at), file])
      return
    }
    if (done.has(file)) return
    path.push(file)
    for (const next of graph.get(file) ?? []) visit(next)
    path.pop()
    done.add(file)
  }
  for (const file of graph.keys()) visit(file)
  return cycles
}

describe("the modules' imports", () => {
  it("finds a cycle when there is one", () => {
    const graph = new Map([["a.ts", ["b.ts"]], ["b.ts", ["c.ts"]], ["c.ts", ["a.ts"]], ["d.ts", ["a.ts"]]])
    expect(cyclesOf(graph)).toEqual([["a.ts", "b.ts", "c.ts", "a.ts"]])
    expect(cyclesOf(new Map([["a.ts", ["b.ts"]], ["b.ts", []]]))).toEqual([])
  })

  it("form no cycle at run time from the engine, its reader thread or any benchmark", async () => {
    const graph = await importGraph()
    // The walk covers the project: the engine's sources, channels and schemas among them.
    expect(graph.has("engine/Settings.ts")).toBe(true)
    expect(graph.has("channels/Channels.ts")).toBe(true)
    expect(graph.has("bench/state.ts")).toBe(true)
    expect(cyclesOf(graph).map((cycle) => cycle.join(" -> "))).toEqual([])
  })
})
