import type { FlowEdge, FlowGraph, FlowNode } from "./Graph.ts"

/**
 * A small layered ("Sugiyama") layout, top to bottom:
 * 1. edges to a later node in file order go down, edges back up (a `goto` to an earlier step) are
 *    drawn separately in a side lane, which breaks every cycle;
 * 2. layer = the longest path from the trigger over the downward edges;
 * 3. an edge that skips layers gets a thin placeholder in each layer it crosses, so it runs in its
 *    own lane instead of through the boxes in between;
 * 4. within a layer, items are ordered by the mean position of what points at them (file order on
 *    ties), then placed as close above their real predecessors as the row allows. The main path
 *    stays a straight column on the left; alternatives step out to the right.
 */

export interface Point {
  readonly x: number
  readonly y: number
}

export interface Size {
  readonly width: number
  readonly height: number
}

export interface PlacedNode {
  readonly node: FlowNode
  /** centre */
  readonly x: number
  /** top */
  readonly y: number
  readonly width: number
  readonly height: number
  readonly layer: number
}

export interface Route {
  readonly edge: FlowEdge
  /** downward: start, then each placeholder's top and bottom, then the end (a curve between each pair); back: a polyline */
  readonly points: ReadonlyArray<Point>
  readonly back: boolean
  readonly label: { readonly x: number; readonly y: number; readonly anchor: "start" | "end"; readonly maxWidth: number } | undefined
}

export interface Layout {
  readonly nodes: ReadonlyArray<PlacedNode>
  readonly routes: ReadonlyArray<Route>
  readonly width: number
  readonly height: number
}

const GAP_X = 48
const GAP_Y = 64
const LANE = 12
const LANE_GAP = 28
const LANE_STEP = 18
const MARGIN = 16
const LABEL_WIDTH = 190

interface Item {
  readonly key: string
  readonly width: number
  /** real nodes: the node; placeholders: undefined */
  readonly node: FlowNode | undefined
  readonly preds: Array<Item>
  order: number
  x: number
}

/** A label beside the first curve of a downward route, at `t` along it. */
const labelOn = (edge: FlowEdge, points: ReadonlyArray<Point>, t: number): Route["label"] => {
  const [start, next] = points
  if (edge.label === undefined || start === undefined || next === undefined) return undefined
  const at = bezier(start, next, t)
  return { x: at.x + 6, y: at.y + 4, anchor: "start", maxWidth: LABEL_WIDTH }
}

const bezier = (p: Point, q: Point, t: number): Point => {
  // control points straight below p and above q, halfway: what the renderer draws
  const my = (p.y + q.y) / 2
  const u = 1 - t
  return {
    x: u * u * u * p.x + 3 * u * u * t * p.x + 3 * u * t * t * q.x + t * t * t * q.x,
    y: u * u * u * p.y + 3 * u * u * t * my + 3 * u * t * t * my + t * t * t * q.y
  }
}

