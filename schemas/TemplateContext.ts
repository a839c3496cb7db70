/**
 * What a message template may use: the variables the engine fills in at send time and the helpers
 * it registers. `memberflow validate` refuses a template that uses anything else, and the sender
 * renders with Handlebars `strict: true`, so a template never goes out with a hole in it.
 *
 * Variables (all strings unless noted; the example is what `validate` uses to estimate SMS length):
 */

export interface TemplateVariable {
  readonly path: string
  readonly description: string
  /** a typical value: SMS segment estimates render templates with these */
  readonly example: string
}

export const TEMPLATE_VARIABLES: ReadonlyArray<TemplateVariable> = [
  { path: "member.name", description: "the member's name as upstream sent it (profile attribute `name`)", example: "王小明" },
  { path: "member.tier", description: "current tier id, e.g. gold", example: "gold" },
  { path: "member.tierName", description: "current tier display name from program.yaml, e.g. 金卡", example: "金卡" },
  { path: "member.nextTierName", description: "next tier's display name; empty at the top tier", example: "鑽卡" },
  { path: "member.spendToNext", description: "number: spend still needed to reach the next tier (0 at the top)", example: "2000" },
  { path: "member.spendToKeep", description: "number: spend still needed before the tier review to keep the current tier (0 when kept)", example: "6800" },
  { path: "member.points", description: "number: points balance", example: "12500" },
  { path: "member.pointsExpiresAt", description: "ISO date the points balance expires, or empty", example: "2025-12-31" },
  { path: "member.birthday", description: "birthday as given upstream (YYYY-MM-DD or MM-DD), or empty", example: "1990-05-20" },
  { path: "member.locale", description: "the member's locale, else program.yaml's", example: "zh-CN" },
  { path: "journey.id", description: "the journey's id", example: "birthday-reward" },
  { path: "journey.name", description: "the journey's name", example: "生日禮遇" },
  { path: "variant", description: `the member's experiment variant id ("default" without an experiment)`, example: "points" },
  { path: "brand.name", description: "the brand's name (engine configuration)", example: "MAISON" },
  { path: "unsubscribeUrl", description: "a link that opts the member out of the channel", example: "https://m.example.com/u/3fA9kQ" }
]

/** Any property of the triggering event: `{{event.orderId}}`. Not checkable statically. */
export const OPEN_PREFIXES: ReadonlyArray<string> = ["event."]

/** Assumed length of an `event.*` value when estimating SMS segments. */
export const OPEN_EXAMPLE = "EVT-20250520-001"

/**
 * Helpers (Handlebars block helpers `if` and `unless` are also allowed; `each`, `with`, partials and
 * `@data` variables are not: the context has no lists and no nesting to walk).
 * - `{{money x}}`: a number as an amount in the program's currency, no decimals when whole: `¥2,000`.
 * - `{{date x}}`: an ISO date in the member's locale (a time in the member's timezone): `2025年12月31日`, `Dec 31, 2025`.
 * - `{{tierName x}}`: a tier id as its display name from program.yaml: `金卡`.
 * - `{{plural n "one" "other"}}`: the form the member's locale uses for n (Chinese always "other").
 */
export const TEMPLATE_HELPERS = {
  money: { params: 1, example: "¥2,000", usage: "{{money member.spendToNext}}" },
  date: { params: 1, example: "2025年12月31日", usage: "{{date member.pointsExpiresAt}}" },
  tierName: { params: 1, example: "金卡", usage: "{{tierName member.tier}}" },
  plural: { params: 3, example: "points", usage: '{{plural member.points "point" "points"}}' }
} as const
export type TemplateHelper = keyof typeof TEMPLATE_HELPERS

export const BLOCK_HELPERS: ReadonlyArray<string> = ["if", "unless"]

export const isKnownVariable = (path: string): boolean =>
  TEMPLATE_VARIABLES.some((v) => v.path === path) ||
  OPEN_PREFIXES.some((prefix) => path.startsWith(prefix) && path.length > prefix.length)

export const isHelper = (name: string): name is TemplateHelper => Object.hasOwn(TEMPLATE_HELPERS, name)

/** The values a send fills in; `event` holds the triggering event's properties. */
export interface TemplateContext {
  readonly member: {
    readonly name: string
    readonly tier: string
    readonly tierName: string
    readonly nextTierName: string
    readonly spendToNext: number
    readonly spendToKeep: number
    readonly points: number
    readonly pointsExpiresAt: string
    readonly birthday: string
    readonly locale: string
  }
  readonly journey: { readonly id: string; readonly name: string }
  readonly variant: string
  readonly brand: { readonly name: string }
  readonly unsubscribeUrl: string
  readonly event: Readonly<Record<string, unknown>>
}

/** The examples as a context, for previews and the SMS length estimate. */
export const exampleContext = (): TemplateContext => {
  const ex = (path: string): string => TEMPLATE_VARIABLES.find((v) => v.path === path)?.example ?? ""
  return {
    member: {
      name: ex("member.name"),
      tier: ex("member.tier"),
      tierName: ex("member.tierName"),
      nextTierName: ex("member.nextTierName"),
      spendToNext: Number(ex("member.spendToNext")),
      spendToKeep: Number(ex("member.spendToKeep")),
      points: Number(ex("member.points")),
      pointsExpiresAt: ex("member.pointsExpiresAt"),
      birthday: ex("member.birthday"),
      locale: ex("member.locale")
    },
    journey: { id: ex("journey.id"), name: ex("journey.name") },
    variant: ex("variant"),
    brand: { name: ex("brand.name") },
    unsubscribeUrl: ex("unsubscribeUrl"),
    event: {}
  }
}
