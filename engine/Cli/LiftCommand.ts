import { Args, Command } from "@effect/cli"
import { Console, Data, Effect, Either, Option, Schema } from "effect"
import { CONTROL } from "../journeys/Machine.ts"
import { didYouMean } from "../program/YamlDocument/Suggest.ts"
import { CAMPAIGN_LIFT } from "../store/CampaignLift.ts"
import { engineQuery } from "./EngineQuery.ts"

export class LiftFailed extends Data.TaggedError("LiftFailed")<{ readonly message: string }> {}

/** Below this Holm-adjusted p-value a difference is called; the usual 5%. */
const ALPHA = 0.05

/** 64-bit counts arrive as numbers from our clients, but a server profile may quote them. */
const Num = Schema.Union(Schema.Number, Schema.NumberFromString)
const Maybe = Schema.NullOr(Num)

export const LiftRow = Schema.Struct({
  journey_id: Schema.String,
  variant: Schema.String,
  enrolled: Num,
  converted: Num,
  conversion_rate: Maybe,
  revenue: Num,
  revenue_per_member: Maybe,
  lift: Maybe,
  lift_ci_low: Maybe,
  lift_ci_high: Maybe,
  p_value: Maybe,
  planned_percent: Maybe,
  observed_percent: Maybe,
  srm_p_value: Maybe,
  srm_flag: Num
})
export type LiftRow = typeof LiftRow.Type
export const decodeLiftRows = Schema.decodeUnknownEither(Schema.Array(LiftRow))

const count = (n: number): string => n.toLocaleString("en-US")

/** +31%, -4.5%: one decimal below 10 points, where rounding would hide the difference. */
export const signedPercent = (ratio: number): string => {
  const points = ratio * 100
  const text = Math.abs(points) < 10 ? points.toFixed(1) : points.toFixed(0)
  return points >= 0 ? `+${text}%` : `${text}%`
}

export const pText = (p: number): string => (p < 0.001 ? "p < 0.001" : `p = ${Number(p.toPrecision(2))}`)

const liftText = (row: LiftRow): string =>
  row.lift === null
    ? "—"
    : row.lift_ci_low === null || row.lift_ci_high === null
      ? signedPercent(row.lift)
      : `${signedPercent(row.lift)} (${signedPercent(row.lift_ci_low)} to ${signedPercent(row.lift_ci_high)})`

/** "+31% conversion, 95% CI +12% to +53%, p = 0.002" */
const evidence = (row: LiftRow, p: number): string => {
  const lift = row.lift === null ? "" : `${signedPercent(row.lift)} conversion, `
  const ci = row.lift_ci_low === null || row.lift_ci_high === null ? "" : `95% CI ${signedPercent(row.lift_ci_low)} to ${signedPercent(row.lift_ci_high)}, `
  return `${lift}${ci}${pText(p)}`
}

/**
 * One sentence per variant: the Holm-adjusted p-value decides, the rates say who wins (the lift is
 * undefined when control converted nobody).
 */
export const verdict = (row: LiftRow, control: LiftRow | undefined): string => {
  if (control === undefined) return `${row.variant}: no control group in this journey, nothing to compare with`
  if (row.p_value === null) return `${row.variant} vs control: not enough conversions to compare yet`
  if (row.p_value >= ALPHA) return `${row.variant} vs control: no clear difference (${evidence(row, row.p_value)})`
  return (row.conversion_rate ?? 0) > (control.conversion_rate ?? 0)
    ? `${row.variant} beats control: ${evidence(row, row.p_value)}`
    : `${row.variant} vs control: control wins (${evidence(row, row.p_value)})`
}

export const srmWarning = (row: LiftRow): string => {
  const planned = row.planned_percent ?? 0
  const seen = row.observed_percent ?? 0
  return `warning: sample ratio mismatch in arm ${row.variant}: ${planned.toFixed(1)}% of entrants planned, ${seen.toFixed(1)}% enrolled (${count(row.enrolled)} members; ${pText(row.srm_p_value ?? 0)}). ` +
    "The split is not what the journey says, so its comparison may be biased: check how members are assigned."
}

