import type { Condition, CountCondition } from "../../schemas/Condition.ts"
import type { Experiment, Goal, Journey, Reentry, Trigger, Wait } from "../../schemas/Journey.ts"

/**
 * A journey's parts in short words for the report (plain text: the caller escapes). They follow the
 * YAML's own vocabulary so a marketer recognises their file: `tier in gold, diamond`, `wait 3d`.
 */

// weeks are left out: "14d" reads as a marketer wrote it more often than "2w"
const UNITS: ReadonlyArray<readonly [string, number]> = [["d", 86_400_000], ["h", 3_600_000], ["m", 60_000], ["s", 1_000]]

/** Milliseconds back in the largest whole unit up to days: 259200000 → "3d" (the YAML said 3d or 72h). */
export const durationText = (ms: number): string => {
  for (const [unit, size] of UNITS) if (ms >= size && ms % size === 0) return `${ms / size}${unit}`
  return `${Math.round(ms / 1000)}s`
}

const scalar = (value: unknown): string => (typeof value === "string" ? value : JSON.stringify(value) ?? String(value))

const whereText = (where: Readonly<Record<string, unknown>> | undefined): string =>
  where === undefined || Object.keys(where).length === 0
    ? ""
    : ` where ${Object.entries(where).map(([k, v]) => `${k} ${v !== null && typeof v === "object" && !Array.isArray(v) ? opsText(v as Record<string, unknown>) : `= ${scalar(v)}`}`).join(", ")}`

const OP_WORDS: Record<string, string> = { eq: "=", ne: "≠", gt: ">", gte: "≥", lt: "<", lte: "≤", in: "in", notIn: "not in", contains: "contains", exists: "exists" }

const opsText = (ops: Readonly<Record<string, unknown>>): string =>
  Object.entries(ops)
    .filter(([op, v]) => op !== "attribute" && v !== undefined)
    .map(([op, v]) =>
      op === "exists" ? (v === true ? "exists" : "is missing") : `${OP_WORDS[op] ?? op} ${Array.isArray(v) ? v.map(scalar).join(", ") : scalar(v)}`
    )
    .join(" and ")

const countText = (count: CountCondition | undefined): string => (count === undefined ? "" : ` count ${opsText(count)}`)

/** `{all: [..]}` as `a and b`, nested groups in parentheses. */
export const conditionText = (condition: Condition): string => {
  const group = (c: Condition) => ("all" in c || "any" in c ? `(${conditionText(c)})` : conditionText(c))
  if ("all" in condition) return condition.all.map(group).join(" and ")
  if ("any" in condition) return condition.any.map(group).join(" or ")
  if ("not" in condition) return `not ${group(condition.not)}`
  if ("attribute" in condition) return `${condition.attribute} ${opsText(condition)}`
  if ("tag" in condition) return `tag ${condition.tag}`
  if ("consent" in condition) return `consent ${condition.consent}`
  const types = typeof condition.event === "string" ? condition.event : condition.event.join(" or ")
  const window = condition.since === "entry" ? " since entry" : condition.within === undefined ? "" : ` within ${durationText(condition.within)}`
  return `${types}${whereText(condition.where)}${countText(condition.count)}${window}`
}

export const triggerText = (trigger: Trigger): string => {
  if ("event" in trigger) return `event ${trigger.event.type}${whereText(trigger.event.where)}`
  if ("segment" in trigger) return `enters segment: ${conditionText(trigger.segment.enters)}`
  if ("date" in trigger) {
    const offset = trigger.date.offsetDays
    const day = offset === 0 ? `on ${trigger.date.attribute}` : `${Math.abs(offset)}d ${offset < 0 ? "before" : "after"} ${trigger.date.attribute}`
    return `date: ${day}, ${trigger.date.at} member-local`
  }
  if ("inactivity" in trigger) return `inactivity: no ${trigger.inactivity.event} for ${durationText(trigger.inactivity.for)}`
  return `schedule: cron ${trigger.schedule.cron}${trigger.schedule.timezone === undefined ? "" : ` (${trigger.schedule.timezone})`}`
}

export const waitText = (wait: Wait): string => {
  if (typeof wait === "number") return `wait ${durationText(wait)}`
  if ("until" in wait) return `wait until ${wait.until} member-local`
  return `wait for ${wait.event}${whereText(wait.where)}, up to ${durationText(wait.timeout)}`
}

export const goalText = (goal: Goal | undefined): string =>
  goal === undefined ? "none (conversion is not measured)" : `${goal.event}${whereText(goal.where)} within ${durationText(goal.within)} of entry`

export const reentryText = (reentry: Reentry): string =>
  typeof reentry === "string"
    ? { never: "never", afterExit: "after the previous entry ended", always: "always" }[reentry]
    : `${durationText(reentry.after)} after the last entry`

export const exitText = (journey: Journey): string =>
  journey.exit.length === 0 ? "—" : journey.exit.map((e) => `${e.event}${whereText(e.where)}`).join("; ")

/** "control 10% · points 45% · gift 45%": each arm's share of all entrants, as planned. */
export const experimentText = (experiment: Experiment | undefined): string => {
  if (experiment === undefined) return "none (every entrant in the default arm)"
  const total = experiment.variants.reduce((sum, v) => sum + v.weight, 0)
  const share = (w: number) => (total > 0 ? (w / total) * (100 - experiment.control) : 0)
  const pct = (n: number) => `${Number(n.toFixed(1))}%`
  const arms = [
    ...(experiment.control > 0 ? [`control ${pct(experiment.control)}`] : []),
    ...experiment.variants.map((v) => `${v.id} ${pct(share(v.weight))}`)
  ]
  const winner = experiment.winner === undefined ? "" : `; winner promoted after ${durationText(experiment.winner.after)} with ≥ ${experiment.winner.minPerVariant} per variant`
  return `${arms.join(" · ")}${winner}`
}
