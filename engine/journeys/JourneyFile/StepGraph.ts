import type { SourceIssue } from "../../../schemas/ProgramErrors.ts"
import type { Step } from "../../../schemas/Journey.ts"
import type { Anchor, YamlPath } from "../../program/YamlDocument.ts"
import { closest } from "../../program/YamlDocument/Suggest.ts"

/**
 * The steps as a graph: ids unique, every jump lands on a step, every step can be reached from the
 * first, and no loop can spin without a wait. Steps run in order; `goto`, `exit`, a `split`, a
 * `branch` with an `else` and a wait for an event end the fall-through; a step with `when` may be
 * skipped, so it also falls through to the next.
 */

export type At = (path: YamlPath, message: string, anchor?: Anchor) => SourceIssue

interface Jump {
  readonly path: YamlPath
  readonly target: string
}

/** Where a step can jump, with the YAML path of each target. */
export const jumpsOf = (step: Step, i: number): Array<Jump> => {
  const base = ["steps", i]
  if ("goto" in step) return [{ path: [...base, "goto"], target: step.goto }]
  if ("branch" in step) return step.branch.map((arm, k) => ({ path: [...base, "branch", k, "goto"], target: arm.goto }))
  if ("split" in step) return step.split.map((arm, k) => ({ path: [...base, "split", k, "goto"], target: arm.goto }))
  if ("wait" in step && typeof step.wait === "object" && "event" in step.wait) {
    return [
      { path: [...base, "wait", "onEvent"], target: step.wait.onEvent },
      { path: [...base, "wait", "onTimeout"], target: step.wait.onTimeout }
    ]
  }
  return []
}

const fallsThrough = (step: Step): boolean => {
  if (step.when !== undefined) return true
  if ("exit" in step || "goto" in step || "split" in step) return false
  if ("branch" in step) return !step.branch.some((arm) => "else" in arm)
  if ("wait" in step) return !(typeof step.wait === "object" && "event" in step.wait)
  return true
}

export const checkStepGraph = (steps: ReadonlyArray<Step>, at: At): Array<SourceIssue> => {
  const issues: Array<SourceIssue> = []
  const indexOf = new Map<string, number>()
  steps.forEach((step, i) => {
    const first = indexOf.get(step.id)
    if (first === undefined) indexOf.set(step.id, i)
    else issues.push(at(["steps", i, "id"], `duplicate step id "${step.id}" (first at line ${at(["steps", first, "id"], "").line})`))
  })
  const ids = [...indexOf.keys()]
  // a typo'd jump also leaves its intended target unreached: the "did you mean" already says so
  const explained = new Set<string>()
  steps.forEach((step, i) => {
    for (const jump of jumpsOf(step, i)) {
      if (indexOf.has(jump.target)) continue
      const hint = closest(jump.target, ids)
      if (hint !== undefined) explained.add(hint)
      issues.push(at(jump.path, `no step "${jump.target}" to go to${hint === undefined ? `; steps: ${ids.join(", ")}` : ` (did you mean "${hint}"?)`}`))
    }
  })
  const next = (i: number): Array<number> => {
    const step = steps[i]
    if (step === undefined) return []
    const targets = jumpsOf(step, i).flatMap((jump) => {
      const target = indexOf.get(jump.target)
      return target === undefined ? [] : [target]
    })
    return fallsThrough(step) && i + 1 < steps.length ? [...targets, i + 1] : targets
  }
  const reached = new Set<number>([0])
  const queue = [0]
  for (let i = queue.shift(); i !== undefined; i = queue.shift()) {
    for (const n of next(i)) {
      if (!reached.has(n)) {
        reached.add(n)
        queue.push(n)
      }
    }
  }
  steps.forEach((step, i) => {
    if (reached.has(i) || explained.has(step.id) || indexOf.get(step.id) !== i) return
    issues.push(at(["steps", i, "id"], `step "${step.id}" is never reached: no step before it falls through, jumps or branches to it`))
  })
  issues.push(...loopsWithoutWait(steps, reached, next, at))
  return issues
}

/** A cycle through steps none of which waits would run forever (and send without end) in one instant. */
const loopsWithoutWait = (
  steps: ReadonlyArray<Step>,
  reached: ReadonlySet<number>,
  next: (i: number) => Array<number>,
  at: At
): Array<SourceIssue> => {
  const waits = (i: number) => {
    const step = steps[i]
    return step !== undefined && "wait" in step
  }
  const state = new Map<number, "open" | "done">()
  const stack: Array<number> = []
  const issues: Array<SourceIssue> = []
  const visit = (i: number): void => {
    state.set(i, "open")
    stack.push(i)
    for (const n of next(i)) {
      if (waits(n)) continue
      if (state.get(n) === "open") {
        const cycle = stack.slice(stack.indexOf(n)).map((k) => `"${steps[k]?.id ?? ""}"`)
        issues.push(at(["steps", i], `steps ${[...cycle, `"${steps[n]?.id ?? ""}"`].join(" → ")} loop without a wait: a member would go round forever`, "node"))
      } else if (!state.has(n)) {
        visit(n)
      }
    }
    stack.pop()
    state.set(i, "done")
  }
  for (const i of reached) if (!waits(i) && !state.has(i)) visit(i)
  return issues
}
