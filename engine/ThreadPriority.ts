import { Effect, Layer } from "effect"
import { readdirSync, readFileSync } from "node:fs"
import { getPriority, setPriority } from "node:os"
import * as Settings from "./Settings.ts"
import { READER_THREAD_NAME } from "./ThreadName.ts"

/**
 * The engine's own thread first, when the machine's cores are contended (Linux).
 *
 * Everything an event waits for passes through the engine's thread: it applies the batches, and no
 * other thread can do that work for it. The process's other threads — V8's collector helpers, the
 * embedded ClickHouse's inserts and merges, libuv's pool — do work that can wait a little. With NATS
 * and ClickHouse on the same two cores, the engine's thread spent about two thirds of its long
 * holds ready to run and waiting for a core (`memberflow_event_loop_held_waiting_seconds_total`;
 * BENCHMARKS.md, 2026-12-07, morning). `MEMBERFLOW_THREADS_NICE` gives those other threads a higher
 * niceness, so the scheduler hands a contended core to the engine's thread (and the event reader's,
 * which feeds it) first. A process may always lower its own threads' priority; raising it again
 * needs privileges, so an engine lowers and never restores.
 */

/**
 * Gives each thread of this process but the engine's own (the process's first) and the event
 * reader's the niceness `nice`, where it is lower. Returns how many were changed; 0 off Linux.
 * Threads come and go (ClickHouse's pools grow and shrink), so it is run again every few seconds.
 */
export const lowerOtherThreads = (nice: number): number => {
  if (nice <= 0) return 0
  let tasks: Array<string>
  try {
    tasks = readdirSync("/proc/self/task")
  } catch {
    return 0
  }
  let changed = 0
  for (const task of tasks) {
    const tid = Number(task)
    if (tid === process.pid) continue
    try {
      if (readFileSync(`/proc/self/task/${task}/comm`, "latin1").trim() === READER_THREAD_NAME) continue
      // On Linux a thread id names that one thread to getpriority/setpriority.
      if (getPriority(tid) >= nice) continue
      setPriority(tid, nice)
      changed++
    } catch {
      // the thread ended meanwhile
    }
  }
  return changed
}

/** How often the threads are looked over again. */
const RESCAN_MS = 2_000

/** `memberflow run`: the process's other threads at `MEMBERFLOW_THREADS_NICE` (10 by default; 0: left as they are). */
export const ThreadPriorityLive = Layer.scopedDiscard(
  Effect.gen(function* () {
    const nice = yield* Settings.threadsNice
    if (nice === 0) return
    const first = lowerOtherThreads(nice)
    yield* Effect.logInfo("the engine's other threads run at a lower priority").pipe(Effect.annotateLogs({ nice, threads: first }))
    const timer = setInterval(() => lowerOtherThreads(nice), RESCAN_MS)
    timer.unref()
    yield* Effect.addFinalizer(() => Effect.sync(() => clearInterval(timer)))
  })
)