const table = (rows: ReadonlyArray<LiftRow>): string => {
  const header = ["arm", "enrolled", "converted", "rate", "lift (95% CI)", "p", "revenue/member", "SRM"]
  const body = rows.map((row) => [
    row.variant,
    count(row.enrolled),
    count(row.converted),
    row.conversion_rate === null ? "—" : `${(row.conversion_rate * 100).toFixed(2)}%`,
    liftText(row),
    row.p_value === null ? "—" : pText(row.p_value).replace("p = ", "").replace("p ", ""),
    row.revenue_per_member === null ? "—" : row.revenue_per_member.toFixed(2),
    row.srm_flag === 1 ? "MISMATCH" : row.srm_p_value === null ? "—" : "ok"
  ])
  const numeric = new Set([1, 2, 3, 6])
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((cells) => (cells[i] ?? "").length)))
  const line = (cells: ReadonlyArray<string>) =>
    cells.map((cell, i) => (numeric.has(i) ? cell.padStart(widths[i] ?? 0) : cell.padEnd(widths[i] ?? 0))).join("  ").trimEnd()
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...body.map(line)].join("\n")
}

/** A verdict per variant, when there is something to compare (a control, or several variants). */
export const verdicts = (rows: ReadonlyArray<LiftRow>): ReadonlyArray<string> => {
  const control = rows.find((row) => row.variant === CONTROL && row.enrolled > 0)
  const variants = rows.filter((row) => row.variant !== CONTROL)
  return control !== undefined || variants.length > 1 ? variants.map((row) => verdict(row, control)) : []
}

/** The report of one journey: the table, then a verdict per variant and any SRM warning. */
export const report = (journeyId: string, rows: ReadonlyArray<LiftRow>): ReadonlyArray<string> => [
  `${journeyId} — conversion to the journey's goal, every version pooled, intent to treat`,
  "",
  table(rows),
  "",
  ...verdicts(rows),
  ...rows.filter((row) => row.srm_flag === 1).map(srmWarning)
]

const JOURNEY_ID = /^[a-z0-9-]+$/

/**
 * `memberflow lift [journey]`: the campaign_lift view for a person, through the same read-only path
 * as `memberflow query` (the running engine's POST /sql, else the database directly).
 */
export const liftCommand = Command.make("lift", { journey: Args.text({ name: "journey" }).pipe(Args.optional) }, ({ journey }) =>
  Effect.gen(function* () {
    const journeyId = Option.getOrUndefined(journey)
    if (journeyId !== undefined && !JOURNEY_ID.test(journeyId)) {
      return yield* new LiftFailed({ message: `"${journeyId}" is not a journey id (lowercase letters, digits and -)` })
    }
    const where = journeyId === undefined ? "" : ` WHERE journey_id = '${journeyId}'`
    const decoded = decodeLiftRows(yield* engineQuery(`SELECT * FROM ${CAMPAIGN_LIFT}${where}`))
    if (Either.isLeft(decoded)) return yield* new LiftFailed({ message: `${CAMPAIGN_LIFT} returned rows this command does not understand: ${decoded.left.message}` })
    const rows = decoded.right
    if (rows.length === 0) {
      const known = (yield* engineQuery("SELECT DISTINCT journey_id FROM journey_variants UNION DISTINCT SELECT DISTINCT journey_id FROM journey_enrollments"))
        .map((row) => String(row["journey_id"]))
      if (journeyId === undefined) return yield* Console.log("no journey has enrolled anyone yet")
      if (!known.includes(journeyId)) {
        return yield* new LiftFailed({ message: `no journey "${journeyId}" in the engine's ClickHouse${didYouMean(journeyId, known)}` })
      }
      return yield* Console.log(`${journeyId}: nobody has entered it yet`)
    }
    const journeys = [...new Set(rows.map((row) => row.journey_id))]
    for (const [i, id] of journeys.entries()) {
      if (i > 0) yield* Console.log("")
      for (const line of report(id, rows.filter((row) => row.journey_id === id))) yield* Console.log(line)
    }
  })
).pipe(Command.withDescription("campaign lift per journey and arm: conversion, lift with its 95% CI, p-value, sample-ratio check"))
