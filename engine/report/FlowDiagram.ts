import type { Journey } from "../../schemas/Journey.ts"
import { flowGraph, type FlowNode, type NodeKind } from "./FlowDiagram/Graph.ts"
import { layoutGraph, type Layout, type Point, type Route } from "./FlowDiagram/Layout.ts"
import { escapeHtml, formatCount, round, svgText, textWidth } from "./Html.ts"

/**
 * The journey's flow as inline SVG: the trigger, each step as a box (what it does, its `when`),
 * arrows labelled with branch conditions, split weights and wait outcomes, `goto` jumps back up in
 * a side lane, and the ends. With data, each box also shows how many enrollments reached it.
 */

const FONT = 12
const SMALL = 11
const LINE = 16
const PAD = 10
const MIN_WIDTH = 170
const MAX_WIDTH = 270
const TRIGGER_WIDTH = 330

const PALETTE: Record<NodeKind, { readonly fill: string; readonly stroke: string; readonly word: string }> = {
  trigger: { fill: "#e6f4ea", stroke: "#2e7d32", word: "START" },
  send: { fill: "#e8f0fe", stroke: "#1a56c4", word: "SEND" },
  wait: { fill: "#fff6dc", stroke: "#b7791f", word: "WAIT" },
  branch: { fill: "#f4e8fb", stroke: "#7b2fa2", word: "BRANCH" },
  split: { fill: "#f4e8fb", stroke: "#7b2fa2", word: "SPLIT" },
  tag: { fill: "#e2f4f1", stroke: "#00796b", word: "TAG" },
  emit: { fill: "#e2f4f1", stroke: "#00796b", word: "EMIT" },
  goto: { fill: "#eef1f4", stroke: "#546e7a", word: "GOTO" },
  exit: { fill: "#f1ebe8", stroke: "#5d4037", word: "EXIT" },
  end: { fill: "#f1ebe8", stroke: "#5d4037", word: "END" }
}

const widthOf = (node: FlowNode): number => {
  if (node.kind === "trigger") return TRIGGER_WIDTH
  const head = textWidth(PALETTE[node.kind].word, SMALL, true) + 6 + textWidth(node.title, FONT, true) + 56
  const body = Math.max(0, ...node.lines.map((line) => textWidth(line, SMALL)))
  return Math.min(MAX_WIDTH, Math.max(MIN_WIDTH, head, body + 2 * PAD))
}

/** One line per fact; a line too long for the box is cut, and its whole text is the tooltip. */
const heightOf = (node: FlowNode): number => PAD + LINE + node.lines.length * LINE + PAD - 4

const path = (route: Route): string => {
  const [first, ...rest] = route.points
  if (first === undefined) return ""
  if (route.back) return `M${round(first.x)} ${round(first.y)}${rest.map((p) => ` L${round(p.x)} ${round(p.y)}`).join("")}`
  let d = `M${round(first.x)} ${round(first.y)}`
  let previous: Point = first
  for (const p of rest) {
    const my = round((previous.y + p.y) / 2)
    d += p.x === previous.x ? ` L${round(p.x)} ${round(p.y)}` : ` C${round(previous.x)} ${my} ${round(p.x)} ${my} ${round(p.x)} ${round(p.y)}`
    previous = p
  }
  return d
}

const nodeSvg = (layout: Layout["nodes"][number], reached: ReadonlyMap<string, number> | undefined): string => {
  const { node, x, y, width, height } = layout
  const colors = PALETTE[node.kind]
  const left = x - width / 2
  const rounded = node.kind === "trigger" || node.kind === "end" || node.kind === "exit" ? 14 : 6
  const word = colors.word
  const wordWidth = textWidth(word, SMALL, true)
  const count = node.key.startsWith("step:") ? reached?.get(node.title) : undefined
  const badge = count === undefined ? "" : formatCount(count)
  const badgeWidth = badge === "" ? 0 : textWidth(badge, SMALL, true) + 12
  const title = node.kind === "trigger" || node.kind === "end" ? "" : node.title
  const parts = [
    `<g class="node node-${node.kind}">`,
    `<rect x="${round(left)}" y="${round(y)}" width="${round(width)}" height="${round(height)}" rx="${rounded}" fill="${colors.fill}" stroke="${colors.stroke}" stroke-width="1.5"/>`,
    `<text x="${round(left + PAD)}" y="${round(y + PAD + 11)}" font-size="${SMALL}" font-weight="700" fill="${colors.stroke}" letter-spacing="0.5">${word}</text>`,
    title === "" ? "" : svgText(left + PAD + wordWidth + 6, y + PAD + 11, title, { width: width - 2 * PAD - wordWidth - 6 - badgeWidth, size: FONT, bold: true, cls: "ink" }),
    badge === ""
      ? ""
      : `<g class="reached"><title>${escapeHtml(`${badge} enrollments reached ${node.title}`)}</title><rect x="${round(left + width - PAD - badgeWidth + 4)}" y="${round(y + 6)}" width="${round(badgeWidth)}" height="17" rx="8.5" fill="#ffffff" stroke="${colors.stroke}" stroke-width="1"/>` +
        `<text x="${round(left + width - PAD + 4 - badgeWidth / 2)}" y="${round(y + 18.5)}" font-size="${SMALL}" font-weight="600" text-anchor="middle" fill="${colors.stroke}">${escapeHtml(badge)}</text></g>`,
    ...node.lines.map((line, i) => svgText(left + PAD, y + PAD + 11 + (i + 1) * LINE, line, { width: width - 2 * PAD, size: SMALL, cls: "muted" })),
    "</g>"
  ]
  return parts.join("")
}

const lineSvg = (route: Route): string => {
  const d = path(route)
  return d === "" ? "" : `<path class="${route.back ? "edge edge-back" : "edge"}" d="${d}" fill="none" marker-end="url(#flow-arrow)"/>`
}

const labelSvg = (route: Route): string => {
  const label = route.label
  const text = route.back ? (route.edge.label === undefined ? "goto" : `goto · ${route.edge.label}`) : route.edge.label
  return label === undefined || text === undefined || route.points.length === 0
    ? ""
    : svgText(label.x, label.y, text, { width: label.maxWidth, size: SMALL, anchor: label.anchor, cls: route.back ? "edge-label back" : "edge-label" })
}

/** The layout the diagram draws: boxes sized for their text. */
export const flowLayout = (journey: Journey): Layout =>
  layoutGraph(flowGraph(journey), (node) => ({ width: widthOf(node), height: heightOf(node) }), (text) => textWidth(text, SMALL))

/** The diagram as an `<svg>` element; `reached` (step id → enrollments) adds a count to each box. */
export const flowDiagramSvg = (journey: Journey, reached?: ReadonlyMap<string, number>): string => {
  const layout = flowLayout(journey)
  const width = Math.ceil(layout.width)
  const height = Math.ceil(layout.height)
  return [
    `<svg class="flow" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="${escapeHtml(`flow of ${journey.id}`)}">`,
    `<defs><marker id="flow-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0 0 L10 5 L0 10 z" fill="#5f6b7a"/></marker></defs>`,
    // labels after every line, so that no arrow runs over a label's halo
    ...layout.routes.map(lineSvg),
    ...layout.routes.map(labelSvg),
    ...layout.nodes.map((n) => nodeSvg(n, reached)),
    "</svg>"
  ].join("")
}
