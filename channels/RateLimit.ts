import { Clock, Effect, Ref } from "effect"

/**
 * Engine-wide rate limits per channel (program.yaml `policies.rateLimits`, e.g. `sms: 20/s`):
 * sends are spaced evenly at the rate; an excess waits for its slot (backpressure), never dropped.
 * "Engine-wide" is per engine process: with several engines each holds the whole rate.
 */

const UNIT: Record<string, number> = { s: 1_000, m: 60_000, h: 3_600_000 }

/** `20/s` → ms between two sends; null when unlimited or unreadable. */
export const intervalOf = (rate: string | undefined): number | null => {
  const match = rate === undefined ? null : /^(\d+)\/(s|m|h)$/.exec(rate)
  if (match === null) return null
  const count = Number(match[1])
  return count > 0 ? (UNIT[match[2] ?? "s"] ?? 1_000) / count : null
}

export interface RateLimiter {
  /** Waits for the next free slot. Returns the ms waited. */
  readonly take: Effect.Effect<number>
}

export const makeRateLimiter = (interval: number | null): Effect.Effect<RateLimiter> =>
  Effect.map(Ref.make(0), (nextFree) => ({
    take:
      interval === null
        ? Effect.succeed(0)
        : Effect.gen(function* () {
            const now = yield* Clock.currentTimeMillis
            const slot = yield* Ref.modify(nextFree, (free) => {
              const at = Math.max(now, free)
              return [at, at + interval] as const
            })
            const wait = slot - now
            if (wait > 0) yield* Effect.sleep(wait)
            return wait
          })
  }))
