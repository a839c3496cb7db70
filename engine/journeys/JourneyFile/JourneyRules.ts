import { Either } from "effect"
import type { AttributeCondition, Condition } from "../../../schemas/Condition.ts"
import type { Journey } from "../../../schemas/Journey.ts"
import type { Program } from "../../../schemas/Program.ts"
import type { SourceIssue } from "../../../schemas/ProgramErrors.ts"
import { KNOWN_ATTRIBUTE_PATHS } from "../../program/ProgramFile/ProgramRules.ts"
import type { YamlPath } from "../../program/YamlDocument.ts"
import { closest } from "../../program/YamlDocument/Suggest.ts"
import { checkCron } from "./Cron.ts"
import type { At } from "./StepGraph.ts"

/**
 * The rules of one journey a schema cannot express, other than the step graph and templates:
 * the file name, weights, variants, durations, cron and timezone, and the attribute paths and tier
 * ids its conditions name.
 */

export interface RuleIssues {
  readonly errors: Array<SourceIssue>
  readonly warnings: Array<SourceIssue>
}

export const checkJourneyRules = (journey: Journey, fileId: string, program: Program | undefined, at: At): RuleIssues => {
  const errors: Array<SourceIssue> = []
  const warnings: Array<SourceIssue> = []
  if (journey.id !== fileId) {
    errors.push(at(["id"], `journey id "${journey.id}" must be its file name: rename the file to ${journey.id}.yaml or the id to "${fileId}"`))
  }
  errors.push(...checkTrigger(journey, at), ...checkDurations(journey, at), ...checkExperiment(journey, at), ...checkSteps(journey, at))
  const conditions = new ConditionCheck(program, at, journey.trigger)
  for (const [condition, path, allowEntry] of conditionsOf(journey)) conditions.check(condition, path, allowEntry)
  errors.push(...conditions.errors)
  warnings.push(...conditions.warnings)
  return { errors, warnings }
}

const checkTrigger = (journey: Journey, at: At): Array<SourceIssue> => {
  const { trigger } = journey
  if ("schedule" in trigger) {
    const issues: Array<SourceIssue> = []
    const cron = checkCron(trigger.schedule.cron)
    if (Either.isLeft(cron)) issues.push(at(["trigger", "schedule", "cron"], cron.left))
    const zone = trigger.schedule.timezone
    if (zone !== undefined && !isTimezone(zone)) {
      const hint = closest(zone, Intl.supportedValuesOf("timeZone"))
      issues.push(at(["trigger", "schedule", "timezone"], `unknown timezone "${zone}": expected an IANA name${hint === undefined ? " such as Asia/Shanghai" : ` (did you mean "${hint}"?)`}`))
    }
    return issues
  }
  if ("date" in trigger && Math.abs(trigger.date.offsetDays) > 365) {
    return [at(["trigger", "date", "offsetDays"], `offsetDays ${trigger.date.offsetDays} is more than a year: the date comes round every year`)]
  }
  return []
}

const isTimezone = (zone: string): boolean => Either.isRight(Either.try(() => new Intl.DateTimeFormat("en-US", { timeZone: zone })))

const checkDurations = (journey: Journey, at: At): Array<SourceIssue> => {
  const positive: Array<readonly [YamlPath, number | undefined]> = [
    [["goal", "within"], journey.goal?.within],
    [["reentry", "after"], typeof journey.reentry === "object" ? journey.reentry.after : undefined],
    [["experiment", "winner", "after"], journey.experiment?.winner?.after],
    [["trigger", "inactivity", "for"], "inactivity" in journey.trigger ? journey.trigger.inactivity.for : undefined]
  ]
  journey.steps.forEach((step, i) => {
    if (!("wait" in step)) return
    if (typeof step.wait === "number") positive.push([["steps", i, "wait"], step.wait])
    else if ("event" in step.wait) positive.push([["steps", i, "wait", "timeout"], step.wait.timeout])
  })
  return positive.flatMap(([path, ms]) => (ms !== undefined && ms <= 0 ? [at(path, "a duration here must be longer than 0")] : []))
}

const checkExperiment = (journey: Journey, at: At): Array<SourceIssue> => {
  const { experiment } = journey
  if (experiment === undefined) return []
  const issues: Array<SourceIssue> = []
  const total = experiment.variants.reduce((sum, v) => sum + v.weight, 0)
  if (Math.abs(total - 100) > 1e-9) {
    issues.push(
      at(["experiment", "variants"], `variant weights sum to ${total}, not 100 (they split the members outside the ${experiment.control}% control group)`, "key")
    )
  }
  if (experiment.control >= 100) issues.push(at(["experiment", "control"], "a control of 100% would message nobody"))
  issues.push(...duplicates(experiment.variants.map((v) => v.id), (i) => ["experiment", "variants", i, "id"], "variant id", at))
  return issues
}

