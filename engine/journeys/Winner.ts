import type { Experiment } from "../../schemas/Journey.ts"

/**
 * `experiment.winner` (journeys.md): once the experiment has run `after` and every variant has
 * `minPerVariant` members, new entrants all get the variant that beats control and every other
 * variant significantly; otherwise the split stays. Plain statistics over campaign_lift's counts.
 */

export interface ArmCounts {
  readonly variant: string
  readonly enrolled: number
  readonly converted: number
  /** Holm-adjusted p against control (campaign_lift.p_value) */
  readonly pValue: number | null
  readonly lift: number | null
}

const ALPHA = 0.05

/** erfc by Numerical Recipes' Chebyshev fit (|error| < 1.2e-7): enough for a 0.05 threshold. */
const erfc = (x: number): number => {
  const z = Math.abs(x)
  const t = 1 / (1 + 0.5 * z)
  const r =
    t *
    Math.exp(
      -z * z - 1.26551223 +
        t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))))
    )
  return x >= 0 ? r : 2 - r
}

/** Two-sided p of the pooled two-proportion z-test. */
export const twoProportionP = (x1: number, n1: number, x2: number, n2: number): number | null => {
  if (n1 === 0 || n2 === 0) return null
  const pooled = (x1 + x2) / (n1 + n2)
  if (pooled <= 0 || pooled >= 1) return null
  const z = (x1 / n1 - x2 / n2) / Math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
  return erfc(Math.abs(z) / Math.SQRT2)
}

export type WinnerDecision =
  | { readonly kind: "wait"; readonly reason: string }
  | { readonly kind: "none"; readonly reason: string }
  | { readonly kind: "winner"; readonly variant: string; readonly reason: string }

export const pickWinner = (experiment: Experiment, arms: ReadonlyArray<ArmCounts>, startedAt: number | null, now: number): WinnerDecision => {
  const rule = experiment.winner
  if (rule === undefined) return { kind: "none", reason: "no winner rule" }
  if (startedAt === null || now - startedAt < rule.after) return { kind: "wait", reason: "the experiment has not run long enough" }
  const variants = experiment.variants.filter((v) => v.weight > 0).map((v) => v.id)
  const byId = new Map(arms.map((arm) => [arm.variant, arm]))
  const short = variants.filter((id) => (byId.get(id)?.enrolled ?? 0) < rule.minPerVariant)
  if (short.length > 0) return { kind: "wait", reason: `fewer than ${rule.minPerVariant} members in ${short.join(", ")}` }
  const rate = (id: string) => {
    const arm = byId.get(id)
    return arm === undefined || arm.enrolled === 0 ? 0 : arm.converted / arm.enrolled
  }
  const best = [...variants].sort((a, b) => rate(b) - rate(a))[0]
  const arm = best === undefined ? undefined : byId.get(best)
  if (best === undefined || arm === undefined) return { kind: "none", reason: "no variant" }
  const hasControl = experiment.control > 0
  if (hasControl && !(arm.lift !== null && arm.lift > 0 && arm.pValue !== null && arm.pValue < ALPHA)) {
    return { kind: "wait", reason: `${best} does not beat control significantly yet` }
  }
  for (const other of variants) {
    if (other === best) continue
    const o = byId.get(other)
    const p = o === undefined ? null : twoProportionP(arm.converted, arm.enrolled, o.converted, o.enrolled)
    // Bonferroni across the pairwise comparisons with the other variants
    if (p === null || p >= ALPHA / Math.max(1, variants.length - 1)) return { kind: "wait", reason: `${best} does not beat ${other} significantly yet` }
  }
  if (!hasControl && variants.length < 2) return { kind: "none", reason: "one variant and no control: nothing to compare" }
  return { kind: "winner", variant: best, reason: `${best} converts at ${(rate(best) * 100).toFixed(1)}% and beats ${hasControl ? "control and " : ""}the other variants` }
}
