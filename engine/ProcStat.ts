import { readFileSync } from "node:fs"

/**
 * A process's or thread's `/proc/…/stat` line (Linux; engine/ThreadPriority.ts, and the bench and
 * tests that watch the engine's threads and nats-server): its name, and the fields after it by their
 * number in proc(5) (`field(14)` is utime); null when it is gone. The name is in parentheses and may
 * hold spaces, so the fields are counted from its closing one.
 */
export interface ProcStat {
  /** The process's or thread's name (`comm`: 15 bytes at most). */
  readonly name: string
  /** Field `n` of proc(5)'s stat line, as a number. */
  readonly field: (n: number) => number
}

export const procStat = (path: string): ProcStat | null => {
  let stat: string
  try {
    stat = readFileSync(path, "latin1")
  } catch {
    return null
  }
  const close = stat.lastIndexOf(")")
  const rest = stat.slice(close + 2).split(" ")
  return { name: stat.slice(stat.indexOf("(") + 1, close), field: (n) => Number(rest[n - 3]) }
}
