import type { Program } from "../../schemas/Program.ts"

/** RFM scoring (journeys.md, "RFM"): cut points, scores 1..5 and the R×F segment map. */

export type Cuts = readonly [number, number, number, number]

/**
 * Four ascending cut points per dimension; `score = 1 + #cut points the value exceeds`.
 * `r` is on lastPurchaseAt in epoch ms (higher = more recent), `f` on the purchase count in the
 * window, `m` on the net spend in the window.
 */
export interface RfmCutpoints {
  readonly version: string
  readonly r: Cuts
  readonly f: Cuts
  readonly m: Cuts
}

/** What a member's RFM is computed from: purchases with net > 0 inside the window. */
export interface RfmInputs {
  readonly lastPurchaseAt: number
  readonly frequency: number
  readonly monetary: number
}

export interface RfmScores {
  readonly r: number
  readonly f: number
  readonly m: number
  readonly segment: string
}

/** No purchase in the window. */
export const PROSPECT = "prospect"
/** Has purchases but the population quintiles are not computed yet: not scored, never announced. */
export const UNSCORED = "unscored"

export const score = (value: number, cut: Cuts): number => {
  let exceeded = 0
  for (const c of cut) if (value > c) exceeded++
  return 1 + exceeded
}

/**
 * Reference quintiles: ascending `s`, `c_k = s[ceil(k·n/5) − 1]`. With `score` this ranks ties
 * together at the lowest rank ("ties ranked first"). No values gives all-zero cut points.
 */
export const quintileCutpoints = (values: ReadonlyArray<number>): Cuts => {
  const s = [...values].sort((a, b) => a - b)
  const n = s.length
  const at = (k: number): number => (n === 0 ? 0 : (s[Math.ceil((k * n) / 5) - 1] ?? 0))
  return [at(1), at(2), at(3), at(4)]
}

const DAY = 86_400_000

/**
 * Fixed cut points from program.yaml. R is "5 − #recencyDays the days since the last purchase
 * exceed"; days-since > d ⇔ lastPurchaseAt < now − d·day, so with cut points
 * `now − d·day − 1` (ms are integers) the same `1 + #exceeded` rule on lastPurchaseAt gives that R.
 * They move with `now`, which is why `refresh` rescores.
 */
export const fixedCutpoints = (program: Program, now: number): RfmCutpoints | null => {
  const fixed = program.rfm.fixed
  if (fixed === undefined) return null
  const [d1, d2, d3, d4] = fixed.recencyDays
  const r = (d: number) => now - d * DAY - 1
  return { version: "fixed", r: [r(d4), r(d3), r(d2), r(d1)], f: fixed.frequency, m: fixed.monetary }
}

/** The cut points in force: fixed from the program, or the population quintiles the engine computed. */
export const cutpointsFor = (program: Program, quintiles: RfmCutpoints | null, now: number): RfmCutpoints | null =>
  program.rfm.scores === "fixed" ? fixedCutpoints(program, now) : quintiles

const SEGMENTS: Readonly<Record<number, readonly [string, string, string, string, string]>> = {
  5: ["new_customers", "potential_loyalists", "potential_loyalists", "champions", "champions"],
  4: ["promising", "potential_loyalists", "potential_loyalists", "loyal_customers", "loyal_customers"],
  3: ["about_to_sleep", "about_to_sleep", "need_attention", "loyal_customers", "loyal_customers"],
  2: ["hibernating", "hibernating", "at_risk", "at_risk", "cant_lose_them"],
  1: ["hibernating", "hibernating", "at_risk", "at_risk", "cant_lose_them"]
}

/** The R×F map of journeys.md; scores outside 1..5 (no purchase in the window) are `prospect`. */
export const segmentOf = (r: number, f: number): string => SEGMENTS[r]?.[f - 1] ?? PROSPECT

export const scoreMember = (inputs: RfmInputs | null, cut: RfmCutpoints | null): RfmScores => {
  if (inputs === null) return { r: 0, f: 0, m: 0, segment: PROSPECT }
  if (cut === null) return { r: 0, f: 0, m: 0, segment: UNSCORED }
  const r = score(inputs.lastPurchaseAt, cut.r)
  const f = score(inputs.frequency, cut.f)
  return { r, f, m: score(inputs.monetary, cut.m), segment: segmentOf(r, f) }
}
