import type { Journey, Step } from "../../../schemas/Journey.ts"
import { actionOf } from "../../../schemas/Journey.ts"
import { conditionText, durationText, triggerText, waitText } from "../Describe.ts"

/**
 * A journey as boxes and arrows, following the runtime's rules (Machine/Steps.ts, and
 * JourneyFile/StepGraph.ts which checks them): steps run in file order; `branch`, `split`, `goto`
 * and a wait for an event jump; `exit` ends; falling off the last step ends too; a step with
 * `when` may be skipped, so it also falls through to the next.
 */

export type NodeKind = "trigger" | "send" | "wait" | "branch" | "split" | "tag" | "emit" | "goto" | "exit" | "end"

export interface FlowNode {
  /** `trigger`, `end`, or `step:<id>` */
  readonly key: string
  readonly kind: NodeKind
  /** the step id, or a word for trigger/end */
  readonly title: string
  readonly lines: ReadonlyArray<string>
  /** file order: trigger 0, steps 1…n, end n+1; an edge to an earlier (or the same) node goes back */
  readonly order: number
}

export interface FlowEdge {
  readonly from: string
  readonly to: string
  readonly label: string | undefined
}

export interface FlowGraph {
  readonly nodes: ReadonlyArray<FlowNode>
  readonly edges: ReadonlyArray<FlowEdge>
}

export const TRIGGER = "trigger"
export const END = "end"
export const stepKey = (id: string): string => `step:${id}`

const stepLines = (step: Step): Array<string> => {
  const when = step.when === undefined ? [] : [`only if ${conditionText(step.when)}`]
  if ("send" in step) {
    const send = step.send
    const variants = Object.entries(send.variant ?? {}).map(([variant, o]) => `${variant}: ${o.template}`)
    return [
      `${send.channel} · ${send.template}`,
      ...(send.fallback.length === 0 ? [] : [`fallback ${send.fallback.join(" → ")}`]),
      ...(variants.length === 0 ? [] : [`variant ${variants.join(", ")}`]),
      ...when
    ]
  }
  if ("wait" in step) return [waitText(step.wait), ...when]
  if ("tag" in step) {
    const changes = [...step.tag.add.map((t) => `+${t}`), ...step.tag.remove.map((t) => `−${t}`)]
    return [`tags ${changes.join(" ")}`, ...when]
  }
  if ("emit" in step) {
    const properties = Object.entries(step.emit.properties ?? {}).map(([k, v]) => `${k}: ${typeof v === "string" ? v : JSON.stringify(v)}`)
    return [`emit ${step.emit.type}`, ...(properties.length === 0 ? [] : [properties.join(", ")]), ...when]
  }
  if ("branch" in step) return [`first match of ${step.branch.length}`, ...when]
  if ("split" in step) return [`random, sticky per member`, ...when]
  if ("goto" in step) return [`goto ${step.goto}`, ...when]
  return ["leaves the journey", ...when]
}

const percentOf = (weight: number, total: number): string => `${Number(((weight / total) * 100).toFixed(1))}%`

/** Where a step goes next, each arm with its label (a condition, a weight, an outcome). */
const stepEdges = (step: Step, next: string): Array<FlowEdge> => {
  const from = stepKey(step.id)
  const to = (id: string) => stepKey(id)
  const skipped: Array<FlowEdge> = step.when === undefined ? [] : [{ from, to: next, label: "skipped" }]
  if ("branch" in step) {
    const arms: Array<FlowEdge> = step.branch.map((arm) => ({ from, to: to(arm.goto), label: "else" in arm ? "otherwise" : conditionText(arm.when) }))
    const fallThrough: Array<FlowEdge> = step.branch.some((arm) => "else" in arm) ? skipped : [{ from, to: next, label: step.when === undefined ? "no match" : "no match / skipped" }]
    return [...arms, ...fallThrough]
  }
  if ("split" in step) {
    const total = step.split.reduce((sum, arm) => sum + arm.weight, 0)
    return [...step.split.map((arm) => ({ from, to: to(arm.goto), label: percentOf(arm.weight, total) })), ...skipped]
  }
  if ("goto" in step) return [{ from, to: to(step.goto), label: undefined }, ...skipped]
  if ("exit" in step) return skipped
  if ("wait" in step && typeof step.wait === "object" && "event" in step.wait) {
    return [
      { from, to: to(step.wait.onEvent), label: step.wait.event },
      { from, to: to(step.wait.onTimeout), label: `after ${durationText(step.wait.timeout)}` },
      ...skipped
    ]
  }
  return [{ from, to: next, label: undefined }]
}

/** Two arms to the same step become one arrow with both labels. */
const mergeEdges = (edges: ReadonlyArray<FlowEdge>): Array<FlowEdge> => {
  const merged = new Map<string, FlowEdge>()
  for (const edge of edges) {
    const id = `${edge.from}\u0000${edge.to}`
    const seen = merged.get(id)
    const label = seen === undefined ? edge.label : [seen.label, edge.label].filter((l) => l !== undefined).join(" / ") || undefined
    merged.set(id, { from: edge.from, to: edge.to, label })
  }
  return [...merged.values()]
}

export const flowGraph = (journey: Journey): FlowGraph => {
  const steps = journey.steps
  const first = steps[0]
  const edges: Array<FlowEdge> = first === undefined ? [] : [{ from: TRIGGER, to: stepKey(first.id), label: undefined }]
  steps.forEach((step, i) => {
    const following = steps[i + 1]
    edges.push(...stepEdges(step, following === undefined ? END : stepKey(following.id)))
  })
  const nodes: Array<FlowNode> = [
    { key: TRIGGER, kind: "trigger", title: "trigger", lines: [triggerText(journey.trigger), ...(journey.audience === undefined ? [] : [`audience: ${conditionText(journey.audience)}`])], order: 0 },
    ...steps.map((step, i): FlowNode => ({ key: stepKey(step.id), kind: actionOf(step), title: step.id, lines: stepLines(step), order: i + 1 }))
  ]
  const known = new Set(nodes.map((n) => n.key))
  // validation guarantees the targets; an unknown one (never from a valid file) is simply not drawn
  const drawn = mergeEdges(edges).filter((e) => known.has(e.from) && (known.has(e.to) || e.to === END))
  if (drawn.some((e) => e.to === END)) nodes.push({ key: END, kind: "end", title: "end", lines: ["completed"], order: steps.length + 1 })
  return { nodes, edges: drawn }
}

/** Whether some arrow jumps back to an earlier step (drawn in a side lane). */
export const jumpsBack = (graph: FlowGraph): boolean => {
  const order = new Map(graph.nodes.map((n) => [n.key, n.order]))
  return graph.edges.some((e) => (order.get(e.to) ?? 0) <= (order.get(e.from) ?? 0))
}
