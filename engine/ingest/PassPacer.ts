/**
 * How much of the engine's thread a pass over every member (the hourly sweep, a cron tick) may take
 * while events are flowing.
 *
 * A pass is worked through between batches: its listing of the members (fetches of keys from KV) and
 * its slices (members loaded and passed over). Taken as fast as they came, they held up the events
 * around them: with 1,000,000 members, the timers due in the seconds after a sweep's marker were
 * 2–4 s late (BENCHMARKS.md). Now, while a batch was handled within the last `quietMs`, each piece
 * of pass work is followed by enough time for events that pass work gets at most `share` of the
 * thread; when no event has come for `quietMs`, the pass goes at full speed.
 *
 * A pass lasts longer under load this way: `share` is that trade-off (`MEMBERFLOW_PASS_SHARE`).
 * (Until 2026-12-05, late evening, no checkpoint was taken of a pass's partitions until it was over,
 * so their changed states piled up in memory, and the engine hurried a pass to full speed while more
 * of them waited than a checkpoint lets wait. Its partitions are checkpointed during it now
 * (engine/Ingest.ts, `committable`), and the hurry went.)
 *
 * While `held` says so — the engine has a burst of timers due (engine/Ingest.ts) — pass work gets
 * only `heldShare` (a tenth of `share` unless given): a sweep at the top of the hour, when journeys'
 * timers fall due together, went on at its full share through the burst and made its timers late
 * (p99 1.3 s against 0.6–0.8 s for code whose pass happened to start later; BENCHMARKS.md). The held
 * share is not zero, so a pass under a burst that does not end still ends.
 */
export class PassPacer {
  private lastEvents = Number.NEGATIVE_INFINITY
  /** When the latest piece of pass work ended, and what it took. */
  private lastEnd = Number.NEGATIVE_INFINITY
  private lastMs = 0
  /** Milliseconds per member of pass work, smoothed over the pieces measured; 0 before any. */
  private msPerItem = 0
  private readonly held: () => boolean
  private readonly onHeld: (held: boolean) => void
  private heldNow = false
  private readonly heldShare: number
  private readonly pieceMs: number
  private readonly minItems: number

  constructor(
    private readonly share: number,
    private readonly quietMs = 200,
    private readonly now: () => number = Date.now,
    options: {
      readonly held?: () => boolean
      /** Told when pass work begins or stops being held back (for the engine's metrics). */
      readonly onHeld?: (held: boolean) => void
      readonly heldShare?: number
      readonly pieceMs?: number
      readonly minItems?: number
    } = {}
  ) {
    if (!(share > 0 && share <= 1)) throw new Error(`the pass share must be in (0, 1], not ${share}`)
    this.held = options.held ?? (() => false)
    this.onHeld = options.onHeld ?? (() => {})
    this.heldShare = options.heldShare ?? share / 10
    this.pieceMs = options.pieceMs ?? 25
    this.minItems = options.minItems ?? 20
    if (!(this.heldShare > 0 && this.heldShare <= share)) throw new Error(`the held pass share must be in (0, ${share}], not ${this.heldShare}`)
  }

  /** A batch of events was handled. */
  events(): void {
    this.lastEvents = this.now()
  }

  /**
   * Pass work that took `ms` is done: events get their share of the thread before the next. With
   * `items`, the number of members it was for: the time per member the next pieces are sized by.
   */
  spent(ms: number, items?: number): void {
    this.lastEnd = this.now()
    this.lastMs = Math.max(0, ms)
    if (items !== undefined && items > 0) {
      const each = this.lastMs / items
      this.msPerItem = this.msPerItem === 0 ? each : 0.7 * this.msPerItem + 0.3 * each
    }
  }

  /**
   * How many members the next piece of pass work may take: `max` while no event has come for the
   * quiet time, otherwise as many as take about `pieceMs` at the time per member measured so far
   * (`min` before anything is measured, and never fewer). Events wait for a piece of pass work
   * while it runs (its members' states are read from KV, then passed over): pieces of 1,000
   * members took 50–900 ms in a burst of timers and held them up that long.
   */
  items(max: number): number {
    if (this.quiet(this.now())) return max
    if (this.msPerItem === 0) return Math.min(max, this.minItems)
    return Math.max(Math.min(max, this.minItems), Math.min(max, Math.floor(this.pieceMs / this.msPerItem)))
  }

  /** Milliseconds before pass work may go on: 0 when it may now. */
  wait(): number {
    const now = this.now()
    const quiet = this.quiet(now)
    // Quiet, pass work goes at full speed: not held back, whatever timers are due.
    const held = !quiet && this.held()
    this.setHeld(held)
    if (quiet) return 0
    const share = held ? this.heldShare : this.share
    return Math.max(0, Math.ceil(this.lastEnd + (this.lastMs * (1 - share)) / share - now))
  }

  /** No pass is under way: nothing is held back. */
  idle(): void {
    this.setHeld(false)
  }

  private setHeld(held: boolean): void {
    if (held === this.heldNow) return
    this.heldNow = held
    this.onHeld(held)
  }

  /** No event has come for the quiet time: pass work goes at full speed. */
  private quiet(now: number): boolean {
    return now - this.lastEvents >= this.quietMs
  }

  /** Runs a piece of pass work once it may, and counts what it took. */
  async paced<A>(work: () => Promise<A>): Promise<A> {
    // Looked at again at least every 250 ms: a burst that ends lets the pass go on at its full share.
    for (let ms = this.wait(); ms > 0; ms = this.wait()) await new Promise((resolve) => setTimeout(resolve, Math.min(ms, 250)))
    const started = this.now()
    try {
      return await work()
    } finally {
      this.spent(this.now() - started)
    }
  }
}
