import { type LiftRow, pText, signedPercent as signed } from "../Cli/LiftCommand.ts"
import { escapeHtml, formatCount, formatRate, round, svgText } from "./Html.ts"

/**
 * The report's charts as inline SVG, drawn from plain numbers: the funnel by step, and each arm's
 * conversion and lift with their 95% intervals. Sized in a fixed viewBox that CSS scales to the page.
 */

const WIDTH = 1080
const LABEL = 200
const VALUE = 250
const PLOT = WIDTH - LABEL - VALUE - 24
const ROW = 34
const TOP = 30

/** The 95% Wilson score interval of x successes in n: well-behaved near 0 and 1, unlike the normal one. */
export const wilson = (x: number, n: number, z = 1.959964): { readonly low: number; readonly high: number } | null => {
  if (n <= 0) return null
  const p = x / n
  const z2 = z * z
  const centre = (p + z2 / (2 * n)) / (1 + z2 / n)
  const half = (z * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n))) / (1 + z2 / n)
  return { low: Math.max(0, centre - half), high: Math.min(1, centre + half) }
}

/** About five round ticks, the first at or below `low` and the last at or above `high`. */
const ticks = (low: number, high: number): ReadonlyArray<number> => {
  const span = high - low || 1
  const raw = span / 5
  const magnitude = 10 ** Math.floor(Math.log10(raw))
  const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => s >= raw) ?? raw
  const first = Math.floor(low / step + 1e-9)
  const last = Math.ceil(high / step - 1e-9)
  return Array.from({ length: last - first + 1 }, (_, k) => ((first + k) * step === 0 ? 0 : (first + k) * step))
}

const axis = (scale: (v: number) => number, values: ReadonlyArray<number>, top: number, bottom: number, format: (v: number) => string): string =>
  values
    .map((v) => {
      const x = round(scale(v))
      return `<line x1="${x}" y1="${top}" x2="${x}" y2="${bottom}" class="grid"/><text x="${x}" y="${top - 8}" font-size="11" text-anchor="middle" class="muted">${escapeHtml(format(v))}</text>`
    })
    .join("")

const svg = (height: number, label: string, body: ReadonlyArray<string>): string =>
  `<svg class="chart" viewBox="0 0 ${WIDTH} ${height}" role="img" aria-label="${escapeHtml(label)}">${body.join("")}</svg>`

// ------------------------------------------------------------------------------------------------ funnel

export interface FunnelOutcome {
  readonly outcome: string
  readonly enrollments: number
}

export interface FunnelStep {
  readonly stepId: string
  /** the step's action in the current file; undefined when only an older version has the step */
  readonly kind: string | undefined
  readonly outcomes: ReadonlyArray<FunnelOutcome>
}

const OUTCOME_COLORS: Record<string, string> = {
  queued: "#1a56c4",
  suppressed: "#a0aec0",
  waiting: "#f6c453",
  "left-waiting": "#c05621",
  elapsed: "#b7791f",
  event: "#2f855a",
  timeout: "#dd6b20",
  "no-match": "#b794f4",
  tagged: "#00796b",
  emitted: "#319795",
  exit: "#5d4037",
  skipped: "#cbd5e0"
}
const JUMP_COLORS = ["#7b2fa2", "#d53f8c", "#805ad5", "#b83280", "#553c9a", "#97266d"]

/** What an outcome means, in the legend. */
const OUTCOME_WORDS: Record<string, string> = {
  queued: "queued to send",
  suppressed: "suppressed (control arm)",
  waiting: "still waiting",
  "left-waiting": "left during the wait",
  elapsed: "wait elapsed",
  event: "event arrived",
  timeout: "timed out",
  "no-match": "no branch matched",
  tagged: "tagged",
  emitted: "event emitted",
  exit: "exited here",
  skipped: "skipped (when)"
}

export const outcomeWords = (outcome: string): string =>
  outcome.startsWith("goto:") ? `→ ${outcome.slice("goto:".length)}` : OUTCOME_WORDS[outcome] ?? outcome

