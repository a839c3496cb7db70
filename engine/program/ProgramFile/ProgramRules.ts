import { Either } from "effect"
import type { Condition } from "../../../schemas/Condition.ts"
import type { SourceIssue } from "../../../schemas/ProgramErrors.ts"
import type { Program } from "../../../schemas/Program.ts"
import { type Anchor, issueAt, type YamlPath, type YamlSource } from "../YamlDocument.ts"
import { closest } from "../YamlDocument/Suggest.ts"

/**
 * The rules of a program that a schema cannot express: orderings, uniqueness, attribute paths the
 * engine knows, a real timezone. Each issue points at the node a marketer has to change.
 */

/** Computed attributes the engine keeps per member (journeys.md, "Conditions"). */
export const KNOWN_ATTRIBUTE_PATHS: ReadonlyArray<string> = [
  "rfm.r",
  "rfm.f",
  "rfm.m",
  "rfm.segment",
  "purchase.count",
  "purchase.total",
  "purchase.lastAt",
  "purchase.averageOrder",
  "tier.next",
  "tier.spendToNext",
  "points.balance",
  "points.expiresAt"
]

/** Free profile attributes (tier, city, anything upstream sends) are not checked; these namespaces are ours. */
const RESERVED_PREFIXES = ["rfm.", "purchase.", "tier.", "points."]

export const checkProgram = (program: Program, source: YamlSource): Array<SourceIssue> => {
  const at = (path: YamlPath, message: string, anchor?: Anchor) => issueAt(source, path, message, anchor)
  return [
    ...checkTimezone(program.timezone, at),
    ...checkTiers(program, at),
    ...checkRfm(program, at),
    ...checkTags(program, at),
    ...checkPolicies(program, at)
  ]
}

type At = (path: YamlPath, message: string, anchor?: Anchor) => SourceIssue

const checkTimezone = (timezone: string, at: At): Array<SourceIssue> => {
  const valid = Either.isRight(Either.try(() => new Intl.DateTimeFormat("en-US", { timeZone: timezone })))
  if (valid) return []
  const hint = closest(timezone, Intl.supportedValuesOf("timeZone"))
  const suggestion = hint === undefined ? " such as Asia/Shanghai" : ` (did you mean "${hint}"?)`
  return [at(["timezone"], `unknown timezone "${timezone}": expected an IANA name${suggestion}`)]
}

const checkTiers = (program: Program, at: At): Array<SourceIssue> => {
  const issues: Array<SourceIssue> = []
  const levels = program.tiers.levels
  const first = levels[0]
  if (first !== undefined && first.minSpend !== 0) {
    issues.push(at(["tiers", "levels", 0, "minSpend"], `the first tier "${first.id}" must start at minSpend 0, got ${first.minSpend}`))
  }
  levels.forEach((level, i) => {
    const previous = levels[i - 1]
    if (previous !== undefined && level.minSpend <= previous.minSpend) {
      issues.push(
        at(
          ["tiers", "levels", i, "minSpend"],
          `tier "${level.id}" minSpend ${level.minSpend} must be greater than the tier before it ("${previous.id}", ${previous.minSpend}): list levels in ascending order`
        )
      )
    }
    if (level.keepSpend !== undefined && level.keepSpend > level.minSpend) {
      issues.push(
        at(
          ["tiers", "levels", i, "keepSpend"],
          `tier "${level.id}" keepSpend ${level.keepSpend} is more than its minSpend ${level.minSpend}: staying must not cost more than reaching it`
        )
      )
    }
  })
  issues.push(...duplicates(levels.map((l) => l.id), (i) => ["tiers", "levels", i, "id"], (id) => `duplicate tier id "${id}"`, at))
  return issues
}

const checkRfm = (program: Program, at: At): Array<SourceIssue> => {
  const { rfm } = program
  const issues: Array<SourceIssue> = []
  if (rfm.window <= 0) issues.push(at(["rfm", "window"], "window must be longer than 0"))
  if (rfm.recompute <= 0) issues.push(at(["rfm", "recompute"], "recompute must be longer than 0"))
  if (rfm.fixed === undefined) {
    if (rfm.scores === "fixed") {
      issues.push(at(["rfm"], `missing required key "fixed": scores: fixed needs cut points for recencyDays, frequency and monetary`, "node"))
    }
    return issues
  }
  for (const name of ["recencyDays", "frequency", "monetary"] as const) {
    const cuts = rfm.fixed[name]
    cuts.forEach((cut, i) => {
      const previous = cuts[i - 1]
      if (cut < 0) issues.push(at(["rfm", "fixed", name, i], `${name} cut points cannot be negative, got ${cut}`))
      else if (previous !== undefined && cut <= previous) {
        issues.push(at(["rfm", "fixed", name, i], `${name} cut points must be ascending: ${cut} follows ${previous}`))
      }
    })
  }
  return issues
}

