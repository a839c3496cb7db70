import { Schema } from "effect"
import { Condition } from "./Condition.ts"
import { Duration } from "./Duration.ts"

/** journeys/program.yaml: the membership program (journeys.md, "program.yaml"). */

export const TierLevel = Schema.Struct({
  id: Schema.String.pipe(Schema.pattern(/^[a-z0-9-]+$/)),
  name: Schema.String,
  minSpend: Schema.Number.pipe(Schema.nonNegative()),
  keepSpend: Schema.optional(Schema.Number.pipe(Schema.nonNegative()))
})
export type TierLevel = typeof TierLevel.Type

export const Tiers = Schema.Struct({
  source: Schema.Literal("computed", "external"),
  basis: Schema.optionalWith(Schema.Literal("spend365d", "lifetimeSpend"), { default: () => "spend365d" as const }),
  levels: Schema.Array(TierLevel).pipe(Schema.minItems(1)),
  review: Schema.optionalWith(Schema.Literal("yearly", "never"), { default: () => "yearly" as const })
})
export type Tiers = typeof Tiers.Type

const CutPoints = Schema.Tuple(Schema.Number, Schema.Number, Schema.Number, Schema.Number)

export const Rfm = Schema.Struct({
  window: Schema.optionalWith(Duration, { default: () => 365 * 86_400_000 }),
  scores: Schema.Literal("quintiles", "fixed"),
  recompute: Schema.optionalWith(Duration, { default: () => 3_600_000 }),
  fixed: Schema.optional(
    Schema.Struct({ recencyDays: CutPoints, frequency: CutPoints, monetary: CutPoints })
  )
})
export type Rfm = typeof Rfm.Type

export const TagRule = Schema.Struct({
  id: Schema.String.pipe(Schema.pattern(/^[a-z0-9-]+$/)),
  description: Schema.optional(Schema.String),
  when: Condition
})
export type TagRule = typeof TagRule.Type

export const Channel = Schema.Literal("sms", "email", "wechat")
export type Channel = typeof Channel.Type

const ClockTime = Schema.String.pipe(Schema.pattern(/^([01]\d|2[0-3]):[0-5]\d$/))
const Rate = Schema.String.pipe(Schema.pattern(/^\d+\/(s|m|h)$/))

export const Policies = Schema.Struct({
  globalControl: Schema.optionalWith(Schema.Number.pipe(Schema.between(0, 100)), { default: () => 0 }),
  frequencyCaps: Schema.optionalWith(
    Schema.Array(
      Schema.Struct({
        channel: Schema.Literal("any", "sms", "email", "wechat"),
        max: Schema.Number.pipe(Schema.int(), Schema.positive()),
        per: Duration
      })
    ),
    { default: () => [] }
  ),
  quietHours: Schema.optional(
    Schema.Struct({
      from: ClockTime,
      to: ClockTime,
      channels: Schema.Array(Channel),
      then: Schema.optionalWith(Schema.Literal("defer", "drop"), { default: () => "defer" as const })
    })
  ),
  rateLimits: Schema.optional(
    Schema.Struct({ sms: Schema.optional(Rate), email: Schema.optional(Rate), wechat: Schema.optional(Rate) })
  )
})
export type Policies = typeof Policies.Type

export const Program = Schema.Struct({
  $schema: Schema.optional(Schema.String),
  currency: Schema.String.pipe(Schema.pattern(/^[A-Z]{3}$/)),
  timezone: Schema.String,
  locale: Schema.optionalWith(Schema.String, { default: () => "zh-CN" }),
  tiers: Tiers,
  rfm: Rfm,
  tags: Schema.optionalWith(Schema.Array(TagRule), { default: () => [] }),
  policies: Schema.optionalWith(Policies, { default: () => ({ globalControl: 0, frequencyCaps: [] }) })
}).annotations({ identifier: "Program" })
export type Program = typeof Program.Type
export type ProgramEncoded = typeof Program.Encoded
