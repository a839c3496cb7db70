import type { AttributeCondition, Condition, CountCondition, EventCondition } from "../../schemas/Condition.ts"
import type { MemberEvent } from "../../schemas/Event.ts"
import type { MemberContext, MemberState } from "./MemberState.ts"
import { attributeValueWith, consentOf, hasTag, type OrderFigures, pathValue } from "./MemberState/Reads.ts"
import { recentEntries } from "./MemberState/Compact.ts"

/** The condition language of journeys.md ("Conditions"), evaluated against a member's state. */

export interface EvalContext {
  readonly now: number
  readonly ctx: MemberContext
  /** The event that triggered the journey: `event.<property>` paths read it. */
  readonly triggerEvent?: MemberEvent
  /** When the member entered the journey: `since: entry` counts events strictly after it. */
  readonly enteredAt?: number
  /** orderFigures at `now` (made on first use), when the orders do not change while evaluating. */
  readonly figures?: () => OrderFigures
}

/** A number, or a string that reads as a number or a date (then epoch ms). */
const asNumber = (value: unknown): number | null => {
  if (typeof value === "number") return Number.isFinite(value) ? value : null
  if (typeof value !== "string" || value.trim() === "") return null
  const n = Number(value)
  if (Number.isFinite(n)) return n
  const ms = Date.parse(value)
  return Number.isNaN(ms) ? null : ms
}

/**
 * Order of a value against an operand: numbers (and epoch-ms times against date strings)
 * numerically, two strings lexically (ISO dates, `MM-DD`); null when they cannot be ordered.
 */
const order = (value: unknown, operand: unknown): number | null => {
  if (typeof value === "string" && typeof operand === "string") return value < operand ? -1 : value > operand ? 1 : 0
  const a = asNumber(value)
  const b = asNumber(operand)
  return a === null || b === null ? null : a - b
}

const same = (value: unknown, operand: unknown): boolean =>
  value === operand || (typeof value === "number" && typeof operand === "string" && asNumber(operand) === value)

const present = (value: unknown): boolean => value !== undefined && value !== null

const sameAsOneOf = (value: unknown, operands: ReadonlyArray<unknown>): boolean => {
  for (const operand of operands) if (same(value, operand)) return true
  return false
}

/**
 * Every operator given must hold; no operator at all means "exists". Plain branches, no closures:
 * conditions are evaluated for every member on every event.
 */
export const compare = (value: unknown, ops: Omit<AttributeCondition, "attribute">): boolean => {
  let any = false
  if (ops.eq !== undefined) {
    any = true
    if (!same(value, ops.eq)) return false
  }
  if (ops.ne !== undefined) {
    any = true
    if (same(value, ops.ne)) return false
  }
  if (ops.in !== undefined) {
    any = true
    if (!sameAsOneOf(value, ops.in)) return false
  }
  if (ops.notIn !== undefined) {
    any = true
    if (sameAsOneOf(value, ops.notIn)) return false
  }
  if (ops.gt !== undefined) {
    any = true
    const c = order(value, ops.gt)
    if (c === null || !(c > 0)) return false
  }
  if (ops.gte !== undefined) {
    any = true
    const c = order(value, ops.gte)
    if (c === null || !(c >= 0)) return false
  }
  if (ops.lt !== undefined) {
    any = true
    const c = order(value, ops.lt)
    if (c === null || !(c < 0)) return false
  }
  if (ops.lte !== undefined) {
    any = true
    const c = order(value, ops.lte)
    if (c === null || !(c <= 0)) return false
  }
  if (ops.exists !== undefined) {
    any = true
    if (present(value) !== ops.exists) return false
  }
  if (ops.contains !== undefined) {
    any = true
    const needle = ops.contains
    if (Array.isArray(value)) {
      let holds = false
      for (const item of value) {
        if (same(item, needle)) {
          holds = true
          break
        }
      }
      if (!holds) return false
    } else if (typeof value !== "string" || !value.includes(String(needle))) {
      return false
    }
  }
  return any || present(value)
}

const OPERATORS = new Set(["eq", "ne", "in", "notIn", "gt", "gte", "lt", "lte", "exists", "contains"])

const isOperators = (value: unknown): value is Omit<AttributeCondition, "attribute"> => {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return false
  const keys = Object.keys(value)
  return keys.length > 0 && keys.every((k) => OPERATORS.has(k))
}

