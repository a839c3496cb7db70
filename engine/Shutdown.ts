import { Clock, Effect, Fiber } from "effect"

/**
 * One drain budget for the whole engine (operations.md: SIGTERM drains, then exits; issue 6: within
 * 10 s). Finalizers run one after another, so each waits for its work in flight only as long as
 * the budget that the first one to start left: their waits never add up past it.
 */
const BUDGET_MS = 7_000
let startedAt: number | null = null

/** Milliseconds left of the drain budget, counted from the first finalizer that asks. */
export const drainTimeLeft: Effect.Effect<number> = Effect.map(Clock.currentTimeMillis, (now) => {
  if (startedAt === null) startedAt = now
  return Math.max(0, startedAt + BUDGET_MS - now)
})

/**
 * Waits for a loop's work in flight to finish, at most for what is left of the drain budget.
 * Finalizers run uninterruptibly, and `Effect.timeout` cannot interrupt an uninterruptible wait: it
 * would wait for the loop however long it took. The wait itself is made interruptible so the
 * budget holds.
 */
export const awaitDrained = <A, E>(fiber: Fiber.Fiber<A, E>): Effect.Effect<void> =>
  Effect.flatMap(drainTimeLeft, (left) => Fiber.await(fiber).pipe(Effect.interruptible, Effect.timeout(left), Effect.ignore))

/**
 * Interrupts a loop and waits for it to stop, at most for what is left of the drain budget: a loop
 * inside an uninterruptible region (a batch or a hand-over finishing) would otherwise hold the whole
 * shutdown for as long as that region takes. Succeeds with whether the loop stopped in time.
 */
export const interruptWithin = <A, E>(fiber: Fiber.Fiber<A, E>): Effect.Effect<boolean> =>
  Effect.flatMap(drainTimeLeft, (left) =>
    Fiber.interrupt(fiber).pipe(
      Effect.interruptible,
      Effect.timeout(left),
      Effect.as(true),
      Effect.orElseSucceed(() => false)
    )
  )
