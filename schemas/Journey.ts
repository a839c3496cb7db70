import { ParseResult, Schema } from "effect"
import { Condition } from "./Condition.ts"
import { Duration } from "./Duration.ts"
import { Channel } from "./Program.ts"
import { SourceIssue, formatIssues } from "./ProgramErrors.ts"

/**
 * A journey file, `journeys/<id>.yaml` (journeys.md, "A journey file"). Rules a schema cannot say
 * (ids unique, targets exist, weights sum, templates exist…) are checked in engine/journeys/.
 *
 * Places where exactly one of several keys is allowed (a trigger, a step's action) are decoded as a
 * mapping of optional keys plus a check, so a typo'd key gets a "did you mean" over all of them and
 * two actions in one step get one plain sentence; the decoded type is still a discriminated union.
 */

const Id = Schema.String.pipe(Schema.pattern(/^[a-z0-9-]+$/, { description: "lowercase letters, digits and -" }))
export const StepId = Schema.String.pipe(
  Schema.pattern(/^[A-Za-z0-9_-]+$/, { description: "letters, digits, _ and -" })
)
export const TemplateName = Schema.String.pipe(
  Schema.pattern(/^[A-Za-z0-9_-]+$/, { description: "a template file name without extension: letters, digits, _ and -" })
)
export const ClockTime = Schema.String.pipe(Schema.pattern(/^([01]\d|2[0-3]):[0-5]\d$/, { description: 'a time "HH:MM"' }))
const Where = Schema.Record({ key: Schema.String, value: Schema.Unknown })
const Percent = Schema.Number.pipe(Schema.between(0, 100, { description: "a percentage from 0 to 100" }))

/** Present keys among `keys`: exactly one must be. */
const presentKeys = (value: object, keys: ReadonlyArray<string>): Array<string> =>
  keys.filter((key) => Object.entries(value).some(([k, v]) => k === key && v !== undefined))

const exactlyOne =
  (what: string, keys: ReadonlyArray<string>) =>
  (value: object): true | string => {
    const present = presentKeys(value, keys)
    if (present.length === 1) return true
    if (present.length === 0) return `${what} needs one of ${keys.join(", ")}`
    return `${what} can have only one of ${keys.join(", ")}, got ${present.join(" and ")}`
  }

/**
 * A mapping of optional keys, one of which must be present, decoded as the union of one-key shapes:
 * the file side reports typos over every key, the decoded side narrows with `in`.
 */
const oneKeyOf = <F, I, U extends F, UI>(file: Schema.Schema<F, I>, union: Schema.Schema<U, UI>): Schema.Schema<U, I> =>
  Schema.transformOrFail(file, Schema.typeSchema(union), {
    strict: true,
    // the file side has already checked every field and that exactly one key is present
    decode: (value) => ParseResult.decodeUnknown(Schema.typeSchema(union))(value),
    encode: (value) => ParseResult.succeed(value)
  })

/** For editors: exactly one of the keys (two present match two branches, which oneOf refuses). */
const oneOfKeys = (keys: ReadonlyArray<string>) => ({ allOf: [{ oneOf: keys.map((key) => ({ required: [key] })) }] })

// ---------------------------------------------------------------------------------------------- trigger

export const DateAttribute = Schema.Literal("birthday", "tierSince", "points.expiresAt", "registeredAt")
export type DateAttribute = typeof DateAttribute.Type

export const EventTrigger = Schema.Struct({ type: Schema.String, where: Schema.optional(Where) })
export const SegmentTrigger = Schema.Struct({ enters: Condition })
export const DateTrigger = Schema.Struct({
  attribute: DateAttribute,
  offsetDays: Schema.optionalWith(Schema.Number.pipe(Schema.int()), { default: () => 0 }),
  at: Schema.optionalWith(ClockTime, { default: () => "09:00" })
})
export const InactivityTrigger = Schema.Struct({ event: Schema.String, for: Duration })
export const ScheduleTrigger = Schema.Struct({
  cron: Schema.String.annotations({ description: 'five cron fields: minute hour day-of-month month day-of-week, e.g. "0 10 * * 1"' }),
  timezone: Schema.optional(Schema.String)
})

