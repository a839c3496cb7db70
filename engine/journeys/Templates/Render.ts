import Handlebars from "handlebars"
import { Either } from "effect"
import type { TemplateContext, TemplateHelper } from "../../../schemas/TemplateContext.ts"

/**
 * Renders a template string the way validation assumed: Handlebars `strict: true` (a missing
 * variable is an error, never an empty hole) with the helpers TemplateContext documents.
 * HTML-escaped for email; SMS and WeChat text is sent as written.
 */

export interface RenderOptions {
  /** HTML-escape values (email bodies and subjects) */
  readonly escape: boolean
  /** ISO 4217, program.yaml's `currency` */
  readonly currency: string
  /** BCP 47, the member's locale */
  readonly locale: string
}

const environment = (options: RenderOptions): typeof Handlebars => {
  const env = Handlebars.create()
  const helpers: Record<TemplateHelper, (value: unknown) => string> = {
    money: (value) => {
      const amount = typeof value === "number" ? value : Number(value)
      if (!Number.isFinite(amount)) return String(value)
      return new Intl.NumberFormat(options.locale, {
        style: "currency",
        currency: options.currency,
        maximumFractionDigits: Number.isInteger(amount) ? 0 : 2
      }).format(amount)
    },
    date: (value) => {
      const time = typeof value === "number" ? value : Date.parse(String(value))
      if (!Number.isFinite(time)) return String(value ?? "")
      return new Intl.DateTimeFormat(options.locale, { dateStyle: "long", timeZone: "UTC" }).format(time)
    }
  }
  for (const [name, helper] of Object.entries(helpers)) env.registerHelper(name, helper)
  return env
}

/** Left: the rendering error (e.g. `"member.name" not defined in [object Object]`), nothing half-rendered. */
export const renderTemplate = (text: string, context: TemplateContext, options: RenderOptions): Either.Either<string, string> =>
  Either.try({
    try: () => environment(options).compile(text, { strict: true, noEscape: !options.escape })(context),
    catch: (cause) => (cause instanceof Error ? cause.message : String(cause))
  })