export const layoutGraph = (graph: FlowGraph, sizeOf: (node: FlowNode) => Size, labelWidth: (text: string) => number): Layout => {
  const byKey = new Map(graph.nodes.map((n) => [n.key, n]))
  const orderOf = (key: string) => byKey.get(key)?.order ?? 0
  const down = graph.edges.filter((e) => orderOf(e.to) > orderOf(e.from))
  const back = graph.edges.filter((e) => orderOf(e.to) <= orderOf(e.from))

  // 2. layers
  const layerOf = new Map<string, number>()
  const sorted = [...graph.nodes].sort((a, b) => a.order - b.order)
  let previous = -1
  for (const node of sorted) {
    const preds = down.filter((e) => e.to === node.key).map((e) => layerOf.get(e.from) ?? 0)
    const layer = preds.length > 0 ? Math.max(...preds) + 1 : previous + 1
    layerOf.set(node.key, layer)
    previous = layer
  }
  const layerCount = Math.max(0, ...layerOf.values()) + 1

  // 3. items per layer, placeholders for long edges
  const layers: Array<Array<Item>> = Array.from({ length: layerCount }, () => [])
  const itemOf = new Map<string, Item>()
  for (const node of sorted) {
    const item: Item = { key: node.key, width: sizeOf(node).width, node, preds: [], order: 0, x: 0 }
    itemOf.set(node.key, item)
    layers[layerOf.get(node.key) ?? 0]?.push(item)
  }
  const chains = down.map((edge, i) => {
    const from = layerOf.get(edge.from) ?? 0
    const to = layerOf.get(edge.to) ?? 0
    const chain: Array<Item> = [itemOf.get(edge.from)].filter((x) => x !== undefined)
    for (let layer = from + 1; layer < to; layer++) {
      const dummy: Item = { key: `dummy:${i}:${layer}`, width: LANE, node: undefined, preds: [], order: 0, x: 0 }
      layers[layer]?.push(dummy)
      chain.push(dummy)
    }
    const target = itemOf.get(edge.to)
    if (target !== undefined) chain.push(target)
    for (let k = 1; k < chain.length; k++) chain[k]?.preds.push(chain[k - 1] as Item)
    return { edge, chain }
  })

  // 4. order (barycentre of predecessors, stable) and place
  layers.forEach((items) => items.forEach((item, i) => (item.order = i)))
  for (const items of layers.slice(1)) {
    const bary = (item: Item) => (item.preds.length === 0 ? item.order : item.preds.reduce((s, p) => s + p.order, 0) / item.preds.length)
    const ranked = items.map((item) => ({ item, bary: bary(item) })).sort((a, b) => a.bary - b.bary || a.item.order - b.item.order)
    items.splice(0, items.length, ...ranked.map((r) => r.item))
    items.forEach((item, i) => (item.order = i))
  }
  for (const items of layers) {
    let right = Number.NEGATIVE_INFINITY
    let lastWasNode = false
    for (const item of items) {
      const real = item.preds.filter((p) => p.node !== undefined)
      const anchors = real.length > 0 ? real : item.preds
      const desired = anchors.length === 0 ? 0 : anchors.reduce((s, p) => s + p.x, 0) / anchors.length
      const gap = lastWasNode && item.node !== undefined ? GAP_X : GAP_X / 2
      item.x = Math.max(desired, right === Number.NEGATIVE_INFINITY ? desired : right + gap + item.width / 2)
      right = item.x + item.width / 2
      lastWasNode = item.node !== undefined
    }
  }

  // vertical positions: each layer as tall as its tallest box
  const tops: Array<number> = []
  const heights: Array<number> = []
  let y = MARGIN
  for (const items of layers) {
    const h = Math.max(20, ...items.flatMap((item) => (item.node === undefined ? [] : [sizeOf(item.node).height])))
    tops.push(y)
    heights.push(h)
    y += h + GAP_Y
  }
  const placed = new Map<string, PlacedNode>()
  layers.forEach((items, layer) => {
    for (const item of items) {
      if (item.node === undefined) continue
      const size = sizeOf(item.node)
      placed.set(item.key, { node: item.node, x: item.x, y: tops[layer] ?? 0, width: size.width, height: size.height, layer })
    }
  })

  // downward routes: spread several arrows over a box's bottom (out) and top (in)
  const spread = (count: number, index: number, width: number) => (count <= 1 ? 0 : (index - (count - 1) / 2) * Math.min(16, (width - 24) / (count - 1)))
  const outOrder = (key: string) => chains.filter((c) => c.edge.from === key).sort((a, b) => (a.chain[1]?.x ?? 0) - (b.chain[1]?.x ?? 0))
  const inOrder = (key: string) => chains.filter((c) => c.edge.to === key).sort((a, b) => (a.chain.at(-2)?.x ?? 0) - (b.chain.at(-2)?.x ?? 0))
  const downward: Array<Route> = chains.map(({ edge, chain }) => {
    const from = placed.get(edge.from)
    const to = placed.get(edge.to)
    if (from === undefined || to === undefined) return { edge, points: [], back: false, label: undefined }
    const outs = outOrder(edge.from)
    const ins = inOrder(edge.to)
    const start = { x: from.x + spread(outs.length, outs.findIndex((c) => c.edge === edge), from.width), y: from.y + from.height }
    const end = { x: to.x + spread(ins.length, ins.findIndex((c) => c.edge === edge), to.width), y: to.y }
    const middle = chain.slice(1, -1).flatMap((dummy, k) => {
      const layer = from.layer + 1 + k
      return [{ x: dummy.x, y: tops[layer] ?? 0 }, { x: dummy.x, y: (tops[layer] ?? 0) + (heights[layer] ?? 0) }]
    })
    const points = [start, ...middle, end]
    return { edge, points, back: false, label: labelOn(edge, points, 0.62) }
  })
  // several labelled arrows leaving one box: their labels step up from left to right (the left one
  // low, where the arrows to its right have already turned away), so each can run its full width
  const along = new Map<Route, number>()
  for (const key of new Set(downward.map((r) => r.edge.from))) {
    const labelled = downward.filter((r) => r.edge.from === key && r.label !== undefined).sort((a, b) => (a.label?.x ?? 0) - (b.label?.x ?? 0))
    if (labelled.length > 1) labelled.forEach((route, i) => along.set(route, 0.74 - (0.46 * i) / (labelled.length - 1)))
  }
  const routes: Array<Route> = downward.map((r) => {
    const t = along.get(r)
    return t === undefined ? r : { ...r, label: labelOn(r.edge, r.points, t) }
  })

  // back edges: a lane on the left when both ends are first in their rows, else on the right
  const all = [...placed.values()]
  const minLeft = Math.min(...all.map((n) => n.x - n.width / 2))
  const maxRight = Math.max(...all.map((n) => n.x + n.width / 2), ...layers.flat().map((item) => item.x + item.width / 2))
  const firstInRow = (n: PlacedNode) => layers[n.layer]?.[0]?.key === n.node.key
  let left = 0
  let right = 0
  for (const edge of back) {
    const from = placed.get(edge.from)
    const to = placed.get(edge.to)
    if (from === undefined || to === undefined) continue
    const onLeft = firstInRow(from) && firstInRow(to)
    const lane = onLeft ? minLeft - LANE_GAP - LANE_STEP * left++ : maxRight + LANE_GAP + LANE_STEP * right++
    const side = (n: PlacedNode) => (onLeft ? n.x - n.width / 2 : n.x + n.width / 2)
    const yFrom = from.y + from.height / 2 + 6
    const yTo = to.y + to.height / 2 - 6
    routes.push({
      edge,
      points: [{ x: side(from), y: yFrom }, { x: lane, y: yFrom }, { x: lane, y: yTo }, { x: side(to), y: yTo }],
      back: true,
      label: { x: onLeft ? lane - 5 : lane + 5, y: (yFrom + yTo) / 2, anchor: onLeft ? "end" : "start", maxWidth: LABEL_WIDTH / 1.5 }
    })
  }

  // the bounding box of boxes, lanes and labels, then everything shifted to start at the margin
  const xs: Array<number> = []
  for (const n of all) xs.push(n.x - n.width / 2, n.x + n.width / 2)
  for (const r of routes) {
    for (const p of r.points) xs.push(p.x)
    if (r.label !== undefined && r.edge.label !== undefined) {
      const w = Math.min(r.label.maxWidth, labelWidth(r.back ? `goto · ${r.edge.label}` : r.edge.label))
      xs.push(r.label.anchor === "start" ? r.label.x + w : r.label.x - w)
    } else if (r.back && r.label !== undefined) {
      xs.push(r.label.anchor === "start" ? r.label.x + labelWidth("goto") : r.label.x - labelWidth("goto"))
    }
  }
  const shift = MARGIN - Math.min(...xs)
  const move = (p: Point): Point => ({ x: p.x + shift, y: p.y })
  return {
    nodes: all.map((n) => ({ ...n, x: n.x + shift })),
    routes: routes.map((r) => ({ ...r, points: r.points.map(move), label: r.label === undefined ? undefined : { ...r.label, x: r.label.x + shift } })),
    width: Math.max(...xs) + shift + MARGIN,
    height: y - GAP_Y + MARGIN
  }
}