export const TRIGGER_KINDS = ["event", "segment", "date", "inactivity", "schedule"] as const

const TriggerKind = Schema.Union(
  Schema.Struct({ event: EventTrigger }),
  Schema.Struct({ segment: SegmentTrigger }),
  Schema.Struct({ date: DateTrigger }),
  Schema.Struct({ inactivity: InactivityTrigger }),
  Schema.Struct({ schedule: ScheduleTrigger })
)
/** Narrow with `"date" in trigger` etc. */
export type Trigger = typeof TriggerKind.Type

const TriggerFile = Schema.Struct({
  event: Schema.optional(EventTrigger),
  segment: Schema.optional(SegmentTrigger),
  date: Schema.optional(DateTrigger),
  inactivity: Schema.optional(InactivityTrigger),
  schedule: Schema.optional(ScheduleTrigger)
}).pipe(
  Schema.filter(exactlyOne("a trigger", TRIGGER_KINDS)),
  Schema.annotations({ identifier: "Trigger", jsonSchema: oneOfKeys(TRIGGER_KINDS) })
)

export const Trigger = oneKeyOf(TriggerFile, TriggerKind)

// ---------------------------------------------------------------------------------------------- steps

/** Per experiment variant: send another template instead (same channels). */
export const VariantOverride = Schema.Struct({ template: TemplateName })

export const Send = Schema.Struct({
  channel: Channel,
  template: TemplateName,
  fallback: Schema.optionalWith(Schema.Array(Channel), { default: () => [] }),
  variant: Schema.optional(Schema.Record({ key: Schema.String, value: VariantOverride }))
})
export type Send = typeof Send.Type

export const WaitUntil = Schema.Struct({ until: ClockTime })
export const WaitForEvent = Schema.Struct({
  event: Schema.String,
  where: Schema.optional(Where),
  timeout: Duration,
  onEvent: StepId,
  onTimeout: StepId
})
/** `3d` (milliseconds once decoded), `{until: "10:00"}` or waiting for an event. */
export const Wait = Schema.Union(Duration, WaitUntil, WaitForEvent).annotations({ identifier: "Wait" })
export type Wait = typeof Wait.Type

export const BranchArm = Schema.Union(
  Schema.Struct({ when: Condition, goto: StepId }),
  Schema.Struct({ else: Schema.Literal(true), goto: StepId })
)
export type BranchArm = typeof BranchArm.Type

export const SplitArm = Schema.Struct({ weight: Schema.Number.pipe(Schema.positive()), goto: StepId })
export type SplitArm = typeof SplitArm.Type

export const TagChange = Schema.Struct({
  add: Schema.optionalWith(Schema.Array(Schema.String), { default: () => [] }),
  remove: Schema.optionalWith(Schema.Array(Schema.String), { default: () => [] })
})

export const Emit = Schema.Struct({ type: Schema.String.pipe(Schema.minLength(1)), properties: Schema.optional(Where) })

export const STEP_ACTIONS = ["send", "wait", "branch", "split", "tag", "emit", "goto", "exit"] as const
export type StepAction = (typeof STEP_ACTIONS)[number]

const base = { id: StepId, when: Schema.optional(Condition) } as const
const StepKind = Schema.Union(
  Schema.Struct({ ...base, send: Send }),
  Schema.Struct({ ...base, wait: Wait }),
  Schema.Struct({ ...base, branch: Schema.Array(BranchArm).pipe(Schema.minItems(1)) }),
  Schema.Struct({ ...base, split: Schema.Array(SplitArm).pipe(Schema.minItems(1)) }),
  Schema.Struct({ ...base, tag: TagChange }),
  Schema.Struct({ ...base, emit: Emit }),
  Schema.Struct({ ...base, goto: StepId }),
  Schema.Struct({ ...base, exit: Schema.Literal(true) })
)
/** `id`, an optional `when` (skip the step when false) and one action: narrow with `"send" in step` etc. */
export type Step = typeof StepKind.Type

