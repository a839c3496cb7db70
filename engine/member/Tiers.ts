import type { Program, TierLevel } from "../../schemas/Program.ts"
import { localDateTime, localInstant } from "./LocalTime.ts"

/**
 * Tier rules over plain numbers (journeys.md, program.yaml `tiers`): upgrades happen at once,
 * downgrades only at the yearly review on the tier anniversary.
 */

export const YEAR_MS = 365 * 86_400_000

/** `levels` are ascending; -1 when the id is not (or no longer) in the program. */
export const levelIndex = (program: Program, id: string): number => {
  const levels = program.tiers.levels
  for (let i = 0; i < levels.length; i++) if (levels[i]!.id === id) return i
  return -1
}

export const startingLevel = (program: Program): TierLevel => program.tiers.levels[0] ?? { id: "none", name: "", minSpend: 0 }

/** The highest level whose minSpend ≤ basis; the lowest level when none qualifies. */
export const qualifyingIndex = (program: Program, basis: number): number => {
  const levels = program.tiers.levels
  let best = 0
  for (let i = 0; i < levels.length; i++) if (levels[i]!.minSpend <= basis) best = i
  return best
}

/** The level a purchase lifts the member to, or null when it does not lift them. */
export const upgradeTo = (program: Program, currentId: string, basis: number): TierLevel | null => {
  const target = qualifyingIndex(program, basis)
  return target > levelIndex(program, currentId) ? (program.tiers.levels[target] ?? null) : null
}

/**
 * The outcome of a yearly review: null keeps the current level (basis ≥ its keepSpend, or its
 * minSpend when it has none); otherwise the highest level the basis reaches, never above current.
 */
export const reviewTo = (program: Program, currentId: string, basis: number): TierLevel | null => {
  const current = levelIndex(program, currentId)
  const level = program.tiers.levels[current]
  if (level !== undefined && basis >= (level.keepSpend ?? level.minSpend)) return null
  const target = current < 0 ? qualifyingIndex(program, basis) : Math.min(current, qualifyingIndex(program, basis))
  return target === current ? null : (program.tiers.levels[target] ?? null)
}

export const nextLevel = (program: Program, currentId: string): TierLevel | null => {
  const current = levelIndex(program, currentId)
  return current < 0 ? null : (program.tiers.levels[current + 1] ?? null)
}

/** Spend still needed to reach the next level (≥ 0); null at the top. */
export const spendToNext = (program: Program, currentId: string, basis: number): number | null => {
  const next = nextLevel(program, currentId)
  return next === null ? null : Math.max(0, Math.round((next.minSpend - basis) * 100) / 100)
}

/**
 * The first anniversary of `since` (its member-local month-day, at local midnight) strictly after
 * `after`. 29 February falls on 28 February in other years.
 */
export const nextAnniversary = (since: number, after: number, timeZone: string): number => {
  const start = localDateTime(since, timeZone)
  const afterYear = localDateTime(after, timeZone).year
  for (let year = Math.max(start.year + 1, afterYear - 1); ; year++) {
    const t = localInstant(year, start.month, start.day, timeZone)
    if (t > after) return t
  }
}
