/**
 * Rows encoded for an insert: one JSONCompactEachRow line per row (its values as a JSON array, in
 * one column order), written straight into a byte buffer.
 *
 * The client used to do this: a string per row, joined into one string, which chDB's connection then
 * prefixed with the statement (another copy) and encoded to UTF-8 (a third) on the engine's thread.
 * At 15,000 events a second those were over a gigabyte of large strings a minute for the garbage
 * collector, and about a tenth of the thread. Now each row's line is written into a buffer taken from
 * a pool, which chDB parses in place on its own threads (or the HTTP client streams to a server); the
 * buffer goes back to the pool once the insert has settled successfully.
 */

/** Every key any row has, in the order first seen. */
export const columnsOf = (rows: ReadonlyArray<Record<string, unknown>>): Array<string> => {
  const columns = new Set<string>()
  for (const row of rows) {
    for (const key in row) if (!columns.has(key)) columns.add(key)
  }
  return [...columns]
}

/** Buffers kept for reuse: no more than this many, and none larger than `KEEP_BYTES`. */
const POOL_SIZE = 8
const KEEP_BYTES = 64 * 1024 * 1024
const FIRST_BYTES = 256 * 1024

export class BodyPool {
  private readonly free: Array<Buffer> = []

  /** A buffer of at least `bytes` bytes, its content undefined. */
  take(bytes: number): Buffer {
    for (let i = this.free.length - 1; i >= 0; i--) {
      const buffer = this.free[i]!
      if (buffer.length >= bytes) {
        this.free.splice(i, 1)
        return buffer
      }
    }
    return Buffer.allocUnsafeSlow(Math.max(bytes, FIRST_BYTES))
  }

  /** Hands a buffer back: only once nothing reads it any more (its insert settled). */
  give(buffer: Buffer): void {
    if (buffer.length > KEEP_BYTES) return
    if (this.free.length >= POOL_SIZE) {
      // The smallest goes: the pool keeps the sizes the inserts need.
      let smallest = 0
      for (let i = 1; i < this.free.length; i++) if (this.free[i]!.length < this.free[smallest]!.length) smallest = i
      if (this.free[smallest]!.length >= buffer.length) return
      this.free.splice(smallest, 1)
    }
    this.free.push(buffer)
  }
}

export interface RowBody {
  readonly columns: ReadonlyArray<string>
  /** The whole buffer, to hand back to its pool once the insert has settled. */
  readonly buffer: Buffer
  /** The lines: `buffer` up to their end. */
  readonly bytes: Buffer
}

/**
 * The rows as JSONCompactEachRow lines. A missing or undefined value is written as `null` (the
 * column's default for a non-Nullable column, as with JSONEachRow's missing keys).
 */
export const encodeRows = (rows: ReadonlyArray<Record<string, unknown>>, pool: BodyPool): RowBody => {
  const columns = columnsOf(rows)
  const width = columns.length
  const values: Array<unknown> = new Array(width)
  let buffer = pool.take(FIRST_BYTES)
  let at = 0
  for (const row of rows) {
    for (let i = 0; i < width; i++) values[i] = row[columns[i]!] ?? null
    const line = JSON.stringify(values)
    // UTF-8 takes at most 3 bytes per UTF-16 unit (a surrogate pair: 4 for 2).
    const most = at + line.length * 3 + 1
    if (most > buffer.length) {
      const larger = pool.take(Math.max(most, buffer.length * 2))
      buffer.copy(larger, 0, 0, at)
      pool.give(buffer)
      buffer = larger
    }
    at += buffer.write(line, at)
    buffer[at++] = 10
  }
  return { columns, buffer, bytes: buffer.subarray(0, at) }
}
