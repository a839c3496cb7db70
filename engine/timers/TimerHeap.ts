/**
 * The timers of one partition by due time: a binary min-heap kept in typed arrays, each timer's
 * payload (who and what it is for) as UTF-8 bytes in one arena.
 *
 * A million members in journeys are two million timers or more, held for days. As JavaScript
 * objects (a record, its strings) they were millions of things for the garbage collector to trace
 * on every full collection, and those collections made the engine's timers and events late. Here
 * they are five typed arrays and a byte arena whatever their number: nothing to trace. A timer
 * becomes an object again only when it is popped to fire.
 */

export interface PoppedTimer {
  readonly due: number
  readonly seq: number
  readonly payload: string
}

const encoder = new TextEncoder()
const decoder = new TextDecoder()

export class TimerHeap {
  private count = 0
  private dues = new Float64Array(256)
  private seqs = new Float64Array(256)
  private offsets = new Int32Array(256)
  private lengths = new Int32Array(256)
  private arena = new Uint8Array(16 * 1024)
  /** Arena bytes written so far (live and dead); new payloads go after them. */
  private used = 0
  /** Arena bytes of the timers held. */
  private live = 0

  get size(): number {
    return this.count
  }

  /** Bytes held outside the JavaScript heap (records and arena). */
  get bytes(): number {
    return this.dues.byteLength * 2 + this.offsets.byteLength * 2 + this.arena.byteLength
  }

  /** The earliest due time, Infinity when empty. */
  peekDue(): number {
    return this.count === 0 ? Infinity : this.dues[0]!
  }

  /**
   * How many timers are due at or before `by`, counted up to `atMost` (then `atMost`): the heap is
   * walked from its root, and a subtree whose root is due later is skipped whole, so this visits at
   * most about twice `atMost` records however many timers are held.
   */
  countDueBy(by: number, atMost: number): number {
    if (this.count === 0 || !(this.dues[0]! <= by) || atMost <= 0) return 0
    const stack = [0]
    let counted = 0
    while (stack.length > 0 && counted < atMost) {
      const i = stack.pop()!
      counted++
      const left = 2 * i + 1
      if (left < this.count && this.dues[left]! <= by) stack.push(left)
      if (left + 1 < this.count && this.dues[left + 1]! <= by) stack.push(left + 1)
    }
    return counted
  }

  push(due: number, seq: number, payload: string): void {
    if (this.count === this.dues.length) this.growRecords()
    this.reserve(payload.length * 3)
    const { written } = encoder.encodeInto(payload, this.arena.subarray(this.used))
    const offset = this.used
    this.used += written
    this.live += written
    this.siftUp(this.count++, due, seq, offset, written)
  }

  pop(): PoppedTimer | undefined {
    if (this.count === 0) return undefined
    const popped: PoppedTimer = {
      due: this.dues[0]!,
      seq: this.seqs[0]!,
      payload: decoder.decode(this.arena.subarray(this.offsets[0]!, this.offsets[0]! + this.lengths[0]!))
    }
    this.live -= this.lengths[0]!
    const last = --this.count
    if (last > 0) this.siftDown(0, this.dues[last]!, this.seqs[last]!, this.offsets[last]!, this.lengths[last]!)
    if (this.count === 0) this.used = this.live = 0
    return popped
  }

  /** Moves the record (due, seq, offset, length) up from the hole at `i` to its place. */
  private siftUp(i: number, due: number, seq: number, offset: number, length: number): void {
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (this.dues[parent]! <= due) break
      this.move(parent, i)
      i = parent
    }
    this.place(i, due, seq, offset, length)
  }

  /** Moves the record down from the hole at `i`. */
  private siftDown(i: number, due: number, seq: number, offset: number, length: number): void {
    const dues = this.dues
    const n = this.count
    for (;;) {
      const left = 2 * i + 1
      if (left >= n) break
      const right = left + 1
      const child = right < n && dues[right]! < dues[left]! ? right : left
      if (dues[child]! >= due) break
      this.move(child, i)
      i = child
    }
    this.place(i, due, seq, offset, length)
  }

  private move(from: number, to: number): void {
    this.place(to, this.dues[from]!, this.seqs[from]!, this.offsets[from]!, this.lengths[from]!)
  }

  private place(i: number, due: number, seq: number, offset: number, length: number): void {
    this.dues[i] = due
    this.seqs[i] = seq
    this.offsets[i] = offset
    this.lengths[i] = length
  }

  private growRecords(): void {
    const size = this.dues.length * 2
    const grow = <T extends Float64Array | Int32Array>(from: T, to: T): T => (to.set(from), to)
    this.dues = grow(this.dues, new Float64Array(size))
    this.seqs = grow(this.seqs, new Float64Array(size))
    this.offsets = grow(this.offsets, new Int32Array(size))
    this.lengths = grow(this.lengths, new Int32Array(size))
  }

  /** Room for `bytes` more: the dead payloads squeezed out when they are half the arena, else a larger arena. */
  private reserve(bytes: number): void {
    if (this.used + bytes <= this.arena.length) return
    // Half as much again as is live: the next squeeze is that many bytes of pushes away.
    const size = Math.max(16 * 1024, Math.ceil((1.5 * (this.live + bytes)) / 65_536) * 65_536)
    const next = new Uint8Array(size)
    let at = 0
    for (let i = 0; i < this.count; i++) {
      const offset = this.offsets[i]!
      const length = this.lengths[i]!
      next.set(this.arena.subarray(offset, offset + length), at)
      this.offsets[i] = at
      at += length
    }
    this.arena = next
    this.used = at
  }
}
