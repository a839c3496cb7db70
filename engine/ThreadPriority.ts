import { Effect, Layer } from "effect"
import { readdirSync } from "node:fs"
import { getPriority, setPriority } from "node:os"
import { type ProcStat, procStat } from "./ProcStat.ts"
import * as Settings from "./Settings.ts"
import { READER_THREAD_NAME, readersStartingSince, uptimeMs } from "./ThreadName.ts"

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
 * reader's the niceness `nice`, where it is lower, leaving for a later look those that started less
 * than `minAgeMs` ago or since a reader's thread was started that has not named itself yet
 * (engine/ThreadName.ts, `readerStarting`). Returns how many were changed; 0 off Linux. Threads come
 * and go (ClickHouse's pools grow and shrink), so it is run again every few seconds.
 */
export const lowerOtherThreads = (nice: number, minAgeMs = 0): number => {
  if (nice <= 0) return 0
  let tasks: Array<string>
  try {
    tasks = readdirSync("/proc/self/task")
  } catch {
    return 0
  }
  const now = uptimeMs()
  if (now === null) return 0
  // A thread's start is counted in ticks of 10 ms: one started in the same tick as the reader's is left too.
  const readerSince = readersStartingSince()
  const unnamedFrom = readerSince === null ? Number.POSITIVE_INFINITY : readerSince - 10
  let changed = 0
  for (const task of tasks) {
    const tid = Number(task)
    if (tid === process.pid) continue
    const stat = procStat(`/proc/self/task/${task}/stat`)
    // Gone meanwhile; or too young to tell (`MIN_AGE_MS`), or maybe a reader's not named yet; or the reader's.
    if (stat === null || (minAgeMs > 0 && now - startedMs(stat) < minAgeMs) || startedMs(stat) >= unnamedFrom || stat.name === READER_THREAD_NAME) continue
    try {
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

/** When the thread started, in ms since boot: field 22 of its stat line, in clock ticks (USER_HZ, 100 on Linux whatever the kernel's own tick). */
const startedMs = (stat: ProcStat): number => stat.field(22) * 10

/** How often the threads are looked over again. */
const RESCAN_MS = 2_000

/**
 * A thread is left alone for its first seconds. The event reader's thread names itself once its
 * module has loaded, and a look between its start and its name lowered it for good (raising it
 * again needs privileges). That wait alone was not enough: with the full test suite loading the
 * machine, a reader run from the sources took longer than it, and ran at nice 10 from then on. So
 * every thread started since a reader's start is also left alone until the reader has said it is
 * named (engine/ThreadName.ts, `readerStarting`); the wait stays for threads of other kinds.
 */
const MIN_AGE_MS = 5_000

/** `memberflow run`: the process's other threads at `MEMBERFLOW_THREADS_NICE` (10 by default; 0: left as they are). */
export const ThreadPriorityLive = Layer.scopedDiscard(
  Effect.gen(function* () {
    const nice = yield* Settings.threadsNice
    if (nice === 0) return
    const first = lowerOtherThreads(nice, MIN_AGE_MS)
    yield* Effect.logInfo("the engine's other threads run at a lower priority").pipe(Effect.annotateLogs({ nice, threads: first }))
    const timer = setInterval(() => lowerOtherThreads(nice, MIN_AGE_MS), RESCAN_MS)
    timer.unref()
    yield* Effect.addFinalizer(() => Effect.sync(() => clearInterval(timer)))
  })
)
