import { type ChildProcess, spawn } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { createServer } from "node:net"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import { urlHostFor } from "../../engine/AdminAuth.ts"
import { ENGINE_NODE_FLAGS } from "../../engine/NodeFlags.ts"

export const ROOT = resolve(import.meta.dirname, "../..")

export const freePort = (): Promise<number> =>
  new Promise((ok, fail) => {
    const server = createServer()
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      server.close(() => (typeof address === "object" && address !== null ? ok(address.port) : fail(new Error("no port"))))
    })
  })

/** Directories made by `tempDir` and not removed yet. */
const made: Array<string> = []

/**
 * Removes the directories `tempDir` made: after each test file (test/support/setup.ts, its last
 * `afterAll`), and when a benchmark's process exits.
 */
export const removeTempDirs = (): void => {
  for (const path of made.splice(0)) {
    try {
      rmSync(path, { recursive: true, force: true, maxRetries: 2 })
    } catch {
      // An engine a failed test left running may still be writing there: that directory stays.
    }
  }
}

/**
 * A new directory under the system's temp folder, removed with everything in it at the end of the
 * test file or benchmark that made it. They used to stay: a full `npm test` and the benchmarks left
 * about 270 of them, engines' ClickHouse data among them.
 */
export const tempDir = (label: string): string => {
  const dir = mkdtempSync(join(tmpdir(), `memberflow-${label}-`))
  if (made.length === 0) process.once("exit", removeTempDirs)
  made.push(dir)
  return dir
}

export interface EngineProcess {
  readonly port: number
  readonly child: ChildProcess
  readonly output: () => string
  readonly sql: <A = Record<string, unknown>>(query: string) => Promise<Array<A>>
  readonly get: (path: string) => Promise<{ status: number; body: unknown }>
  /** Waits for the process to exit and returns its exit code (null when killed by a signal). */
  readonly exited: Promise<number | null>
  readonly kill: (signal: NodeJS.Signals) => Promise<number | null>
}

/** Runs `memberflow <args>` as a user would (the bin script), with the given environment. */
export const runCli = (args: ReadonlyArray<string>, env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> =>
  new Promise((ok) => {
    const child = spawn(process.execPath, [join(ROOT, "bin/memberflow.js"), ...args], {
      cwd: ROOT,
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "pipe"]
    })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()))
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()))
    child.on("exit", (code) => ok({ code, stdout, stderr }))
  })