/** Horizontal bars: enrollments that reached each step, split by the step's latest outcome, as % of entrants. */
export const funnelSvg = (steps: ReadonlyArray<FunnelStep>, entrants: number): string => {
  const jumps = [...new Set(steps.flatMap((s) => s.outcomes.map((o) => o.outcome)).filter((o) => o.startsWith("goto:")))].sort()
  const colorOf = (outcome: string) => OUTCOME_COLORS[outcome] ?? JUMP_COLORS[Math.max(0, jumps.indexOf(outcome)) % JUMP_COLORS.length] ?? "#718096"
  const scale = (v: number) => LABEL + (entrants > 0 ? (v / entrants) * PLOT : 0)
  const rows = [{ stepId: "entered", kind: "trigger" as string | undefined, outcomes: [{ outcome: "entered", enrollments: entrants }] }, ...steps]
  const used = [...new Set(steps.flatMap((s) => s.outcomes.map((o) => o.outcome)))]
  const legendRows = Math.ceil(used.length / 4)
  const height = TOP + rows.length * ROW + 16 + legendRows * 20
  const body: Array<string> = [axis((v) => scale(v * entrants), ticks(0, 1), TOP - 4, TOP + rows.length * ROW, (v) => `${Math.round(v * 100)}%`)]
  rows.forEach((row, i) => {
    const y = TOP + i * ROW
    const total = row.outcomes.reduce((s, o) => s + o.enrollments, 0)
    const kind = row.kind === undefined ? "not in the current file" : row.kind === "trigger" ? "" : row.kind
    body.push(svgText(LABEL - 12, y + 15, row.stepId, { width: LABEL - 20, size: 12, bold: true, anchor: "end", cls: "ink" }))
    if (kind !== "") body.push(svgText(LABEL - 12, y + 28, kind, { width: LABEL - 20, size: 10, anchor: "end", cls: "muted" }))
    let x = LABEL
    for (const o of row.outcomes) {
      const w = entrants > 0 ? (o.enrollments / entrants) * PLOT : 0
      const fill = i === 0 ? "#2e7d32" : colorOf(o.outcome)
      const share = `${formatCount(o.enrollments)} (${formatRate(entrants > 0 ? o.enrollments / entrants : 0)} of entrants)`
      const tip = i === 0 ? `entered ${share}` : `${row.stepId}: ${outcomeWords(o.outcome)} ${share}`
      body.push(`<rect x="${round(x)}" y="${y + 6}" width="${round(Math.max(w, o.enrollments > 0 ? 1 : 0))}" height="${ROW - 12}" fill="${fill}"><title>${escapeHtml(tip)}</title></rect>`)
      x += w
    }
    body.push(svgText(LABEL + PLOT + 12, y + 21, `${formatCount(total)} · ${formatRate(entrants > 0 ? total / entrants : 0)}`, { width: VALUE, size: 12, cls: "ink" }))
  })
  used.forEach((outcome, k) => {
    const x = LABEL + (k % 4) * (PLOT / 4 + 40)
    const y = TOP + rows.length * ROW + 16 + Math.floor(k / 4) * 20
    body.push(`<rect x="${round(x)}" y="${y}" width="12" height="12" rx="2" fill="${colorOf(outcome)}"/>`)
    body.push(svgText(x + 18, y + 10, outcomeWords(outcome), { width: PLOT / 4 + 10, size: 11, cls: "muted" }))
  })
  return svg(height, "funnel by step", body)
}

// ------------------------------------------------------------------------------------------------ conversion and lift

const armColor = (row: LiftRow): string => (row.variant === "control" ? "#718096" : "#1a56c4")

/** Each arm's conversion rate with its Wilson 95% interval; control's rate as a dashed line. */
export const conversionSvg = (rows: ReadonlyArray<LiftRow>): string => {
  const arms = rows.filter((r) => r.enrolled > 0)
  const intervals = arms.map((r) => wilson(r.converted, r.enrolled))
  const max = Math.max(0.01, ...intervals.map((i) => i?.high ?? 0))
  const grid = ticks(0, max * 1.04)
  const top = grid.at(-1) ?? max
  const scale = (v: number) => LABEL + (v / top) * PLOT
  const height = TOP + arms.length * ROW + 10
  const body: Array<string> = [axis(scale, grid, TOP - 4, TOP + arms.length * ROW, (v) => formatRate(v).replace(/\.?0+%$/, "%"))]
  const control = arms.find((r) => r.variant === "control")
  if (control !== undefined) {
    const x = round(scale(control.converted / control.enrolled))
    body.push(`<line x1="${x}" y1="${TOP - 4}" x2="${x}" y2="${TOP + arms.length * ROW}" class="reference"/>`)
  }
  arms.forEach((row, i) => {
    const y = TOP + i * ROW + ROW / 2
    const rate = row.converted / row.enrolled
    const ci = intervals[i]
    const color = armColor(row)
    body.push(svgText(LABEL - 12, y + 4, `${row.variant} (n=${formatCount(row.enrolled)})`, { width: LABEL - 20, size: 12, bold: true, anchor: "end", cls: "ink" }))
    if (ci !== null && ci !== undefined) {
      const [a, b] = [round(scale(ci.low)), round(scale(ci.high))]
      body.push(`<line x1="${a}" y1="${y}" x2="${b}" y2="${y}" stroke="${color}" stroke-width="2"/>`)
      body.push(`<line x1="${a}" y1="${y - 6}" x2="${a}" y2="${y + 6}" stroke="${color}" stroke-width="2"/><line x1="${b}" y1="${y - 6}" x2="${b}" y2="${y + 6}" stroke="${color}" stroke-width="2"/>`)
    }
    body.push(`<circle cx="${round(scale(rate))}" cy="${y}" r="5" fill="${color}"><title>${escapeHtml(`${row.variant}: ${formatRate(rate)}`)}</title></circle>`)
    const ciText = ci === null || ci === undefined ? "" : ` (${formatRate(ci.low)} – ${formatRate(ci.high)})`
    body.push(svgText(LABEL + PLOT + 12, y + 4, `${formatRate(rate)}${ciText}`, { width: VALUE, size: 12, cls: "ink" }))
  })
  return svg(height, "conversion rate per arm with 95% interval", body)
}

