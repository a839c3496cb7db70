import type { Journey } from "../../schemas/Journey.ts"
import { actionOf } from "../../schemas/Journey.ts"
import { type LiftRow, pText, signedPercent, srmWarning, verdicts } from "../Cli/LiftCommand.ts"
import { conversionSvg, type FunnelStep, funnelSvg, liftSvg, wilson } from "./Charts.ts"
import { conditionText, exitText, experimentText, goalText, reentryText, triggerText } from "./Describe.ts"
import { flowDiagramSvg } from "./FlowDiagram.ts"
import { flowGraph, jumpsBack } from "./FlowDiagram/Graph.ts"
import { escapeHtml, formatCount, formatRate, formatTime } from "./Html.ts"
import { REPORT_CSS } from "./ReportStyle.ts"

/**
 * `memberflow report`: one self-contained HTML page about one journey. Inline CSS and SVG only, no
 * script and no external reference, so it opens from a mail attachment or a shared drive with no
 * network. Every text from the journey file or from ClickHouse is escaped here (escapeHtml,
 * svgText): a journey name is free text.
 */

export interface VersionCount {
  readonly version: string
  readonly enrollments: number
  readonly members: number
  readonly firstEntry: number
  readonly lastEntry: number
}

export interface StatusCount {
  readonly status: string
  readonly reason: string
  readonly enrollments: number
}

/**
 * Enrollments by their latest outcome at a step (journey_steps); `left-waiting` is a `waiting`
 * whose enrollment has ended (an exit event during the wait).
 */
export interface StepOutcome {
  readonly stepId: string
  readonly outcome: string
  readonly enrollments: number
}

export interface ReportData {
  /** the current file (JOURNEYS_DIR) */
  readonly journey: Journey
  readonly currentVersion: string
  readonly generatedAt: number
  readonly versions: ReadonlyArray<VersionCount>
  readonly statuses: ReadonlyArray<StatusCount>
  readonly steps: ReadonlyArray<StepOutcome>
  readonly lift: ReadonlyArray<LiftRow>
  /** the latest step or conversion, if any */
  readonly lastActivity: number | null
}

const OUTCOME_ORDER = ["queued", "suppressed", "tagged", "emitted", "elapsed", "event", "timeout", "waiting", "left-waiting", "no-match", "exit", "skipped"]
const outcomeRank = (outcome: string) => {
  const i = OUTCOME_ORDER.indexOf(outcome)
  return i >= 0 ? i : outcome.startsWith("goto:") ? 4.5 : OUTCOME_ORDER.length
}

/** Steps in file order, then steps only older versions had; outcomes in a stable order. */
export const funnelSteps = (journey: Journey, outcomes: ReadonlyArray<StepOutcome>): ReadonlyArray<FunnelStep> => {
  const kindOf = new Map(journey.steps.map((s) => [s.id, actionOf(s)]))
  const ids = [...journey.steps.map((s) => s.id), ...[...new Set(outcomes.map((o) => o.stepId))].filter((id) => !kindOf.has(id)).sort()]
  return ids.map((stepId) => ({
    stepId,
    kind: kindOf.get(stepId),
    outcomes: outcomes
      .filter((o) => o.stepId === stepId && o.enrollments > 0)
      .sort((a, b) => outcomeRank(a.outcome) - outcomeRank(b.outcome) || a.outcome.localeCompare(b.outcome))
      .map((o) => ({ outcome: o.outcome, enrollments: o.enrollments }))
  }))
}

const fact = (term: string, value: string): string => `<dt>${escapeHtml(term)}</dt><dd>${escapeHtml(value)}</dd>`

const header = (data: ReportData): string => {
  const j = data.journey
  const entered = data.versions.reduce((s, v) => s + v.enrollments, 0)
  const first = Math.min(...data.versions.map((v) => v.firstEntry))
  const last = Math.max(...data.versions.map((v) => v.lastEntry))
  const range =
    entered === 0
      ? "no data yet: nobody has entered this journey"
      : `entries ${formatTime(first)} to ${formatTime(last)}${data.lastActivity === null ? "" : `; last activity ${formatTime(Math.max(last, data.lastActivity))}`}`
  return [
    `<header><p class="eyebrow">memberflow journey report</p>`,
    `<h1>${escapeHtml(j.name)}</h1>`,
    `<p class="chips"><span class="chip">${escapeHtml(j.id)}</span><span class="chip ${j.category}">${escapeHtml(j.category)}</span>`,
    `<span class="chip ${j.status}">${escapeHtml(j.status)}</span><span class="chip">version ${escapeHtml(data.currentVersion)}</span></p>`,
    j.description === undefined ? "" : `<p class="description">${escapeHtml(j.description)}</p>`,
    `<dl class="facts">`,
    fact("Trigger", triggerText(j.trigger)),
    fact("Audience", j.audience === undefined ? "everyone" : conditionText(j.audience)),
    fact("Goal", goalText(j.goal)),
    fact("Experiment", experimentText(j.experiment)),
    fact("Re-entry", reentryText(j.reentry)),
    fact("Leaves early on", exitText(j)),
    fact("Data", range),
    fact("Generated", formatTime(data.generatedAt)),
    `</dl></header>`
  ].join("")
}

