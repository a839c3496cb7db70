import { Effect, Exit, Scope } from "effect"
import { readdirSync } from "node:fs"
import { getPriority } from "node:os"
import { Worker } from "node:worker_threads"
import { afterAll, describe, expect, it } from "vitest"
import { workerReaders } from "../../engine/ingest/EventReader.ts"
import { READER_THREAD_NAME, readersStartingSince } from "../../engine/ThreadName.ts"
import { lowerOtherThreads } from "../../engine/ThreadPriority.ts"
import { type EngineProcess, eventually, startEngine } from "../support/engine.ts"
import { dropTopology, type TestTopology, uniqueTopology } from "../support/nats.ts"
import { procStat } from "../../engine/ProcStat.ts"

/** A worker thread that names itself (if asked) and reports its thread id. */
const worker = (name: string | null): Promise<{ readonly thread: Worker; readonly tid: number }> =>
  new Promise((ok, fail) => {
    const thread = new Worker(
      `const { parentPort, workerData } = require("node:worker_threads")
       const fs = require("node:fs")
       if (workerData.name !== null) fs.writeFileSync("/proc/thread-self/comm", workerData.name)
       parentPort.postMessage(Number(fs.readlinkSync("/proc/thread-self").split("/").pop()))
       setInterval(() => {}, 1000)`,
      { eval: true, workerData: { name } }
    )
    thread.once("message", (tid: number) => ok({ thread, tid }))
    thread.once("error", fail)
  })

/** Each thread of a process: its name and niceness, from /proc. */
const threadsOf = (pid: number): Array<{ readonly tid: number; readonly name: string; readonly nice: number }> =>
  readdirSync(`/proc/${pid}/task`).flatMap((task) => {
    const stat = procStat(`/proc/${pid}/task/${task}/stat`)
    // Field 19 is the niceness.
    return stat === null ? [] : [{ tid: Number(task), name: stat.name, nice: stat.field(19) }]
  })

