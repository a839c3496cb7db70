import { hash } from "node:crypto"
import type { DerivedEvent } from "../../../schemas/Event.ts"
import type { Draft } from "../MemberState.ts"

// A purchase's orderId is hashed twice in a row (duplicate check, then the order): the last is
// kept, and the same string handed out again (a key V8 has already looked up once).
let lastText: string | undefined
let lastDigest = ""
let lastLength = -1
let lastShort = ""

/**
 * Short stable hashes. 12 base64url chars of SHA-1 = 72 bits: a member with a million remembered
 * ids has a collision chance near 1e-10, and each id costs 15 bytes of JSON in the KV value.
 */
export const shortHash = (text: string, length = 12): string => {
  if (text !== lastText) {
    lastDigest = hash("sha1", text, "base64url")
    lastText = text
    lastLength = -1
  }
  if (length !== lastLength) {
    lastShort = lastDigest.slice(0, length)
    lastLength = length
  }
  return lastShort
}

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

