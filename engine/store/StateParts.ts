import type { JetStreamManager } from "@nats-io/jetstream"
import type { KV, KvEntry } from "@nats-io/kv"
import { nuid } from "@nats-io/transport-node"

/**
 * A member state too large for one NATS message, kept in the members bucket in parts.
 *
 * A state grows with its member's lifetime (`seen` holds 12 bytes per event ever applied, `orders`
 * about 45 per order: engine/member/MemberState.ts), and a NATS message, KV values included, is at
 * most the server's `max_payload` (1 MB by default). Written whole, the state of a member with about
 * 80,000 events was refused by the client on every attempt; the write was retried forever, its
 * checkpoint never ended, and as one checkpoint is in flight at a time, no partition of the engine
 * was checkpointed again. (A lookup answered by the owner had the same limit.)
 *
 * Over `MEMBERFLOW_KV_VALUE_BYTES`, the state's JSON is cut into parts, each written under a key of
 * its own (`p.<member key>.<write id>.<n>`, plain puts), and then the member's key is written with
 * the usual compare-and-set, holding a head that names them: `{"$parts":[…],"bytes":…}`. The head is
 * the commit point; parts are never written over (each write has its own id), so a head always names
 * parts that are complete. The parts of the head written before are removed once the new head is
 * written; a reader that finds one gone has read a head just replaced, and reads the key again.
 *
 * Listings skip part keys: only `m.` keys are members (engine/MemberStore.ts, `listKeys`).
 */

const HEAD = '{"$parts":'

/**
 * A member's value in the bucket that cannot be made a state: damaged or written from outside (parts
 * gone, a head that names none, bytes that do not add up, or not a member's state at all). Not
 * retried: reading it again gives the same. The engine holds that member's events aside instead
 * (engine/MemberStore.ts, `unreadable`).
 */
export class UnreadableState extends Error {
  override readonly name = "UnreadableState"
}

export interface Head {
  readonly $parts: ReadonlyArray<string>
  readonly bytes: number
}

/** Whether a value read from the members bucket is a head (the state is in parts). */
export const isHead = (text: string): boolean => text.startsWith(HEAD)

/** The head of a state stored in parts, or null for one stored whole. */
export const headOf = (text: string): Head | null => {
  if (!isHead(text)) return null
  let head: Head
  try {
    head = JSON.parse(text) as Head
  } catch {
    throw new UnreadableState("a state's head is not JSON")
  }
  if (!Array.isArray(head.$parts) || typeof head.bytes !== "number") throw new UnreadableState("a state's head names no parts")
  return head
}

/** The head naming `keys`, of a state of `bytes` bytes. */
export const headText = (keys: ReadonlyArray<string>, bytes: number): string => JSON.stringify({ $parts: keys, bytes } satisfies Head)

/** Fresh keys for the parts of one write of the member under `key` (`m.<…>`). */
export const partKeys = (key: string, count: number): Array<string> => {
  const write = nuid.next()
  return Array.from({ length: count }, (_, i) => `p.${key.slice(2)}.${write}.${i}`)
}

/**
 * The text's UTF-8 bytes when they are more than `limit`, else null. Encoded only when it could be:
 * a UTF-16 code unit is at most three bytes, so a text of up to `limit / 3` units always fits (a
 * checkpoint asks this of every state it writes).
 */
export const bytesOver = (text: string, limit: number): Uint8Array | null => {
  if (text.length <= limit / 3) return null
  const bytes = Buffer.from(text)
  return bytes.length > limit ? bytes : null
}

/** `bytes` in pieces of at most `size` bytes, in order (views, not copies). */
export const cut = (bytes: Uint8Array, size: number): Array<Uint8Array> => {
  if (!(size > 0)) throw new Error(`a part's size must be positive, not ${size}`)
  const pieces: Array<Uint8Array> = []
  for (let at = 0; at < bytes.length; at += size) pieces.push(bytes.subarray(at, Math.min(bytes.length, at + size)))
  return pieces
}

/** The pieces again as one text, checked against the length the head gives. */
export const join = (pieces: ReadonlyArray<Uint8Array>, bytes: number): string => {
  const whole = Buffer.concat(pieces)
  if (whole.length !== bytes) throw new UnreadableState(`a state's parts hold ${whole.length} bytes, its head says ${bytes}`)
  return whole.toString("utf8")
}

const decoder = new TextDecoder()

export interface StoredValue {
  /** The state's JSON, joined from its parts if stored in parts. */
  readonly json: string
  readonly revision: number
  /** The part keys the head names; null for a state stored whole. */
  readonly parts: ReadonlyArray<string> | null
}

/**
 * The member's value in the members bucket, joined from its parts where stored in parts; null when
 * there is none (never written, or deleted). `first`: the key's entry if already read.
 */
export const readStored = async (kv: KV, key: string, first?: KvEntry | null): Promise<StoredValue | null> => {
  for (let attempt = 0; ; attempt++) {
    const found = attempt === 0 && first !== undefined ? first : await kv.get(key)
    if (found === null || found.operation !== "PUT") return null
    const text = decoder.decode(found.value)
    const head = headOf(text)
    if (head === null) return { json: text, revision: found.revision, parts: null }
    const pieces = await Promise.all(head.$parts.map((part) => kv.get(part)))
    if (pieces.every((piece) => piece !== null && piece.operation === "PUT")) {
      return { json: join(pieces.map((piece) => piece!.value), head.bytes), revision: found.revision, parts: head.$parts }
    }
    // A part gone: the head was replaced meanwhile (its parts removed after the new head was written).
    if (attempt === 4) throw new UnreadableState(`the state under ${key} names parts that are not there`)
  }
}

/** Removes parts no head names any more (a whole subject each, no marker left behind). */
export const removeParts = async (jsm: JetStreamManager, bucket: string, parts: ReadonlyArray<string>): Promise<void> => {
  for (const part of parts) await jsm.streams.purge(`KV_${bucket}`, { filter: `$KV.${bucket}.${part}` })
}