const versionsSection = (data: ReportData): string => {
  if (data.versions.length === 0) return ""
  const current = data.versions.find((v) => v.version === data.currentVersion)
  const older = data.versions.filter((v) => v.version !== data.currentVersion)
  const olderCount = older.reduce((s, v) => s + v.enrollments, 0)
  const sentence =
    current === undefined
      ? `Nobody has entered the current file (version ${data.currentVersion}) yet: every number below comes from ${older.length === 1 ? "an earlier version" : `${older.length} earlier versions`}, whose steps may differ from the diagram.`
      : older.length === 0
        ? `Every enrollment entered the current file (version ${data.currentVersion}).`
        : `The data covers ${data.versions.length} versions: ${formatCount(current.enrollments)} enrollments entered the current file and ${formatCount(olderCount)} an earlier version, whose steps may differ from the diagram. Lift pools every version.`
  const rows = data.versions.map(
    (v) =>
      `<tr${v.version === data.currentVersion ? ' class="current"' : ""}><td><code>${escapeHtml(v.version)}</code>${v.version === data.currentVersion ? ' <span class="chip small">current file</span>' : ""}</td>` +
      `<td class="num">${formatCount(v.enrollments)}</td><td class="num">${formatCount(v.members)}</td><td>${escapeHtml(formatTime(v.firstEntry))}</td><td>${escapeHtml(formatTime(v.lastEntry))}</td></tr>`
  )
  return [
    `<section><h2>Versions in the data</h2><p>${escapeHtml(sentence)}</p>`,
    `<table><thead><tr><th>version</th><th class="num">enrollments</th><th class="num">members</th><th>first entry</th><th>last entry</th></tr></thead>`,
    `<tbody>${rows.join("")}</tbody></table></section>`
  ].join("")
}

const NO_DATA = (what: string) => `<div class="empty"><strong>No data yet.</strong> ${escapeHtml(what)}</div>`

const funnelSection = (data: ReportData, entrants: number): string => {
  const body =
    entrants === 0
      ? NO_DATA("Nobody has entered this journey, so no step has been reached. The funnel appears once members enter.")
      : funnelSvg(funnelSteps(data.journey, data.steps), entrants)
  const statuses = data.statuses
    .map((s) => `<tr><td>${escapeHtml(s.status)}</td><td>${escapeHtml(s.reason === "" ? "—" : s.reason)}</td><td class="num">${formatCount(s.enrollments)}</td><td class="num">${formatRate(entrants > 0 ? s.enrollments / entrants : 0)}</td></tr>`)
    .join("")
  return [
    `<section><h2>Funnel by step</h2>`,
    entrants === 0
      ? ""
      : `<p class="note">Enrollments that reached each step, split by what happened there last (every version; a member who entered twice counts twice), as a share of the ${formatCount(entrants)} entries.</p>`,
    body,
    statuses === "" ? "" : `<h3>Where enrollments are now</h3><table class="compact"><thead><tr><th>status</th><th>reason</th><th class="num">enrollments</th><th class="num">share</th></tr></thead><tbody>${statuses}</tbody></table>`,
    `</section>`
  ].join("")
}

const dash = "—"

const liftTable = (rows: ReadonlyArray<LiftRow>): string => {
  const body = rows.map((r) => {
    const ci = wilson(r.converted, r.enrolled)
    const rate = r.conversion_rate === null ? dash : `${formatRate(r.conversion_rate)}${ci === null ? "" : ` <span class="muted">(${formatRate(ci.low)} – ${formatRate(ci.high)})</span>`}`
    const lift = r.lift === null ? dash : escapeHtml(signedPercent(r.lift))
    const liftCi = r.lift_ci_low === null || r.lift_ci_high === null ? dash : escapeHtml(`${signedPercent(r.lift_ci_low)} to ${signedPercent(r.lift_ci_high)}`)
    const srm = r.srm_flag === 1 ? '<span class="flag">MISMATCH</span>' : r.srm_p_value === null ? dash : "ok"
    const split = r.planned_percent === null || r.observed_percent === null ? dash : `${r.planned_percent.toFixed(1)}% / ${r.observed_percent.toFixed(1)}%`
    return (
      `<tr><td><strong>${escapeHtml(r.variant)}</strong></td><td class="num">${formatCount(r.enrolled)}</td><td class="num">${formatCount(r.converted)}</td>` +
      `<td class="num">${rate}</td><td class="num">${lift}</td><td class="num">${liftCi}</td><td class="num">${r.p_value === null ? dash : escapeHtml(pText(r.p_value).replace(/^p (= )?/, ""))}</td>` +
      `<td class="num">${r.revenue_per_member === null ? dash : r.revenue_per_member.toFixed(2)}</td><td class="num">${split}</td><td>${srm}</td></tr>`
    )
  })
  return [
    `<table><thead><tr><th>arm</th><th class="num">enrolled</th><th class="num">converted</th><th class="num">rate (95% CI)</th><th class="num">lift</th>`,
    `<th class="num">lift 95% CI</th><th class="num">p (Holm)</th><th class="num">revenue / member</th><th class="num">planned / actual split</th><th>SRM</th></tr></thead>`,
    `<tbody>${body.join("")}</tbody></table>`
  ].join("")
}

