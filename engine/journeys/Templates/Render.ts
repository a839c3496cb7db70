import Handlebars from "handlebars"
import { Either } from "effect"
import type { TemplateContext, TemplateHelper } from "../../../schemas/TemplateContext.ts"

/**
 * Renders a template string the way validation assumed: Handlebars `strict: true` (a missing
 * variable is an error, never an empty hole) with the helpers TemplateContext documents.
 * HTML-escaped for email; SMS and WeChat text is sent as written.
 *
 * Each distinct template text is compiled once and kept (a template's text is its version: an
 * edited file compiles anew, unchanged ones are never compiled per send). The member-dependent
 * part of the helpers (locale, currency, timezone, tier names) arrives as Handlebars `data`.
 */

export interface RenderOptions {
  /** HTML-escape values (email bodies and subjects) */
  readonly escape: boolean
  /** ISO 4217, program.yaml's `currency` */
  readonly currency: string
  /** BCP 47, the member's locale */
  readonly locale: string
  /** IANA, the member's timezone: dates are shown as the member's calendar has them */
  readonly timeZone?: string
  /** tier id → display name (program.yaml) for `{{tierName x}}` */
  readonly tierNames?: Readonly<Record<string, string>>
}

interface HelperOptions {
  readonly data?: { readonly mf?: RenderOptions }
}

const optionsOf = (args: ReadonlyArray<unknown>): RenderOptions => {
  const last = args[args.length - 1] as HelperOptions | undefined
  const mf = last?.data?.mf
  return mf ?? { escape: false, currency: "CNY", locale: "zh-CN" }
}

const moneyFormats = new Map<string, Intl.NumberFormat>()
const money = (amount: number, options: RenderOptions): string => {
  const whole = Number.isInteger(amount)
  const key = `${options.locale}|${options.currency}|${whole}`
  let format = moneyFormats.get(key)
  if (format === undefined) {
    format = new Intl.NumberFormat(options.locale, {
      style: "currency",
      currency: options.currency,
      minimumFractionDigits: whole ? 0 : 2,
      maximumFractionDigits: whole ? 0 : 2
    })
    moneyFormats.set(key, format)
  }
  return format.format(amount)
}

const dateFormats = new Map<string, Intl.DateTimeFormat>()
const date = (value: unknown, options: RenderOptions): string => {
  // A bare calendar date (2025-12-31) is that day wherever the member is; a time is shown in theirs.
  const bare = typeof value === "string" && /^\d{4}-\d{2}-\d{2}$/.test(value)
  const time = typeof value === "number" ? value : Date.parse(String(value))
  if (!Number.isFinite(time)) return String(value ?? "")
  const timeZone = bare ? "UTC" : (options.timeZone ?? "UTC")
  const key = `${options.locale}|${timeZone}`
  let format = dateFormats.get(key)
  if (format === undefined) {
    format = new Intl.DateTimeFormat(options.locale, { dateStyle: "long", timeZone })
    dateFormats.set(key, format)
  }
  return format.format(time)
}

const pluralRules = new Map<string, Intl.PluralRules>()
const plural = (count: unknown, one: unknown, other: unknown, options: RenderOptions): string => {
  const n = typeof count === "number" ? count : Number(count)
  let rules = pluralRules.get(options.locale)
  if (rules === undefined) {
    rules = new Intl.PluralRules(options.locale)
    pluralRules.set(options.locale, rules)
  }
  // Chinese has one form: the rules say "other" for every count, so `other` is used.
  return Number.isFinite(n) && rules.select(n) === "one" ? String(one) : String(other)
}

const helpers: Record<TemplateHelper, (...args: Array<unknown>) => string> = {
  money: (value, ...rest) => {
    const amount = typeof value === "number" ? value : Number(value)
    return Number.isFinite(amount) ? money(amount, optionsOf(rest)) : String(value)
  },
  date: (value, ...rest) => date(value, optionsOf(rest)),
  tierName: (value, ...rest) => {
    const names = optionsOf(rest).tierNames ?? {}
    return names[String(value)] ?? String(value ?? "")
  },
  plural: (count, one, other, ...rest) => plural(count, one, other, optionsOf(rest))
}

const env = Handlebars.create()
for (const [name, helper] of Object.entries(helpers)) env.registerHelper(name, helper)

const compiled = new Map<string, Handlebars.TemplateDelegate>()
const MAX_COMPILED = 5_000

const compile = (text: string, escape: boolean): Handlebars.TemplateDelegate => {
  const key = `${escape ? "h" : "t"}${text}`
  let template = compiled.get(key)
  if (template === undefined) {
    if (compiled.size >= MAX_COMPILED) compiled.clear()
    template = env.compile(text, { strict: true, noEscape: !escape })
    compiled.set(key, template)
  }
  return template
}

/**
 * `"orderId" not defined in [object Object] - 1:4` → `missing variable "event.orderId" (line 1, column 5)`:
 * Handlebars names only the last part of the path; the position points at the whole of it.
 */
const explain = (message: string, text: string): string => {
  const missing = /^"([^"]+)" not defined in .*? - (\d+):(\d+)$/.exec(message)
  if (missing === null) return message
  const line = Number(missing[2])
  const column = Number(missing[3])
  const path = /^[\w.@-]+/.exec(text.split("\n")[line - 1]?.slice(column) ?? "")?.[0]
  const name = path !== undefined && path.endsWith(missing[1] ?? "") ? path : missing[1]
  return `missing variable "${name}" (line ${line}, column ${column + 1})`
}

/** Left: the rendering error naming the variable, nothing half-rendered. */
export const renderTemplate = (text: string, context: TemplateContext, options: RenderOptions): Either.Either<string, string> =>
  Either.try({
    try: () => compile(text, options.escape)(context, { data: { mf: options } }),
    catch: (cause) => explain(cause instanceof Error ? cause.message : String(cause), text)
  })