/** Starts `memberflow run` (`entry`: another script than the bin) and resolves once /readyz answers 200. */
export const startEngine = async (env: Record<string, string>, label = "engine", entry?: string): Promise<EngineProcess> => {
  // Port 0 unless the test names one: the engine binds a free port itself and logs it. A port picked
  // here and handed over could be taken by another test's engine first, and that engine's /readyz
  // would then answer for this one.
  let port = Number(env["MEMBERFLOW_HTTP_PORT"] ?? 0)
  const dataDir = env["MEMBERFLOW_DATA_DIR"] ?? tempDir(label)
  // BENCH_CPU_PROFILE=<dir>: each engine writes a V8 CPU profile there when it exits (benchmarks).
  const profile = process.env["BENCH_CPU_PROFILE"]
  // BENCH_NODE_ARGS="--trace-gc …": more Node flags for the engines (benchmarks).
  const extra = (process.env["BENCH_NODE_ARGS"] ?? "").split(" ").filter((arg) => arg !== "")
  const nodeArgs = [...(profile === undefined ? [] : ["--cpu-prof", `--cpu-prof-dir=${profile}`]), ...extra]
  // BENCH_ENGINE_ENTRY=<main.js of a tsc build>: profiles with the source's line numbers (tsx puts
  // each module on one line); see BENCHMARKS.md, "Profiling".
  const script = entry ?? process.env["BENCH_ENGINE_ENTRY"] ?? join(ROOT, "bin/memberflow.js")
  const child = spawn(process.execPath, ["--stack-trace-limit=20", ...ENGINE_NODE_FLAGS, ...nodeArgs, script, "run"], {
    cwd: ROOT,
    env: { ...process.env, JOURNEYS_DIR: join(ROOT, "journeys"), CHANNELS_MODE: "sandbox", ...env, MEMBERFLOW_DATA_DIR: dataDir, MEMBERFLOW_HTTP_PORT: String(port) },
    stdio: ["ignore", "pipe", "pipe"]
  })
  let output = ""
  child.stdout?.on("data", (chunk: Buffer) => (output += chunk.toString()))
  child.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString()))
  const exited = new Promise<number | null>((ok) => child.on("exit", (code) => ok(code)))
  let base = `http://127.0.0.1:${port}`
  const headers: Record<string, string> = env["MEMBERFLOW_ADMIN_TOKEN"] ? { authorization: `Bearer ${env["MEMBERFLOW_ADMIN_TOKEN"]}` } : {}
  const get = async (path: string) => {
    const response = await fetch(`${base}${path}`, { headers })
    const text = await response.text()
    let body: unknown = text
    try {
      body = JSON.parse(text)
    } catch {
      // plain text bodies (metrics, healthz) stay text
    }
    return { status: response.status, body }
  }
  const sql = async <A,>(query: string): Promise<Array<A>> => {
    const response = await fetch(`${base}/sql`, { method: "POST", headers: { ...headers, "content-type": "text/plain" }, body: query })
    const body = (await response.json()) as { rows?: Array<A>; error?: string }
    if (response.status !== 200 || body.rows === undefined) throw new Error(`SQL failed (${response.status}): ${body.error}`)
    return body.rows
  }
  const deadline = Date.now() + 60_000
  let exitCode: number | null | "running" = "running"
  void exited.then((code) => (exitCode = code))
  while (Date.now() < deadline) {
    if (exitCode !== "running") throw new Error(`engine exited (${exitCode}) before ready:\n${output}`)
    // Its own "Listening on" line first, a named port too: until this engine has bound it, another
    // process may hold it and answer /readyz in its place.
    const listening = /Listening on http:\/\/([^\s"]+):(\d+)/.exec(output)
    if (listening === null) {
      await new Promise((r) => setTimeout(r, 100))
      continue
    }
    port = Number(listening[2])
    // At the host it bound (loopback for every interface), as the CLI asks it.
    base = `http://${urlHostFor(listening[1]!.replace(/^\[(.*)\]$/, "$1"))}:${port}`
    const ready = await get("/readyz").then((r) => r.status === 200, () => false)
    if (ready) break
    await new Promise((r) => setTimeout(r, 200))
  }
  if (Date.now() >= deadline) throw new Error(`engine not ready in 60 s:\n${output}`)
  return {
    port,
    child,
    output: () => output,
    sql,
    get,
    exited,
    kill: (signal) => {
      child.kill(signal)
      return exited
    }
  }
}

/** One unlabelled figure of a /metrics text; NaN when it is not there. */
export const metricOf = (metrics: string, name: string): number => Number(new RegExp(`^${name} (\\S+)$`, "m").exec(metrics)?.[1] ?? Number.NaN)

/**
 * Polls `check` until it returns true (or throws after `ms`). `explain`, when given, adds what the
 * system looked like at the time-out to the error (a CI failure is then readable without a rerun).
 */
export const eventually = async (check: () => Promise<boolean>, ms = 30_000, what = "condition", explain?: () => Promise<string>): Promise<void> => {
  const deadline = Date.now() + ms
  let lastError: unknown
  while (Date.now() < deadline) {
    try {
      if (await check()) return
    } catch (error) {
      lastError = error
    }
    await new Promise((r) => setTimeout(r, 250))
  }
  const state = explain === undefined ? "" : await explain().then((text) => `\n${text}`, (error: unknown) => `\n(no explanation: ${String(error)})`)
  throw new Error(`timed out waiting for ${what}${lastError ? `: ${String(lastError)}` : ""}${state}`)
}

/** An engine's state for a time-out message: its warnings and errors, and its ingest metrics. */
export const engineState = async (engine: EngineProcess): Promise<string> => {
  const logs = engine
    .output()
    .split("\n")
    // "events rejected" is every refusal, counted in the metrics below.
    .filter((line) => /"(WARN|ERROR|FATAL)"/.test(line) && !line.includes('"message":"events rejected"'))
    .join("\n")
    .slice(-3_000)
  const metrics = String((await engine.get("/metrics")).body)
    .split("\n")
    .filter((line) => /^memberflow_(events_|retries|consumer_lag|partitions_owned|derived_)/.test(line))
    .join("\n")
  return `engine exit code: ${String(engine.child.exitCode)}\nwarnings and errors (last 3,000 characters):\n${logs || "(none)"}\nmetrics:\n${metrics}`
}

export interface Readiness {
  readonly ingest?: { readonly partitions: number; readonly owned: ReadonlyArray<number>; readonly lag: number }
}

/**
 * True when the engines between them own every member partition and each has handled the whole
 * stream (its /readyz): every event published so far has its effects written.
 */
export const drained = async (engines: ReadonlyArray<EngineProcess>): Promise<boolean> =>
  allDrained(await Promise.all(engines.map(async (engine) => (await engine.get("/readyz")).body as Readiness)))

/** `drained` over /readyz answers already read (null: an engine that did not answer). */
export const allDrained = (states: ReadonlyArray<Readiness | null>): boolean => {
  const partitions = states[0]?.ingest?.partitions ?? -1
  const owned = states.reduce((sum, state) => sum + (state?.ingest?.owned.length ?? 0), 0)
  return owned === partitions && states.every((state) => state?.ingest?.lag === 0)
}