const resultsSection = (data: ReportData, entrants: number): string => {
  const rows = data.lift
  if (entrants === 0 || rows.every((r) => r.enrolled === 0)) {
    return `<section><h2>Conversion and lift</h2>${NO_DATA("Nobody has entered this journey: conversion and lift appear once members enter and the goal has had time to happen.")}</section>`
  }
  const said = verdicts(rows)
  const warnings = rows.filter((r) => r.srm_flag === 1).map(srmWarning)
  // lift needs a control arm to compare with; without an experiment there is only the default arm
  const comparable = rows.some((r) => r.variant === "control" && r.enrolled > 0) && rows.some((r) => r.variant !== "control")
  const charts =
    data.journey.goal === undefined
      ? `<p class="note">This journey has no goal, so nothing converts: the table shows who entered each arm.</p>`
      : [
          `<h3>Conversion rate per arm</h3><p class="note">Point: the arm's conversion rate; bar: its 95% Wilson interval; dashed line: control.</p>`,
          conversionSvg(rows),
          comparable
            ? `<h3>Lift over control</h3><p class="note">Point: relative lift (rate ÷ control rate − 1); bar: its 95% interval from the log risk ratio; green or red when the Holm-adjusted p is below 0.05.</p>${liftSvg(rows)}`
            : `<p class="note">No control group has entered, so there is no lift to measure: a holdout needs <code>experiment.control</code> above 0.</p>`
        ].join("")
  return [
    `<section><h2>Conversion and lift</h2>`,
    `<p class="note">Goal: ${escapeHtml(goalText(data.journey.goal))}. Every enrolled member of an arm counts (intent to treat) and converts once; every version pooled.</p>`,
    charts,
    `<h3>campaign_lift</h3>`,
    liftTable(rows),
    said.length === 0 ? "" : `<ul class="verdicts">${said.map((v) => `<li>${escapeHtml(v)}</li>`).join("")}</ul>`,
    warnings.length === 0 ? "" : `<div class="warning">${warnings.map((w) => `<p>${escapeHtml(w)}</p>`).join("")}</div>`,
    `</section>`
  ].join("")
}

/** The whole page. */
export const reportHtml = (data: ReportData): string => {
  const entrants = data.versions.reduce((s, v) => s + v.enrollments, 0)
  const reached = new Map<string, number>()
  for (const o of data.steps) reached.set(o.stepId, (reached.get(o.stepId) ?? 0) + o.enrollments)
  const title = `${data.journey.name} — ${data.journey.id} — memberflow report`
  return [
    "<!DOCTYPE html>",
    `<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">`,
    `<title>${escapeHtml(title)}</title><style>${REPORT_CSS}</style></head><body><main>`,
    header(data),
    `<section><h2>Flow</h2><p class="note">The current file (version ${escapeHtml(data.currentVersion)}).${entrants > 0 ? " The number on a step: enrollments that reached it." : ""}${jumpsBack(flowGraph(data.journey)) ? " Dashed arrows on the side jump back to an earlier step." : ""}</p>`,
    `<div class="flow-wrap">${flowDiagramSvg(data.journey, entrants > 0 ? reached : undefined)}</div></section>`,
    versionsSection(data),
    funnelSection(data, entrants),
    resultsSection(data, entrants),
    `<footer>Lift and p-values from the campaign_lift view: relative lift with its 95% interval from the log risk ratio; p from the pooled two-proportion z-test, Holm-adjusted across the variants that share the control; `,
    `SRM: chi-squared of each arm's size against its planned share (flagged below p = 0.001). Per-arm rate intervals: Wilson score, 95%. Times in UTC.</footer>`,
    `</main></body></html>`
  ].join("\n")
}