/** The value at a `where` key: a dotted path, read without splitting when it has no dot. */
const valueAtKey = (properties: Readonly<Record<string, unknown>>, key: string): unknown =>
  key.includes(".")
    ? pathValue(properties, key.split("."))
    : typeof properties !== "object" || properties === null || !Object.hasOwn(properties, key)
      ? undefined
      : properties[key]

/**
 * `where` on event properties: each key (a dotted path) must match; a scalar means equal, a list
 * means one of, an object of operators (`{gte: 500}`) compares.
 */
export const matchesWhere = (properties: Readonly<Record<string, unknown>>, where: Readonly<Record<string, unknown>>): boolean => {
  for (const key of Object.keys(where)) {
    const expected = where[key]
    const value = valueAtKey(properties, key)
    const holds = Array.isArray(expected) ? sameAsOneOf(value, expected) : isOperators(expected) ? compare(value, expected) : same(value, expected)
    if (!holds) return false
  }
  return true
}

export const countHolds = (n: number, count: CountCondition | undefined): boolean => {
  if (count === undefined) return n >= 1
  return (
    (count.eq === undefined || n === count.eq) &&
    (count.ne === undefined || n !== count.ne) &&
    (count.gt === undefined || n > count.gt) &&
    (count.gte === undefined || n >= count.gte) &&
    (count.lt === undefined || n < count.lt) &&
    (count.lte === undefined || n <= count.lte)
  )
}

/**
 * How many of the member's events match. Without `where` it counts kept event times (exact up to
 * 500 per type inside a window, the lifetime count without one); with `where` it looks at the
 * latest 20 events of each type, whose properties are kept.
 */
export const countEvents = (c: EventCondition, state: MemberState, ec: EvalContext): number => {
  let after = -Infinity
  if (c.within !== undefined) after = Math.max(after, ec.now - c.within)
  if (c.since === "entry") after = Math.max(after, ec.enteredAt ?? ec.now)
  if (typeof c.event === "string") return countOfType(c, state, c.event, after)
  let n = 0
  for (const type of c.event) n += countOfType(c, state, type, after)
  return n
}

const countOfType = (c: EventCondition, state: MemberState, type: string, after: number): number => {
  const h = state.history[type]
  if (h === undefined) return 0
  let n = 0
  if (c.where !== undefined) {
    // recent's k-th entry is the event of the time at the same place from the end of `at`
    const recent = recentEntries(h.recent)
    const kept = h.at.length - recent.length
    for (let k = 0; k < recent.length; k++) {
      if ((h.at[kept + k] ?? -Infinity) > after && matchesWhere(JSON.parse(recent[k]!) as Record<string, unknown>, c.where)) n++
    }
  } else if (after === -Infinity) {
    n = h.n
  } else {
    for (const at of h.at) if (at > after) n++
  }
  return n
}

const valueOf = (path: string, state: MemberState, ec: EvalContext): unknown => {
  if (path.startsWith("event.")) {
    const value = ec.triggerEvent === undefined ? undefined : pathValue(ec.triggerEvent.properties, path.slice(6).split("."))
    return value === undefined ? null : value
  }
  return attributeValueWith(state, path, ec.ctx, ec.now, ec.figures)
}

export const evaluate = (cond: Condition, state: MemberState, ec: EvalContext): boolean => {
  // loops, not every/some: no closure per condition evaluated
  if ("all" in cond) {
    for (const c of cond.all) if (!evaluate(c, state, ec)) return false
    return true
  }
  if ("any" in cond) {
    for (const c of cond.any) if (evaluate(c, state, ec)) return true
    return false
  }
  if ("not" in cond) return !evaluate(cond.not, state, ec)
  // compare reads only the operators: the condition itself is passed, not a copy without `attribute`.
  if ("attribute" in cond) return compare(valueOf(cond.attribute, state, ec), cond)
  if ("tag" in cond) return hasTag(state, cond.tag)
  if ("consent" in cond) {
    return cond.consent === "any"
      ? consentOf(state, "sms") || consentOf(state, "email") || consentOf(state, "wechat")
      : consentOf(state, cond.consent)
  }
  return countHolds(countEvents(cond, state, ec), cond.count)
}
