import { DEFAULT_VARIANT, type Journey, type SplitArm } from "../../../schemas/Journey.ts"
import { BUCKETS, bucketOf } from "./Ids.ts"

/** The variant of the journey's holdout: enrolled, tracked for the goal, sent nothing. */
export const CONTROL = "control"

const GLOBAL_CONTROL_SALT = "memberflow:global-control"

/**
 * A member's variant: bucket = hash32(journey id, member id) mod 10,000. Buckets below
 * control × 100 are `control`; the rest are shared out to the variants in file order by weight.
 * `winner` (decided from lift elsewhere) gives every non-control member that variant.
 * No experiment: DEFAULT_VARIANT.
 */
export const variantOf = (journey: Journey, memberId: string, winner?: string): string => {
  const experiment = journey.experiment
  if (experiment === undefined) return DEFAULT_VARIANT
  const bucket = bucketOf(journey.id, memberId)
  const controlBuckets = experiment.control * (BUCKETS / 100)
  if (bucket < controlBuckets) return CONTROL
  if (winner !== undefined) return winner
  const total = experiment.variants.reduce((sum, v) => sum + v.weight, 0)
  // the position of the bucket inside the non-control range, as a fraction of the total weight
  const position = ((bucket - controlBuckets) / (BUCKETS - controlBuckets)) * total
  let cumulative = 0
  for (const variant of experiment.variants) {
    cumulative += variant.weight
    if (variant.weight > 0 && position < cumulative) return variant.id
  }
  // rounding at the very top: the last variant with weight
  return [...experiment.variants].reverse().find((v) => v.weight > 0)?.id ?? experiment.variants[0]?.id ?? DEFAULT_VARIANT
}

// A member's global-control bucket depends on the member id alone and is asked on every entry
// considered: kept for the members seen lately (a plain bound, cleared when reached).
const GLOBAL_BUCKETS_KEPT = 100_000
const globalBuckets = new Map<string, number>()

/** In the program's global control group: hash32(fixed salt, member id) mod 10,000 < percent × 100. */
export const inGlobalControl = (memberId: string, percent: number): boolean => {
  let bucket = globalBuckets.get(memberId)
  if (bucket === undefined) {
    bucket = bucketOf(GLOBAL_CONTROL_SALT, memberId)
    if (globalBuckets.size >= GLOBAL_BUCKETS_KEPT) globalBuckets.clear()
    globalBuckets.set(memberId, bucket)
  }
  return bucket < percent * (BUCKETS / 100)
}

/** A `split` step's arm: sticky per member (hash of journey id, step id and member id). */
export const splitArmOf = (journeyId: string, stepId: string, memberId: string, arms: ReadonlyArray<SplitArm>): SplitArm | undefined => {
  const total = arms.reduce((sum, a) => sum + a.weight, 0)
  const position = (bucketOf(journeyId, stepId, memberId) / BUCKETS) * total
  let cumulative = 0
  for (const arm of arms) {
    cumulative += arm.weight
    if (position < cumulative) return arm
  }
  return arms[arms.length - 1]
}
