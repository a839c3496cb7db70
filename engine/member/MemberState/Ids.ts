import { hash } from "node:crypto"
import type { DerivedEvent } from "../../../schemas/Event.ts"
import type { Draft } from "../MemberState.ts"

/**
 * Short stable hashes. 12 base64url chars of SHA-1 = 72 bits: a member with a million remembered
 * ids has a collision chance near 1e-10, and each id costs 15 bytes of JSON in the KV value.
 */
export const shortHash = (text: string, length = 12): string => hash("sha1", text, "base64url").slice(0, length)

/** Deterministic id of an event the engine publishes, so a replay publishes the same id. */
export const derivedId = (kind: string, ...parts: ReadonlyArray<string | number>): string =>
  `mf-${kind}-${shortHash(parts.join("\u001f"), 20)}`

/** What caused derived events: their ids and occurredAt come from it, so a replay repeats them. */
export interface Cause {
  readonly key: string
  readonly occurredAt: string
}

export const derive = (
  d: Pick<Draft, "memberId">,
  kind: string,
  type: string,
  properties: Record<string, unknown>,
  cause: Cause,
  detail: string
): DerivedEvent => ({
  id: derivedId(kind, d.memberId, cause.key, detail),
  type,
  memberId: d.memberId,
  occurredAt: cause.occurredAt,
  properties
})

