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
 */
export class PassPacer {
  private lastEvents = Number.NEGATIVE_INFINITY
  private nextPass = Number.NEGATIVE_INFINITY

  constructor(
    private readonly share: number,
    private readonly quietMs = 200,
    private readonly now: () => number = Date.now
  ) {
    if (!(share > 0 && share <= 1)) throw new Error(`the pass share must be in (0, 1], not ${share}`)
  }

  /** A batch of events was handled. */
  events(): void {
    this.lastEvents = this.now()
  }

  /** Pass work that took `ms` is done: events get their share of the thread before the next. */
  spent(ms: number): void {
    this.nextPass = this.now() + (Math.max(0, ms) * (1 - this.share)) / this.share
  }

  /** Milliseconds before pass work may go on: 0 when it may now. */
  wait(): number {
    const now = this.now()
    if (now - this.lastEvents >= this.quietMs) return 0
    return Math.max(0, Math.ceil(this.nextPass - now))
  }

  /** Runs a piece of pass work once it may, and counts what it took. */
  async paced<A>(work: () => Promise<A>): Promise<A> {
    for (let ms = this.wait(); ms > 0; ms = this.wait()) await new Promise((resolve) => setTimeout(resolve, ms))
    const started = this.now()
    try {
      return await work()
    } finally {
      this.spent(this.now() - started)
    }
  }
}
