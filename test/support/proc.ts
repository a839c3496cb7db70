import { readFileSync } from "node:fs"

/**
 * A process's or thread's `/proc/…/stat` line (Linux): its name, and the fields after it by their
 * number in proc(5) (`field(14)` is utime); null when it is gone. The name is in parentheses and may
 * hold spaces, so the fields are counted from its closing one.
 */
export const procStat = (path: string): { readonly name: string; readonly field: (n: number) => number } | null => {
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