/** Each variant's relative lift over control with the view's 95% interval; 0 is control. */
export const liftSvg = (rows: ReadonlyArray<LiftRow>, alpha = 0.05): string => {
  const variants = rows.filter((r) => r.variant !== "control")
  const hasControl = rows.some((r) => r.variant === "control" && r.enrolled > 0)
  const values = variants.flatMap((r) => [r.lift, r.lift_ci_low, r.lift_ci_high].filter((v): v is number => v !== null))
  const low = Math.min(-0.1, ...values)
  const high = Math.max(0.1, ...values)
  const pad = (high - low) * 0.06
  const grid = ticks(low - pad, high + pad)
  const from = Math.min(grid[0] ?? low, low - pad)
  const to = Math.max(grid.at(-1) ?? high, high + pad)
  const scale = (v: number) => LABEL + ((v - from) / (to - from)) * PLOT
  const height = TOP + variants.length * ROW + 10
  const zero = round(scale(0))
  const body: Array<string> = [
    axis(scale, grid, TOP - 4, TOP + variants.length * ROW, (v) => (v === 0 ? "control" : signed(v))),
    `<line x1="${zero}" y1="${TOP - 4}" x2="${zero}" y2="${TOP + variants.length * ROW}" class="reference"/>`
  ]
  variants.forEach((row, i) => {
    const y = TOP + i * ROW + ROW / 2
    body.push(svgText(LABEL - 12, y + 4, row.variant, { width: LABEL - 20, size: 12, bold: true, anchor: "end", cls: "ink" }))
    if (row.lift === null) {
      const why = row.enrolled === 0 ? "nobody enrolled" : !hasControl ? "no control group to compare with" : "no lift: control converted nobody"
      body.push(svgText(LABEL + 8, y + 4, why, { width: PLOT, size: 12, cls: "muted" }))
      return
    }
    const significant = row.p_value !== null && row.p_value < alpha
    const color = !significant ? "#718096" : row.lift > 0 ? "#2f855a" : "#c53030"
    if (row.lift_ci_low !== null && row.lift_ci_high !== null) {
      const [a, b] = [round(scale(row.lift_ci_low)), round(scale(row.lift_ci_high))]
      body.push(`<line x1="${a}" y1="${y}" x2="${b}" y2="${y}" stroke="${color}" stroke-width="2"/>`)
      body.push(`<line x1="${a}" y1="${y - 6}" x2="${a}" y2="${y + 6}" stroke="${color}" stroke-width="2"/><line x1="${b}" y1="${y - 6}" x2="${b}" y2="${y + 6}" stroke="${color}" stroke-width="2"/>`)
    }
    body.push(`<circle cx="${round(scale(row.lift))}" cy="${y}" r="5" fill="${color}"><title>${escapeHtml(`${row.variant}: ${signed(row.lift)}`)}</title></circle>`)
    const ci = row.lift_ci_low === null || row.lift_ci_high === null ? "" : ` (${signed(row.lift_ci_low)} to ${signed(row.lift_ci_high)})`
    const p = row.p_value === null ? "" : `, ${pText(row.p_value)}`
    body.push(svgText(LABEL + PLOT + 12, y + 4, `${signed(row.lift)}${ci}${p}`, { width: VALUE, size: 12, cls: "ink" }))
  })
  return svg(height, "relative lift over control with 95% interval", body)
}
