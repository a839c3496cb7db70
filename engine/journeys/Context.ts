import { Config } from "effect"
import type { MemberEvent } from "../../schemas/Event.ts"
import type { Journey } from "../../schemas/Journey.ts"
import type { TemplateContext } from "../../schemas/TemplateContext.ts"
import type { MemberContext, MemberState } from "../member/MemberState.ts"
import { memberLocale, tierView } from "../member/MemberState/Reads.ts"

export interface Brand {
  readonly name: string
  /** Where unsubscribe links point; the member id is appended as `?member=`. */
  readonly unsubscribeBase: string
}

/** MEMBERFLOW_BRAND_NAME and MEMBERFLOW_PUBLIC_URL, as the engine and `simulate` both render with. */
export const brandConfig: Config.Config<Brand> = Config.all({
  name: Config.string("MEMBERFLOW_BRAND_NAME").pipe(Config.withDefault("memberflow")),
  publicUrl: Config.string("MEMBERFLOW_PUBLIC_URL").pipe(Config.withDefault("http://127.0.0.1:8787"))
}).pipe(Config.map(({ name, publicUrl }) => ({ name, unsubscribeBase: `${publicUrl}/unsubscribe` })))

/** The variables a template is rendered with (schemas/TemplateContext.ts), from the member's state. */
export const templateContext = (
  state: MemberState,
  ctx: MemberContext,
  journey: Journey,
  variant: string,
  trigger: MemberEvent | undefined,
  brand: Brand,
  now: number
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
    unsubscribeUrl: `${brand.unsubscribeBase}?member=${encodeURIComponent(state.memberId)}`,
    event: trigger?.properties ?? {}
  }
}
