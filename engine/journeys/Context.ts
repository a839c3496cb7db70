import { Config, Option, type Redacted } from "effect"
import type { MemberEvent } from "../../schemas/Event.ts"
import type { Journey } from "../../schemas/Journey.ts"
import type { TemplateContext } from "../../schemas/TemplateContext.ts"
import type { MemberContext, MemberState } from "../member/MemberState.ts"
import { memberLocale, tierView } from "../member/MemberState/Reads.ts"
import { urlHostFor } from "../AdminAuth.ts"
import { DEFAULT_HTTP_PORT, httpHost, httpPort } from "../Settings.ts"
import { unsubscribeKeyConfig, unsubscribeUrl } from "../UnsubscribeLink.ts"

export interface Brand {
  readonly name: string
  /** Where unsubscribe links point (engine/UnsubscribeLink.ts): the member, the channel and a signature follow. */
  readonly unsubscribeBase: string
  /** MEMBERFLOW_UNSUBSCRIBE_KEY: signs the links; null leaves them unsigned (and the engine refuses them). */
  readonly unsubscribeKey: Redacted.Redacted | null
}

/** MEMBERFLOW_BRAND_NAME, MEMBERFLOW_PUBLIC_URL and MEMBERFLOW_UNSUBSCRIBE_KEY, as the engine and `simulate` both render with. */
export const brandConfig: Config.Config<Brand> = Config.all({
  name: Config.string("MEMBERFLOW_BRAND_NAME").pipe(Config.withDefault("memberflow")),
  publicUrl: Config.option(Config.string("MEMBERFLOW_PUBLIC_URL")),
  host: httpHost,
  port: httpPort,
  key: unsubscribeKeyConfig
}).pipe(
  Config.map(({ name, publicUrl, host, port, key }) => {
    // Unset (or empty): this engine's own admin API, at its host and port (any free port, 0, cannot be known here: the default).
    const base = Option.getOrElse(Option.filter(publicUrl, (url) => url.trim() !== ""), () => `http://${urlHostFor(host)}:${port === 0 ? DEFAULT_HTTP_PORT : port}`)
    return { name, unsubscribeBase: `${base.replace(/\/$/, "")}/unsubscribe`, unsubscribeKey: Option.getOrNull(key) }
  })
)

/** The member's unsubscribe link for a message on `channel`. */
export const unsubscribeUrlOf = (brand: Brand, memberId: string, channel: string): string =>
  unsubscribeUrl(brand.unsubscribeBase, brand.unsubscribeKey, memberId, channel)

/** The variables a template is rendered with (schemas/TemplateContext.ts), from the member's state. */
export const templateContext = (
  state: MemberState,
  ctx: MemberContext,
  journey: Journey,
  variant: string,
  trigger: MemberEvent | undefined,
  brand: Brand,
  now: number,
  /** The channel the message goes on: its unsubscribe link opts the member out of that one. */
  channel: string
): TemplateContext => {
  const tier = tierView(state, ctx.program, now)
  const keep = tier.level === null ? 0 : (tier.level.keepSpend ?? tier.level.minSpend)
  const text = (key: string) => {
    const value = state.attributes[key]?.v
    return typeof value === "string" ? value : ""
  }
  return {
    member: {
      name: text("name"),
      tier: tier.id,
      tierName: tier.level?.name ?? tier.id,
      nextTierName: tier.next?.name ?? "",
      spendToNext: tier.spendToNext ?? 0,
      spendToKeep: Math.max(0, keep - tier.basis),
      points: state.points.balance?.v ?? 0,
      pointsExpiresAt: state.points.expiresAt?.v ?? "",
      birthday: text("birthday"),
      locale: memberLocale(state, ctx.program)
    },
    journey: { id: journey.id, name: journey.name },
    variant,
    brand: { name: brand.name },
    unsubscribeUrl: unsubscribeUrlOf(brand, state.memberId, channel),
    event: trigger?.properties ?? {}
  }
}
