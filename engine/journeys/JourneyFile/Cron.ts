import { Either } from "effect"

/**
 * Standard five-field cron (`minute hour day-of-month month day-of-week`), as `schedule` triggers
 * use it: `*`, numbers, ranges `a-b`, steps `*\/n` and `a-b/n`, lists `a,b`, month names JAN–DEC
 * and day names SUN–SAT (0 and 7 are both Sunday). No seconds field, no `@daily` macros, no `L`/`W`/`#`:
 * small enough to check here without a dependency, and what every scheduler agrees on.
 */

interface Field {
  readonly name: string
  readonly min: number
  readonly max: number
  readonly names?: ReadonlyArray<string>
}

const FIELDS: ReadonlyArray<Field> = [
  { name: "minute", min: 0, max: 59 },
  { name: "hour", min: 0, max: 23 },
  { name: "day of month", min: 1, max: 31 },
  { name: "month", min: 1, max: 12, names: ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"] },
  { name: "day of week", min: 0, max: 7, names: ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"] }
]

/** Right: the expression is valid; Left: why not, naming the field. */
export const checkCron = (expression: string): Either.Either<void, string> => {
  const parts = expression.trim().split(/\s+/).filter((p) => p.length > 0)
  if (parts.length !== FIELDS.length) {
    return Either.left(`cron "${expression}" has ${parts.length} fields; expected 5: minute hour day-of-month month day-of-week (e.g. "0 10 * * 1")`)
  }
  for (const [i, field] of FIELDS.entries()) {
    const problem = checkField(parts[i] ?? "", field)
    if (problem !== undefined) return Either.left(`cron "${expression}": ${field.name} ${problem}`)
  }
  return Either.right(undefined)
}

const checkField = (text: string, field: Field): string | undefined => {
  for (const item of text.split(",")) {
    const problem = checkItem(item, field)
    if (problem !== undefined) return problem
  }
  return undefined
}

const checkItem = (item: string, field: Field): string | undefined => {
  const [range = "", step, extra] = item.split("/")
  if (extra !== undefined) return `"${item}" has more than one "/"`
  if (step !== undefined && !/^\d+$/.test(step)) return `"${item}": the step after "/" must be a number`
  if (step !== undefined && Number(step) === 0) return `"${item}": a step of 0 never advances`
  if (range === "*") return undefined
  const bounds = range.split("-")
  if (bounds.length > 2) return `"${item}" is not a value, a range a-b or *`
  const values: Array<number> = []
  for (const bound of bounds) {
    const value = valueOf(bound, field)
    if (value === undefined) {
      return `"${bound}" is not ${field.names === undefined ? "a number" : `a number or a name (${field.names.join(" ")})`}`
    }
    if (value < field.min || value > field.max) return `${value} is out of range ${field.min}-${field.max}`
    values.push(value)
  }
  const [from, to] = values
  if (from !== undefined && to !== undefined && from > to) return `range "${range}" runs backwards`
  return undefined
}

const valueOf = (text: string, field: Field): number | undefined => {
  if (/^\d+$/.test(text)) return Number(text)
  const index = field.names?.indexOf(text.toUpperCase()) ?? -1
  if (index < 0) return undefined
  return field.name === "month" ? index + 1 : index
}
