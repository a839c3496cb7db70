import type { MemberEvent } from "../../../schemas/Event.ts"
import { DAY, event, NOW, purchase } from "./fixtures.ts"

/**
 * One member's events, and (formerFormat.json) the state the engine stored in KV for them before
 * the compact format of 2026-12-04: `seen` an array of hashes, `orders` an object by order hash,
 * `history.*.recent` objects `{at, p}`. Made by the engine of commit 015805f; StateFormat.test.ts
 * reads it as an engine upgraded over such a bucket would.
 */
export const formerEvents: ReadonlyArray<MemberEvent> = [
  event("member.registered", NOW - 400 * DAY, { name: "林小姐", phone: "+8613800000001", birthday: "1990-05-17", consent: { sms: true, email: true } }, { id: "f-reg" }),
  // a refund before its purchase, then the purchase, out of order with the next one
  event("refund", NOW - 50 * DAY, { orderId: "O-2", amount: 300 }, { id: "f-ref-early" }),
  purchase("O-1", 1200.5, NOW - 200 * DAY, "f-p1"),
  purchase("O-2", 900, NOW - 60 * DAY, "f-p2"),
  purchase("O-3", 5600, NOW - 10 * DAY, "f-p3"),
  event("refund", NOW - 5 * DAY, { orderId: "O-3", amount: 600 }, { id: "f-ref-3" }),
  event("points.changed", NOW - 9 * DAY, { delta: 120, balance: 820, expiresAt: "2026-12-31" }, { id: "f-pts" }),
  // more views than the 20 whose properties are kept, one with a nested property
  ...Array.from({ length: 25 }, (_, i) => event("page.viewed", NOW - (30 - i) * DAY + i, { page: `/p/${i}`, n: i, nested: { x: i } }, { id: `f-view-${i}` })),
  event("consent.updated", NOW - 2 * DAY, { channel: "sms", granted: false }, { id: "f-consent" })
]
