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

/** One row's JSONCompactEachRow line (no line break): its values in `columns` order, a missing or undefined one as `null`. */
export const encodeLine = (row: object, columns: ReadonlyArray<string>): string => {
  const fields = row as Readonly<Record<string, unknown>>
  const width = columns.length
  const values: Array<unknown> = new Array(width)
  for (let i = 0; i < width; i++) values[i] = fields[columns[i]!] ?? null
  return JSON.stringify(values)
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

/**
 * JSONCompactEachRow lines in one column order, appended to as rows come: a table's rows waiting
 * for their insert are held as these bytes, off the engine's heap, not as row objects (those lived
 * long enough to be copied by the young-generation collector and promoted; BENCHMARKS.md).
 */
export class RowLines {
  readonly columns: ReadonlyArray<string>
  private readonly index: ReadonlySet<string>
  private buffer: Buffer
  private at = 0
  private count = 0

  constructor(
    columns: ReadonlyArray<string>,
    private readonly pool: BodyPool
  ) {
    this.columns = columns
    this.index = new Set(columns)
    this.buffer = pool.take(FIRST_BYTES)
  }

  /** Rows in these lines. */
  get rows(): number {
    return this.count
  }

  /** The lines so far: valid until `release`. */
  get bytes(): Buffer {
    return this.buffer.subarray(0, this.at)
  }

  /**
   * Appends the rows, a missing or undefined value as `null` (the column's default for a
   * non-Nullable column, as with JSONEachRow's missing keys). False, appending nothing, when a row
   * has a column these lines lack: those rows need lines of their own.
   */
  append(rows: ReadonlyArray<Record<string, unknown>>): boolean {
    for (const row of rows) {
      for (const key in row) if (!this.index.has(key)) return false
    }
    const { columns } = this
    for (const row of rows) {
      const line = encodeLine(row, columns)
      // UTF-8 takes at most 3 bytes per UTF-16 unit (a surrogate pair: 4 for 2).
      this.room(line.length * 3 + 1)
      this.at += this.buffer.write(line, this.at)
      this.buffer[this.at++] = 10
    }
    this.count += rows.length
    return true
  }

  /** Whether these lines are in exactly these columns, in this order. */
  hasColumns(columns: ReadonlyArray<string>): boolean {
    return columns.length === this.columns.length && columns.every((column, i) => this.columns[i] === column)
  }

  /**
   * Appends lines encoded elsewhere (`encodeLine` as UTF-8, in this object's columns: see
   * `hasColumns`), each as one row: the events' rows, made on the event reader's thread
   * (engine/ingest/Delivered.ts), are copied in as bytes.
   */
  appendEncoded(lines: ReadonlyArray<Uint8Array>): void {
    for (const line of lines) {
      this.room(line.length + 1)
      this.buffer.set(line, this.at)
      this.at += line.length
      this.buffer[this.at++] = 10
    }
    this.count += lines.length
  }

  /** Makes room for `bytes` more. */
  private room(bytes: number): void {
    const most = this.at + bytes
    if (most <= this.buffer.length) return
    const larger = this.pool.take(Math.max(most, this.buffer.length * 2))
    this.buffer.copy(larger, 0, 0, this.at)
    this.pool.give(this.buffer)
    this.buffer = larger
  }

  /** Hands the buffer back to the pool: only once nothing reads it any more (its insert succeeded). */
  release(): void {
    this.pool.give(this.buffer)
    this.buffer = EMPTY
    this.at = 0
    this.count = 0
  }
}

const EMPTY = Buffer.alloc(0)

/** The rows as lines of their own, in the order of every key any of them has. */
export const encodeRows = (rows: ReadonlyArray<Record<string, unknown>>, pool: BodyPool): RowLines => {
  const lines = new RowLines(columnsOf(rows), pool)
  lines.append(rows)
  return lines
}
