import { writeFileSync } from "node:fs"

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
