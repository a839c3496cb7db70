import { hash } from "node:crypto"
import { derivedId } from "../../member/MemberState/Ids.ts"

/**
 * Deterministic numbers and ids for the journey runtime: no randomness anywhere, so a replay or a
 * restart assigns the same variant, split arm, enrollment id and message id.
 */

export const BUCKETS = 10_000

/** The first 4 bytes of SHA-256 of the parts (joined by U+001F), as an unsigned 32-bit integer. */
export const hash32 = (...parts: ReadonlyArray<string>): number =>
  hash("sha256", parts.join("\u001f"), "buffer").readUInt32BE(0)

/** hash32 mod 10,000: the bucket a member falls in for an assignment. */
export const bucketOf = (...parts: ReadonlyArray<string>): number => hash32(...parts) % BUCKETS

/** One enrollment per journey, member and entry key (trigger event id, `date:…`, `lapse:…`, `tick:…`, `segment:…`). */
export const enrollmentIdOf = (journeyId: string, memberId: string, entryKey: string): string =>
  derivedId("enr", journeyId, memberId, entryKey)

/** The n-th visit of a step in an enrollment sends one message: the same inputs give the same id. */
export const messageIdOf = (journeyId: string, version: string, enrollmentId: string, stepId: string, visit: number): string =>
  derivedId("msg", journeyId, version, enrollmentId, stepId, visit)

/** The id of an event an `emit` step publishes. */
export const emitIdOf = (journeyId: string, version: string, enrollmentId: string, stepId: string, visit: number): string =>
  derivedId("emit", journeyId, version, enrollmentId, stepId, visit)