const StepFile = Schema.Struct({
  ...base,
  send: Schema.optional(Send),
  wait: Schema.optional(Wait),
  branch: Schema.optional(Schema.Array(BranchArm).pipe(Schema.minItems(1))),
  split: Schema.optional(Schema.Array(SplitArm).pipe(Schema.minItems(1))),
  tag: Schema.optional(TagChange),
  emit: Schema.optional(Emit),
  goto: Schema.optional(StepId),
  exit: Schema.optional(Schema.Literal(true))
}).pipe(
  Schema.filter(exactlyOne("a step", STEP_ACTIONS)),
  Schema.annotations({ identifier: "Step", jsonSchema: oneOfKeys(STEP_ACTIONS) })
)

export const Step = oneKeyOf(StepFile, StepKind)

/** The action a step takes. */
export const actionOf = (step: Step): StepAction => {
  const [action] = presentKeys(step, STEP_ACTIONS)
  return STEP_ACTIONS.find((a) => a === action) ?? "exit"
}

// ---------------------------------------------------------------------------------------------- journey

export const Reentry = Schema.Union(
  Schema.Literal("never", "afterExit", "always"),
  Schema.Struct({ after: Duration })
).annotations({ identifier: "Reentry" })
export type Reentry = typeof Reentry.Type

export const ExitEvent = Schema.Struct({ event: Schema.String, where: Schema.optional(Where) })
export const Goal = Schema.Struct({ event: Schema.String, where: Schema.optional(Where), within: Duration })
export type Goal = typeof Goal.Type

/**
 * `control` is the % of all entrants held out (enrolled, tracked for the goal, sent nothing); the
 * variants' weights split the rest and must sum to 100.
 */
export const Experiment = Schema.Struct({
  control: Schema.optionalWith(Percent, { default: () => 0 }),
  variants: Schema.Array(Schema.Struct({ id: Id, weight: Schema.Number.pipe(Schema.nonNegative()) })).pipe(Schema.minItems(1)),
  winner: Schema.optional(
    Schema.Struct({ after: Duration, minPerVariant: Schema.optionalWith(Schema.Number.pipe(Schema.int(), Schema.positive()), { default: () => 500 }) })
  )
})
export type Experiment = typeof Experiment.Type

export const Journey = Schema.Struct({
  $schema: Schema.optional(Schema.String),
  id: Id,
  name: Schema.String,
  description: Schema.optional(Schema.String),
  status: Schema.Literal("active", "paused", "draft"),
  category: Schema.Literal("marketing", "transactional"),
  trigger: Trigger,
  audience: Schema.optional(Condition),
  reentry: Schema.optionalWith(Reentry, { default: () => "never" as const }),
  exit: Schema.optionalWith(Schema.Array(ExitEvent), { default: () => [] }),
  goal: Schema.optional(Goal),
  experiment: Schema.optional(Experiment),
  steps: Schema.Array(Step).pipe(Schema.minItems(1))
}).annotations({ identifier: "Journey" })
export type Journey = typeof Journey.Type
export type JourneyEncoded = typeof Journey.Encoded

/** The variant a member gets when the journey runs no experiment (the `variant` template variable). */
export const DEFAULT_VARIANT = "default"

/** The journeys folder (program.yaml, journeys, templates) could not be read or failed validation. */
export class JourneysInvalid extends Schema.TaggedError<JourneysInvalid>()("JourneysInvalid", {
  issues: Schema.Array(SourceIssue)
}) {
  override get message(): string {
    return formatIssues(this.issues)
  }
}
