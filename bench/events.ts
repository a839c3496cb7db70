import { Either } from "effect"
import { decodeEvent } from "../engine/ingest/Decode.ts"
import { clearOutbox, type MemberState } from "../engine/member/MemberState.ts"
import type { MemberEvent } from "../schemas/Event.ts"

const encoder = new TextEncoder()

/**
 * The benchmarks' event mix: registrations first, then purchases, refunds, points, views and check-ins.
 * Spread over the 300 days before `base` (a backlog, a history imported), or, `live`, all at `base`:
 * what upstream services publish as it happens.
 */
export const makeEvent = (i: number, base: number, events: number, members: number, live = false) => {
  const member = i % members
  const memberId = `bm${member}`
  // Up to 300 days before `base`, never after it (past `events`, as the paced events are, the
  // remainder of a negative number would be negative: a future date, which the engine refuses).
  const days = (((events - i) % 300) + 300) % 300
  const at = new Date(live ? base : base - days * 86_400_000 - (i % 86_400) * 1000).toISOString()
  if (i < members) {
    return { id: `be${i}`, type: "member.registered", memberId, occurredAt: at, properties: { name: `Member ${member}`, phone: `+86138${String(member).padStart(8, "0")}`, birthday: "1990-05-17", consent: { sms: true, email: true } } }
  }
  const kind = i % 10
  if (kind < 6) {
    return { id: `be${i}`, type: "purchase", memberId, occurredAt: at, properties: { orderId: `o${i}`, amount: 80 + (i % 40) * 37, currency: "CNY", channel: kind % 2 === 0 ? "store" : "online" } }
  }
  if (kind === 6) return { id: `be${i}`, type: "refund", memberId, occurredAt: at, properties: { orderId: `o${i - 10}`, amount: 20 } }
  if (kind === 7) return { id: `be${i}`, type: "points.changed", memberId, occurredAt: at, properties: { delta: 10, balance: i % 5000 } }
  return { id: `be${i}`, type: kind === 8 ? "page.viewed" : "checkin", memberId, occurredAt: at, properties: { page: "/home" } }
}

/** The i-th event of the mix as the engine decodes it, arrived at `base + i` (the mix has no refusal: one throws). */
export const decodedEvent = (i: number, base: number, events: number, members: number): MemberEvent => {
  const event = makeEvent(i, base, events, members)
  const decoded = decodeEvent(`events.${event.type}`, encoder.encode(JSON.stringify(event)), { subjectPrefix: "events", now: base + i, maxBytes: 65536 })
  if (Either.isLeft(decoded)) throw new Error(decoded.left)
  return decoded.right
}

/** The state as the engine leaves it once its derived events are published and its rows written. */
export const settled = (state: MemberState): MemberState =>
  clearOutbox(state, [...state.outbox.map((e) => e.id), ...(state.rows ?? []).map((r) => r.id)])
