/**
 * Which partition's checkpoint to start between two batches, if any (engine/Ingest.ts).
 *
 * One checkpoint is in flight at a time. Each already keeps 256 compare-and-sets in flight, as many
 * as NATS KV takes at full speed; several at once added no speed, only a queue on the server that
 * the batches' own publishes waited behind. That was the stall of a second or more after a pass
 * over every member, when none of its partitions was checkpointed while it was under way and at its
 * end all of them came due together (BENCHMARKS.md). A partition with a pass under way is
 * checkpointed like any other now; its position stays before the pass's marker (engine/Ingest.ts,
 * `committable`). The partition waiting longest goes first.
 */

export interface CheckpointCandidate {
  readonly partition: number
  /** A checkpoint of it is being written. */
  readonly flushing: boolean
  /** It is being handed over (the hand-over writes its own). */
  readonly releasing: boolean
  /** States changed since its last checkpoint. */
  readonly dirty: number
  /** Its position would move (events applied past it, and no pass under way holds it), with no state to write. */
  readonly behind: boolean
  /** When its current checkpoint interval began (its phase). */
  readonly lastCheckpoint: number
}

export interface CheckpointRule {
  readonly intervalMs: number
  /** Changed states of one partition that make its checkpoint due before the interval is over. */
  readonly dirtyPerPartition: number
  /**
   * The least time between two checkpoints' starts, unless the one to start has `dirtyPerPartition`
   * states waiting: half the steady cadence (interval ÷ partitions). Partitions that fell due together
   * — held while a pass was listing their members — catch up at twice the cadence instead of back
   * to back: sixteen in a row took 20–28% of the thread for seconds after each sweep in
   * bench:ingest, and the events of those seconds went late (BENCHMARKS.md).
   */
  readonly minGapMs: number
}

/**
 * The partition to checkpoint now, or null: none while one is in flight or within `minGapMs` of the
 * last start (unless pressed), else the due one waiting longest.
 */
export const nextCheckpoint = (candidates: Iterable<CheckpointCandidate>, now: number, rule: CheckpointRule, lastStart = Number.NEGATIVE_INFINITY): CheckpointCandidate | null => {
  // Within the gap only a partition with enough states waiting may go.
  const pressedOnly = now - lastStart < rule.minGapMs
  let next: CheckpointCandidate | null = null
  for (const candidate of candidates) {
    if (candidate.flushing) return null
    if (candidate.releasing) continue
    if (candidate.dirty === 0 && !candidate.behind) continue
    const pressed = candidate.dirty >= rule.dirtyPerPartition
    if (!pressed && (pressedOnly || now - candidate.lastCheckpoint < rule.intervalMs)) continue
    if (next === null || candidate.lastCheckpoint < next.lastCheckpoint) next = candidate
  }
  return next
}

/**
 * The start of the partition's interval once its checkpoint starts: moved on by whole intervals, so
 * each partition keeps its phase through quiet spells (otherwise, after one, the partitions'
 * checkpoints would all fall due at once).
 */
export const phaseAfter = (lastCheckpoint: number, now: number, intervalMs: number): number =>
  now - lastCheckpoint >= intervalMs ? lastCheckpoint + intervalMs * Math.floor((now - lastCheckpoint) / intervalMs) : lastCheckpoint
