import { Schema } from "effect"
import { Duration } from "./Duration.ts"

/**
 * The condition language shared by program.yaml tag rules and journeys (journeys.md, "Conditions").
 */
export const Scalar = Schema.Union(Schema.String, Schema.Number, Schema.Boolean)
export type Scalar = typeof Scalar.Type

export const ComparisonOps = ["eq", "ne", "in", "notIn", "gt", "gte", "lt", "lte", "exists", "contains"] as const
export type ComparisonOp = (typeof ComparisonOps)[number]

export const AttributeCondition = Schema.Struct({
  attribute: Schema.String,
  eq: Schema.optional(Scalar),
  ne: Schema.optional(Scalar),
  in: Schema.optional(Schema.Array(Scalar)),
  notIn: Schema.optional(Schema.Array(Scalar)),
  gt: Schema.optional(Schema.Union(Schema.Number, Schema.String)),
  gte: Schema.optional(Schema.Union(Schema.Number, Schema.String)),
  lt: Schema.optional(Schema.Union(Schema.Number, Schema.String)),
  lte: Schema.optional(Schema.Union(Schema.Number, Schema.String)),
  exists: Schema.optional(Schema.Boolean),
  contains: Schema.optional(Scalar)
})
export type AttributeCondition = typeof AttributeCondition.Type

export const TagCondition = Schema.Struct({ tag: Schema.String })
export const ConsentCondition = Schema.Struct({
  consent: Schema.Literal("sms", "email", "wechat", "any")
})

export const CountCondition = Schema.Struct({
  eq: Schema.optional(Schema.Number),
  ne: Schema.optional(Schema.Number),
  gt: Schema.optional(Schema.Number),
  gte: Schema.optional(Schema.Number),
  lt: Schema.optional(Schema.Number),
  lte: Schema.optional(Schema.Number)
})
export type CountCondition = typeof CountCondition.Type

export const EventCondition = Schema.Struct({
  event: Schema.Union(Schema.String, Schema.Array(Schema.String)),
  where: Schema.optional(Schema.Record({ key: Schema.String, value: Schema.Unknown })),
  count: Schema.optional(CountCondition),
  within: Schema.optional(Duration),
  since: Schema.optional(Schema.Literal("entry"))
})
export type EventCondition = typeof EventCondition.Type

export type Condition =
  | { readonly all: ReadonlyArray<Condition> }
  | { readonly any: ReadonlyArray<Condition> }
  | { readonly not: Condition }
  | AttributeCondition
  | typeof TagCondition.Type
  | typeof ConsentCondition.Type
  | EventCondition

export type ConditionEncoded =
  | { readonly all: ReadonlyArray<ConditionEncoded> }
  | { readonly any: ReadonlyArray<ConditionEncoded> }
  | { readonly not: ConditionEncoded }
  | typeof AttributeCondition.Encoded
  | typeof TagCondition.Encoded
  | typeof ConsentCondition.Encoded
  | typeof EventCondition.Encoded

export const Condition: Schema.Schema<Condition, ConditionEncoded> = Schema.Union(
  Schema.Struct({ all: Schema.Array(Schema.suspend((): Schema.Schema<Condition, ConditionEncoded> => Condition)) }),
  Schema.Struct({ any: Schema.Array(Schema.suspend((): Schema.Schema<Condition, ConditionEncoded> => Condition)) }),
  Schema.Struct({ not: Schema.suspend((): Schema.Schema<Condition, ConditionEncoded> => Condition) }),
  AttributeCondition,
  TagCondition,
  ConsentCondition,
  EventCondition
).annotations({ identifier: "Condition" })
