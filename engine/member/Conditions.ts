import type { AttributeCondition, Condition, CountCondition, EventCondition } from "../../schemas/Condition.ts"
import type { MemberEvent } from "../../schemas/Event.ts"
import type { MemberContext, MemberState } from "./MemberState.ts"
import { attributeValue, consentOf, currentTags, pathValue } from "./MemberState/Reads.ts"

/** The condition language of journeys.md ("Conditions"), evaluated against a member's state. */

export interface EvalContext {
  readonly now: number
  readonly ctx: MemberContext
  /** The event that triggered the journey: `event.<property>` paths read it. */
  readonly triggerEvent?: MemberEvent
  /** When the member entered the journey: `since: entry` counts events strictly after it. */
  readonly enteredAt?: number
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

/** Every operator given must hold; no operator at all means "exists". */
export const compare = (value: unknown, ops: Omit<AttributeCondition, "attribute">): boolean => {
  let any = false
  const check = (holds: boolean): boolean => {
    any = true
    return holds
  }
  if (ops.eq !== undefined && !check(same(value, ops.eq))) return false
  if (ops.ne !== undefined && !check(!same(value, ops.ne))) return false
  if (ops.in !== undefined && !check(ops.in.some((o) => same(value, o)))) return false
  if (ops.notIn !== undefined && !check(!ops.notIn.some((o) => same(value, o)))) return false
  const ordered = (operand: number | string | undefined, holds: (c: number) => boolean): boolean => {
    if (operand === undefined) return true
    const c = order(value, operand)
    return check(c !== null && holds(c))
  }
  if (!ordered(ops.gt, (c) => c > 0)) return false
  if (!ordered(ops.gte, (c) => c >= 0)) return false
  if (!ordered(ops.lt, (c) => c < 0)) return false
  if (!ordered(ops.lte, (c) => c <= 0)) return false
  if (ops.exists !== undefined && !check(present(value) === ops.exists)) return false
  if (ops.contains !== undefined) {
    const needle = ops.contains
    const holds = Array.isArray(value)
      ? value.some((v) => same(v, needle))
      : typeof value === "string" && value.includes(String(needle))
    if (!check(holds)) return false
  }
  return any || present(value)
}

const OPERATORS = new Set(["eq", "ne", "in", "notIn", "gt", "gte", "lt", "lte", "exists", "contains"])

const isOperators = (value: unknown): value is Omit<AttributeCondition, "attribute"> =>
  typeof value === "object" && value !== null && !Array.isArray(value) &&
  Object.keys(value).length > 0 && Object.keys(value).every((k) => OPERATORS.has(k))

/**
 * `where` on event properties: each key (a dotted path) must match; a scalar means equal, a list
 * means one of, an object of operators (`{gte: 500}`) compares.
 */
export const matchesWhere = (properties: Readonly<Record<string, unknown>>, where: Readonly<Record<string, unknown>>): boolean =>
  Object.entries(where).every(([key, expected]) => {
    const value = pathValue(properties, key.split("."))
    if (Array.isArray(expected)) return expected.some((o) => same(value, o))
    if (isOperators(expected)) return compare(value, expected)
    return same(value, expected)
  })

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
  const types = typeof c.event === "string" ? [c.event] : c.event
  let after = -Infinity
  if (c.within !== undefined) after = Math.max(after, ec.now - c.within)
  if (c.since === "entry") after = Math.max(after, ec.enteredAt ?? ec.now)
  let n = 0
  for (const type of types) {
    const h = state.history[type]
    if (h === undefined) continue
    if (c.where !== undefined) {
      const where = c.where
      n += h.recent.filter((r) => r.at > after && matchesWhere(r.p, where)).length
    } else if (after === -Infinity) {
      n += h.n
    } else {
      n += h.at.filter((at) => at > after).length
    }
  }
  return n
}

const valueOf = (path: string, state: MemberState, ec: EvalContext): unknown => {
  if (path.startsWith("event.")) {
    const value = ec.triggerEvent === undefined ? undefined : pathValue(ec.triggerEvent.properties, path.slice(6).split("."))
    return value === undefined ? null : value
  }
  return attributeValue(state, path, ec.ctx, ec.now)
}

export const evaluate = (cond: Condition, state: MemberState, ec: EvalContext): boolean => {
  if ("all" in cond) return cond.all.every((c) => evaluate(c, state, ec))
  if ("any" in cond) return cond.any.some((c) => evaluate(c, state, ec))
  if ("not" in cond) return !evaluate(cond.not, state, ec)
  if ("attribute" in cond) {
    const { attribute, ...ops } = cond
    return compare(valueOf(attribute, state, ec), ops)
  }
  if ("tag" in cond) return currentTags(state).includes(cond.tag)
  if ("consent" in cond) {
    return cond.consent === "any"
      ? consentOf(state, "sms") || consentOf(state, "email") || consentOf(state, "wechat")
      : consentOf(state, cond.consent)
  }
  return countHolds(countEvents(cond, state, ec), cond.count)
}
