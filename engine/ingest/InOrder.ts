/**
 * Callbacks run in the order they were registered, whatever order their work finishes in.
 *
 * With two batches' writes in flight (engine/Ingest.ts, `WRITES_IN_FLIGHT`), the later batch's
 * publishes may be acknowledged first. Its `written` moves its partitions' positions (`processed`,
 * what /readyz's lag is read from) and counts its events; run before the earlier batch's, a position
 * would say written what is not yet.
 */
export class InOrder {
  private readonly waiting: Array<{ done: boolean; readonly run: () => void }> = []

  /** `run`, to be called once its work is done: it runs after every callback registered before it. */
  after(run: () => void): () => void {
    const entry = { done: false, run }
    this.waiting.push(entry)
    return () => {
      if (entry.done) return
      entry.done = true
      while (this.waiting.length > 0 && this.waiting[0]!.done) this.waiting.shift()!.run()
    }
  }

  /** Callbacks registered whose turn has not come (their own work, or an earlier one's, not done). */
  get pending(): number {
    return this.waiting.length
  }
}