const checkTags = (program: Program, at: At): Array<SourceIssue> => [
  ...duplicates(program.tags.map((t) => t.id), (i) => ["tags", i, "id"], (id) => `duplicate tag id "${id}"`, at),
  ...program.tags.flatMap((tag, i) => checkCondition(tag.when, ["tags", i, "when"], at))
]

const checkCondition = (condition: Condition, path: YamlPath, at: At): Array<SourceIssue> => {
  if ("all" in condition) return condition.all.flatMap((c, i) => checkCondition(c, [...path, "all", i], at))
  if ("any" in condition) return condition.any.flatMap((c, i) => checkCondition(c, [...path, "any", i], at))
  if ("not" in condition) return checkCondition(condition.not, [...path, "not"], at)
  if ("attribute" in condition) {
    const attribute = condition.attribute
    if (!RESERVED_PREFIXES.some((prefix) => attribute.startsWith(prefix)) || KNOWN_ATTRIBUTE_PATHS.includes(attribute)) {
      return []
    }
    const hint = closest(attribute, KNOWN_ATTRIBUTE_PATHS)
    const namespace = attribute.slice(0, attribute.indexOf(".") + 1)
    const known = KNOWN_ATTRIBUTE_PATHS.filter((p) => p.startsWith(namespace)).join(", ")
    return [
      at(
        [...path, "attribute"],
        `unknown attribute "${attribute}"${hint === undefined ? "" : ` (did you mean "${hint}"?)`}; known: ${known}`
      )
    ]
  }
  if ("event" in condition && condition.since === "entry") {
    return [at([...path, "since"], "since: entry only means something inside a journey; use within: <duration> in a tag rule")]
  }
  return []
}

const checkPolicies = (program: Program, at: At): Array<SourceIssue> => {
  const { policies } = program
  const issues: Array<SourceIssue> = []
  policies.frequencyCaps.forEach((cap, i) => {
    if (cap.per <= 0) issues.push(at(["policies", "frequencyCaps", i, "per"], "a frequency cap period must be longer than 0"))
  })
  issues.push(
    ...duplicates(
      policies.frequencyCaps.map((cap) => `${cap.channel} per ${cap.per}`),
      (i) => ["policies", "frequencyCaps", i],
      () => "duplicate frequency cap for the same channel and period",
      at
    )
  )
  const quiet = policies.quietHours
  if (quiet !== undefined) {
    if (quiet.from === quiet.to) {
      issues.push(at(["policies", "quietHours", "to"], `quiet hours start and end at the same time (${quiet.from})`))
    }
    if (quiet.channels.length === 0) {
      issues.push(at(["policies", "quietHours", "channels"], "quiet hours name no channels: list them or remove quietHours"))
    }
  }
  for (const channel of ["sms", "email", "wechat"] as const) {
    const rate = policies.rateLimits?.[channel]
    if (rate !== undefined && Number.parseInt(rate, 10) <= 0) {
      issues.push(at(["policies", "rateLimits", channel], `a rate limit of ${rate} would never send: use at least 1`))
    }
  }
  return issues
}

/** Every repeat after the first, pointing back at the first. */
const duplicates = (
  values: ReadonlyArray<string>,
  pathOf: (index: number) => YamlPath,
  label: (value: string) => string,
  at: At
): Array<SourceIssue> => {
  const firstIndex = new Map<string, number>()
  const issues: Array<SourceIssue> = []
  values.forEach((value, i) => {
    const first = firstIndex.get(value)
    if (first === undefined) {
      firstIndex.set(value, i)
      return
    }
    const original = at(pathOf(first), "")
    issues.push(at(pathOf(i), `${label(value)} (first at line ${original.line})`))
  })
  return issues
}
