import { readFileSync, writeFileSync } from "node:fs"

// Apart from engine/ThreadPriority.ts: the event reader's thread imports this, and its bundle stays
// without Effect and the settings.

/** The event reader's thread names itself this (engine/ingest/ReaderThread.ts): it keeps the engine's priority. */
export const READER_THREAD_NAME = "mf-reader"

/** Names the calling thread, as `top -H` and /proc show it (Linux; 15 bytes at most); nothing elsewhere. */
export const nameThisThread = (name: string): void => {
  try {
    writeFileSync("/proc/thread-self/comm", name)
  } catch {
    // not Linux: threads keep the process's name
  }
}

/** Milliseconds since boot (Linux's /proc/uptime, as a thread's start time in /proc counts); null elsewhere. */
export const uptimeMs = (): number | null => {
  try {
    return Number(readFileSync("/proc/uptime", "latin1").split(" ")[0]) * 1000
  } catch {
    return null
  }
}

// Reader threads started and not yet named, by when they were started (ms since boot).
const starting = new Set<{ readonly since: number }>()

/**
 * On the engine's thread, as a reader's thread is started: until the returned function is called
 * (the thread has named itself, or ended), engine/ThreadPriority.ts leaves alone every thread started
 * since. A reader's thread names itself only once its module has loaded, and a look at the threads
 * meanwhile would lower it for good (raising it again needs privileges): on a loaded machine, the
 * reader run from the sources took more than the five seconds a young thread was left alone.
 */
export const readerStarting = (): (() => void) => {
  const since = uptimeMs()
  if (since === null) return () => {}
  const token = { since }
  starting.add(token)
  return () => {
    starting.delete(token)
  }
}

/** The earliest start (ms since boot) of a reader's thread not yet named, or null. */
export const readersStartingSince = (): number | null => {
  let earliest: number | null = null
  for (const { since } of starting) earliest = earliest === null ? since : Math.min(earliest, since)
  return earliest
}