const checkSteps = (journey: Journey, at: At): Array<SourceIssue> => {
  const variants = journey.experiment?.variants.map((v) => v.id) ?? []
  const issues: Array<SourceIssue> = []
  journey.steps.forEach((step, i) => {
    if ("split" in step) {
      const total = step.split.reduce((sum, arm) => sum + arm.weight, 0)
      if (Math.abs(total - 100) > 1e-9) issues.push(at(["steps", i, "split"], `split weights sum to ${total}, not 100`, "key"))
    }
    if ("branch" in step) {
      const elses = step.branch.flatMap((arm, k) => ("else" in arm ? [k] : []))
      for (const k of elses) {
        if (k !== step.branch.length - 1) issues.push(at(["steps", i, "branch", k, "else"], "else must be the last arm of a branch: arms after it are never tried", "key"))
      }
    }
    if ("send" in step) {
      const { send } = step
      send.fallback.forEach((channel, k) => {
        if (channel === send.channel || send.fallback.indexOf(channel) < k) {
          issues.push(at(["steps", i, "send", "fallback", k], `fallback channel ${channel} is already tried before`))
        }
      })
      for (const variant of Object.keys(send.variant ?? {})) {
        if (variants.includes(variant)) continue
        const hint = closest(variant, variants)
        const why =
          variants.length === 0
            ? "this journey has no experiment"
            : hint === undefined ? `variants: ${variants.join(", ")}` : `did you mean "${hint}"?`
        issues.push(at(["steps", i, "send", "variant", variant], `unknown variant "${variant}" (${why})`, "key"))
      }
    }
  })
  return issues
}

/** Every condition in the journey, with its path and whether `since: entry` means something there. */
const conditionsOf = (journey: Journey): Array<readonly [Condition, YamlPath, boolean]> => {
  const found: Array<readonly [Condition, YamlPath, boolean]> = []
  if ("segment" in journey.trigger) found.push([journey.trigger.segment.enters, ["trigger", "segment", "enters"], false])
  if (journey.audience !== undefined) found.push([journey.audience, ["audience"], false])
  journey.steps.forEach((step, i) => {
    if (step.when !== undefined) found.push([step.when, ["steps", i, "when"], true])
    if ("branch" in step) {
      step.branch.forEach((arm, k) => {
        if ("when" in arm) found.push([arm.when, ["steps", i, "branch", k, "when"], true])
      })
    }
  })
  return found
}

/** Our own namespaces: a path inside them that the engine does not keep is a typo. */
const RESERVED_PREFIXES = ["rfm.", "purchase.", "tier.", "points."]

class ConditionCheck {
  readonly errors: Array<SourceIssue> = []
  readonly warnings: Array<SourceIssue> = []
  constructor(
    private readonly program: Program | undefined,
    private readonly at: At,
    private readonly trigger: Journey["trigger"]
  ) {}

  check(condition: Condition, path: YamlPath, allowEntry: boolean): void {
    if ("all" in condition) condition.all.forEach((c, i) => this.check(c, [...path, "all", i], allowEntry))
    else if ("any" in condition) condition.any.forEach((c, i) => this.check(c, [...path, "any", i], allowEntry))
    else if ("not" in condition) this.check(condition.not, [...path, "not"], allowEntry)
    else if ("attribute" in condition) this.attribute(condition, path)
    else if ("event" in condition && condition.since === "entry" && !allowEntry) {
      this.errors.push(this.at([...path, "since"], "since: entry counts events after the member entered; the trigger and audience are decided before that"))
    }
  }

  private attribute(condition: AttributeCondition, path: YamlPath): void {
    const { attribute } = condition
    if (attribute.startsWith("event.")) {
      if (!("event" in this.trigger)) {
        this.warnings.push(this.at([...path, "attribute"], `${attribute} reads the triggering event, but this journey is not triggered by an event`))
      }
      return
    }
    if (RESERVED_PREFIXES.some((prefix) => attribute.startsWith(prefix)) && !KNOWN_ATTRIBUTE_PATHS.includes(attribute)) {
      const hint = closest(attribute, KNOWN_ATTRIBUTE_PATHS)
      const namespace = attribute.slice(0, attribute.indexOf(".") + 1)
      const known = KNOWN_ATTRIBUTE_PATHS.filter((p) => p.startsWith(namespace)).join(", ")
      this.errors.push(this.at([...path, "attribute"], `unknown attribute "${attribute}"${hint === undefined ? "" : ` (did you mean "${hint}"?)`}; known: ${known}`))
      return
    }
    if ((attribute === "tier" || attribute === "tier.next") && this.program !== undefined) this.tierValues(condition, path)
  }

  /** `tier` compares against tier ids: a typo would silently match nobody. */
  private tierValues(condition: AttributeCondition, path: YamlPath): void {
    const tiers = this.program?.tiers.levels.map((l) => l.id) ?? []
    const operands: Array<readonly [YamlPath, unknown]> = []
    for (const op of ["eq", "ne"] as const) if (condition[op] !== undefined) operands.push([[...path, op], condition[op]])
    for (const op of ["in", "notIn"] as const) condition[op]?.forEach((value, k) => operands.push([[...path, op, k], value]))
    for (const [at, value] of operands) {
      if (typeof value !== "string" || tiers.includes(value)) continue
      const hint = closest(value, tiers)
      this.errors.push(this.at(at, `unknown tier "${value}"${hint === undefined ? `; tiers: ${tiers.join(", ")}` : ` (did you mean "${hint}"?)`}`))
    }
  }
}

const duplicates = (values: ReadonlyArray<string>, pathOf: (i: number) => YamlPath, what: string, at: At): Array<SourceIssue> =>
  values.flatMap((value, i) => {
    const first = values.indexOf(value)
    return first === i ? [] : [at(pathOf(i), `duplicate ${what} "${value}" (first at line ${at(pathOf(first), "").line})`)]
  })
