import { Schema } from "effect"
import type { MemberEvent } from "../../../schemas/Event.ts"
import { Program } from "../../../schemas/Program.ts"
import type { MemberContext } from "../../../engine/member/MemberState.ts"

/** The program of journeys.md, as a marketer writes it, decoded the way the engine decodes it. */
export const programYaml = {
  currency: "CNY",
  timezone: "Asia/Shanghai",
  tiers: {
    source: "computed",
    basis: "spend365d",
    levels: [
      { id: "classic", name: "普卡", minSpend: 0 },
      { id: "silver", name: "銀卡", minSpend: 5000 },
      { id: "gold", name: "金卡", minSpend: 20000 },
      { id: "diamond", name: "鑽卡", minSpend: 50000 },
      { id: "black", name: "黑卡", minSpend: 100000, keepSpend: 80000 }
    ],
    review: "yearly"
  },
  rfm: {
    window: "365d",
    scores: "fixed",
    recompute: "1h",
    fixed: {
      recencyDays: [30, 90, 180, 365],
      frequency: [1, 2, 4, 8],
      monetary: [500, 2000, 8000, 20000]
    }
  },
  tags: [
    {
      id: "high-value-low-engagement",
      when: {
        all: [
          { attribute: "rfm.m", gte: 4 },
          { event: ["review.posted", "checkin"], count: { lt: 1 }, within: "90d" }
        ]
      }
    },
    {
      id: "frequent-low-basket",
      when: { all: [{ attribute: "rfm.f", gte: 4 }, { attribute: "purchase.averageOrder", lt: 300 }] }
    }
  ],
  policies: {
    globalControl: 5,
    frequencyCaps: [
      { channel: "any", max: 3, per: "7d" },
      { channel: "sms", max: 1, per: "1d" }
    ],
    quietHours: { from: "21:00", to: "09:00", channels: ["sms", "wechat"], then: "defer" },
    rateLimits: { sms: "20/s", email: "100/s", wechat: "200/s" }
  }
}

export const program: Program = Schema.decodeUnknownSync(Program)(programYaml)

export const programWith = (patch: Record<string, unknown>): Program =>
  Schema.decodeUnknownSync(Program)({ ...programYaml, ...patch })

export const ctx: MemberContext = { program, cutpoints: null }

export const DAY = 86_400_000
/** Noon in Shanghai, 1 June 2026. */
export const NOW = Date.parse("2026-06-01T12:00:00+08:00")

export const iso = (ms: number): string => new Date(ms).toISOString()

let counter = 0
export const event = (
  type: string,
  at: number,
  properties: Record<string, unknown> = {},
  options: { readonly id?: string; readonly memberId?: string; readonly source?: string } = {}
): MemberEvent => ({
  id: options.id ?? `evt-${type}-${++counter}`,
  type,
  memberId: options.memberId ?? "m-1",
  occurredAt: iso(at),
  at,
  properties,
  source: options.source
})

export const purchase = (orderId: string, amount: number, at: number, id?: string): MemberEvent =>
  event("purchase", at, { orderId, amount, currency: "CNY" }, id === undefined ? {} : { id })

export const refund = (orderId: string, amount: number, at: number, id?: string): MemberEvent =>
  event("refund", at, { orderId, amount }, id === undefined ? {} : { id })
