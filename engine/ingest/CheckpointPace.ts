/**
 * How fast a checkpoint's states go to KV (engine/MemberStore.ts, `flush`).
 *
 * A partition's checkpoint is thousands of states (every member of it, after a sweep scored them
 * all): as fast as NATS took them, their JSON, their compare-and-sets and the answers fell into one
 * second, on a machine whose two cores were already full with live traffic, and that second's
 * events went late (BENCHMARKS.md, 2026-12-07). Paced, state `i` of `count` is started no sooner
 * than `i / count` of `spreadMs` after the pace began: the same work over a few seconds, finished
 * well before the next partition's turn.
 *
 * Waiting writers share one timer, at most one a tick: each tick lets the states that have come due
 * go together, not one timer per state.
 */

export interface Pace {
  /**
   * Before starting state `index`: nothing when it may start now, else a promise to wait on (then
   * ask again: other writers may have taken the turn).
   */
  readonly turn: (index: number) => Promise<void> | undefined
  /** Lets every state go at once from now on: a hand-over or shutdown waits for this checkpoint, the partition was lost, or a backlog began. */
  readonly hurry: () => void
}

/** As fast as NATS takes them: hand-overs, shutdown, a partition pressed by too many changed states, a backlog. */
export const unpaced: Pace = { turn: () => undefined, hurry: () => undefined }

/** The least wait between two ticks, so that a tick lets several states go. */
const TICK_MS = 20

export const paced = (count: number, spreadMs: number, now: () => number = Date.now): Pace => {
  if (count <= 1 || spreadMs <= 0) return unpaced
  const start = now()
  let hurried = false
  let gate: { readonly promise: Promise<void>; readonly open: () => void } | null = null
  const openGate = () => {
    const current = gate
    gate = null
    current?.open()
  }
  return {
    turn: (index) => {
      if (hurried) return undefined
      const wait = start + (index * spreadMs) / count - now()
      if (wait <= 0) return undefined
      if (gate === null) {
        let open!: () => void
        const promise = new Promise<void>((resolve) => (open = resolve))
        const timer = setTimeout(openGate, Math.max(wait, TICK_MS))
        gate = { promise, open: () => { clearTimeout(timer); open() } }
      }
      return gate.promise
    },
    hurry: () => {
      hurried = true
      openGate()
    }
  }
}