describe("the engine's thread first when the cores are contended (MEMBERFLOW_THREADS_NICE)", () => {
  const engines: Array<EngineProcess> = []
  const topologies: Array<TestTopology> = []
  afterAll(async () => {
    await Promise.all(engines.map((engine) => engine.kill("SIGKILL")))
    await Promise.all(topologies.map(dropTopology))
  })

  it("the process's other threads get the niceness, the engine's own and the event reader's keep theirs, and a second pass changes nothing", async () => {
    const helper = await worker(null)
    const reader = await worker(READER_THREAD_NAME)
    try {
      expect(getPriority(helper.tid)).toBe(0)
      expect(lowerOtherThreads(7)).toBeGreaterThanOrEqual(1)
      expect(getPriority(helper.tid)).toBe(7)
      expect(getPriority(reader.tid)).toBe(0)
      expect(getPriority(process.pid)).toBe(0)
      expect(lowerOtherThreads(7)).toBe(0)
      // 0 leaves every thread as it is.
      expect(lowerOtherThreads(0)).toBe(0)
    } finally {
      await Promise.all([helper.thread.terminate(), reader.thread.terminate()])
    }
  })

  it("a thread younger than the least age is left for a later look (the reader names itself only once its module has loaded)", async () => {
    const young = await worker(null)
    try {
      lowerOtherThreads(5, 60_000)
      expect(getPriority(young.tid)).toBe(0)
      lowerOtherThreads(5)
      expect(getPriority(young.tid)).toBe(5)
    } finally {
      await young.thread.terminate()
    }
  })

  it("a reader's thread slow to name itself keeps its priority, and so does any thread started meanwhile until it has named itself", async () => {
    const older = await worker(null)
    // The reader's stand-in: it says its thread id, then waits for the word to name itself, as a
    // reader whose module loads slowly would.
    const shared = new Int32Array(new SharedArrayBuffer(8))
    const scope = Effect.runSync(Scope.make())
    const threads: Array<Worker> = []
    const meanwhile: Array<Worker> = []
    try {
      const readers = await Effect.runPromise(
        workerReaders({ stream: "unused", subjectPrefix: "unused", maxBytes: 1024, batchSize: 10, batchWindow: 5, nats: { servers: ["nats://127.0.0.1:1"], token: undefined, credsFile: undefined } }, () => {
          const thread = new Worker(
            `const { parentPort, workerData } = require("node:worker_threads")
             const fs = require("node:fs")
             const shared = new Int32Array(workerData.shared)
             Atomics.store(shared, 0, Number(fs.readlinkSync("/proc/thread-self").split("/").pop()))
             Atomics.wait(shared, 1, 0)
             fs.writeFileSync("/proc/thread-self/comm", workerData.name)
             parentPort.postMessage({ kind: "named" })
             parentPort.on("message", (command) => { if (command.kind === "close") parentPort.postMessage({ kind: "closed" }) })`,
            { eval: true, workerData: { shared: shared.buffer, name: READER_THREAD_NAME } }
          )
          threads.push(thread)
          return thread
        }).pipe(Scope.extend(scope))
      )
      await readers.open(1, { count: 1, owned: new Set([0]) })
      await eventually(async () => Atomics.load(shared, 0) !== 0, 10_000, "the reader's stand-in to start")
      const reader = Atomics.load(shared, 0)
      const other = await worker(null)
      meanwhile.push(other.thread)
      expect(readersStartingSince()).not.toBeNull()
      // No least age: only the reader's start keeps the young threads from being lowered.
      lowerOtherThreads(6)
      expect(getPriority(older.tid)).toBe(6)
      expect(getPriority(reader)).toBe(0)
      expect(getPriority(other.tid)).toBe(0)

      Atomics.store(shared, 1, 1)
      Atomics.notify(shared, 1)
      await eventually(async () => readersStartingSince() === null, 10_000, "the reader's stand-in to name itself")
      lowerOtherThreads(6)
      expect(getPriority(reader)).toBe(0)
      expect(getPriority(other.tid)).toBe(6)
    } finally {
      Atomics.store(shared, 1, 1)
      Atomics.notify(shared, 1)
      await Effect.runPromise(Scope.close(scope, Exit.void))
      await Promise.all([older.thread.terminate(), ...meanwhile.map((thread) => thread.terminate()), ...threads.map((thread) => thread.terminate())])
    }
  })

  it("`memberflow run` (MEMBERFLOW_THREADS_NICE 10 by default): every thread but the engine's and the reader's at 10, ClickHouse's started later too; with 0, none changed", async () => {
    const topology = uniqueTopology("nice")
    topologies.push(topology)
    const engine = await startEngine({ ...topology.env }, "nice")
    engines.push(engine)
    const pid = engine.child.pid!
    // A thread is lowered once it is 5 s old; the reader starts once the engine owns partitions.
    await eventually(
      async () => {
        const threads = threadsOf(pid)
        const others = threads.filter((thread) => thread.tid !== pid && thread.name !== READER_THREAD_NAME)
        return others.length > 0 && others.every((thread) => thread.nice === 10) && threads.some((thread) => thread.name === READER_THREAD_NAME)
      },
      30_000,
      "the reader's thread there and the other threads at nice 10"
    )
    const threads = threadsOf(pid)
    expect(threads.find((thread) => thread.tid === pid)?.nice).toBe(0)
    const readers = threads.filter((thread) => thread.name === READER_THREAD_NAME)
    expect(readers).toHaveLength(1)
    expect(readers[0]?.nice).toBe(0)
    expect(engine.output()).toContain("the engine's other threads run at a lower priority")

    // With 0 the engine changes no thread (ClickHouse's own may set theirs: run as root, its
    // memory worker raises itself to -20).
    const plain = await startEngine({ ...topology.env, MEMBERFLOW_THREADS_NICE: "0" }, "nice-off")
    engines.push(plain)
    expect(threadsOf(plain.child.pid!).filter((thread) => thread.nice === 10)).toEqual([])
    expect(plain.output()).not.toContain("the engine's other threads run at a lower priority")
  }, 90_000)
})
