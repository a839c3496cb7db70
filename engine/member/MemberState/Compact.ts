/**
 * The member state's compact parts, and the upgrade of a state stored in the former format.
 *
 * A state lives in the engine's heap as long as its member is cached, and the states are most of
 * that heap (BENCHMARKS.md, issue 2 memory). As V8 objects, one object per applied event id, per
 * order and per kept event cost about twice their JSON. So the parts that grow with a member's
 * events are kept flat:
 * - `seen`: the applied event ids' hashes, one string of KEY_WIDTH characters each;
 * - `orders`: one string of order keys and, per order, its time, amount and refunds in arrays;
 * - `history.*.recent`: the kept events' scalar properties as JSON text, one line each in one
 *   string (`RECENT_SEPARATOR`), each belonging to the event time at the same place from the end
 *   of `history.*.at`.
 */

/** Characters of each key in `seen` and `orders.k`: shortHash's default length. */
export const KEY_WIDTH = 12

/** The place of `key` among the fixed-width keys of `keys`, or -1 (a match across two keys is none). */
export const keyIndex = (keys: string, key: string): number => {
  for (let from = 0; ; ) {
    const i = keys.indexOf(key, from)
    if (i === -1) return -1
    if (i % KEY_WIDTH === 0) return i / KEY_WIDTH
    from = i + 1
  }
}

/**
 * The same string, in one piece. V8 keeps the result of a concatenation, and of a JSON.stringify
 * longer than 32 characters, as a rope of pieces until something reads a character of it; then it
 * copies it into one flat string and the pieces become garbage. Kept as a rope, `seen` took 60 bytes
 * per event instead of 12, and a kept event's properties half as much again as their length.
 */
export const flat = (text: string): string => {
  text.charCodeAt(0)
  return text
}

/**
 * Between the kept events' JSON in `history.*.recent`: JSON.stringify never writes a raw line feed
 * (one inside a string is escaped), so no entry holds one.
 *
 * One string per event type, not an array of strings: with an object per kept event, `recent` was
 * the largest part of the states (105 of the 341 MB of 100,000 states in bench:state), and a full
 * collection marks every one of those objects on the engine's thread. Each event copies its
 * type's string (at most RECENT_PER_TYPE entries) where the array was copied with a pointer per entry.
 */
export const RECENT_SEPARATOR = "\n"

/** How many entries `recent` holds. */
export const recentCount = (recent: string): number => {
  if (recent === "") return 0
  let n = 1
  for (let i = recent.indexOf(RECENT_SEPARATOR); i !== -1; i = recent.indexOf(RECENT_SEPARATOR, i + 1)) n++
  return n
}

/** The entries of `recent`, oldest first. */
export const recentEntries = (recent: string): Array<string> => (recent === "" ? [] : recent.split(RECENT_SEPARATOR))

/**
 * `recent` with `entry` at place `index` (0 = before the oldest), then the oldest dropped beyond
 * `max`; in one piece (`flat`). Events mostly come in time order: mostly an append.
 */
export const recentWith = (recent: string, count: number, index: number, entry: string, max: number): string => {
  let next: string
  if (count === 0) next = entry
  else if (index >= count) next = recent + RECENT_SEPARATOR + entry
  else {
    const entries = recentEntries(recent)
    entries.splice(index, 0, entry)
    next = entries.join(RECENT_SEPARATOR)
  }
  for (let over = count + 1 - max; over > 0; over--) next = next.slice(next.indexOf(RECENT_SEPARATOR) + 1)
  return flat(next)
}

/** `keys` with `key` appended, in one piece (`flat`). */
export const withKey = (keys: string, key: string): string => flat(keys + key)

/**
 * Keys that grow with a member's life (applied event ids: `seen`; orders: `orders.k`) are kept as
 * the latest ones, up to this many, and the ones before them (`seenBefore`, `orders.kBefore`). Each
 * event appended its key to one string, a copy of all of it; a member with 80,000 events (960 KB
 * of keys) copied all of that at each event, and the copies were garbage the collector had
 * promoted. Now the long string is copied once every `SEEN_KEYS` keys.
 */
export const SEEN_KEYS = 128

/** The place of `key` among the keys `before` and then `latest`, or -1. */
export const placeIn = (before: string | undefined, latest: string, key: string): number => {
  const older = before === undefined ? -1 : keyIndex(before, key)
  if (older !== -1) return older
  const newer = keyIndex(latest, key)
  return newer === -1 ? -1 : newer + (before?.length ?? 0) / KEY_WIDTH
}

/** The keys `before` and `latest` with `key` appended: `latest` joins `before` once it holds SEEN_KEYS keys. */
export const appendSplit = (before: string | undefined, latest: string, key: string): readonly [before: string | undefined, latest: string] =>
  latest.length >= SEEN_KEYS * KEY_WIDTH ? [withKey(before ?? "", latest), key] : [before, withKey(latest, key)]

export interface Seen {
  seen: string
  /** The keys older than those in `seen`; absent until a member has more than SEEN_KEYS of them. */
  seenBefore?: string | undefined
}

/** Whether the state has the key among its applied event ids. */
export const hasSeen = (state: Readonly<Seen>, key: string): boolean => placeIn(state.seenBefore, state.seen, key) !== -1

/** Adds an applied event id's key (`appendSplit`). */
export const addSeen = (state: Seen, key: string): void => {
  const [before, latest] = appendSplit(state.seenBefore, state.seen, key)
  if (before !== undefined) state.seenBefore = before
  state.seen = latest
}

/** Every applied event id's key of the state, oldest first. */
export const seenKeys = (state: Readonly<Seen>): Array<string> => (state.seenBefore === undefined ? keysOf(state.seen) : [...keysOf(state.seenBefore), ...keysOf(state.seen)])

/** The fixed-width keys of `keys`, one by one. */
export const keysOf = (keys: string): Array<string> => {
  const out: Array<string> = []
  for (let i = 0; i < keys.length; i += KEY_WIDTH) out.push(keys.slice(i, i + KEY_WIDTH))
  return out
}

/**
 * Below this length an array grows by a copy of exactly its new length. `push` on a full array
 * gives it room for half as many again plus 16, so a member's arrays of a few items each held
 * mostly spare slots (states as the engine built them took 20% more heap than after a JSON round
 * trip). Above it `push` is kept: the spare part is smaller, and copying a long array per event is not.
 */
const EXACT_BELOW = 64

/** `list` with `item` inserted at `index`, the same array when it is long. */
export const insertAt = <A>(list: Array<A>, index: number, item: A): Array<A> => {
  if (list.length >= EXACT_BELOW) {
    if (index === list.length) list.push(item)
    else list.splice(index, 0, item)
    return list
  }
  // A copy of exactly the length it returns (slice and spread do not always), of the same kind of
  // elements as `list` and `item`. It used to be `list.concat([item])`: once optimized, that gave
  // an array of any value even for times (the literal's allocation site had held strings, from
  // `history.recent`), and a time in such an array is a heap object of its own, where an array of
  // doubles holds it inline. A heap snapshot counted ~22 boxed times per member, a fifth of every
  // object the collector marks (BENCHMARKS.md, 2026-12-05, night); a JSON round trip made them
  // doubles again. `toSpliced` keeps an array of times one of doubles (test/engine/member/ArrayKinds.test.ts).
  return list.toSpliced(index, 0, item)
}

/** `list` with `item` at the end: insertAt at the end. */
export const append = <A>(list: Array<A>, item: A): Array<A> => insertAt(list, list.length, item)

/**
 * The time of an order known only from a refund so far (out of order): NaN in memory, null in
 * JSON (JSON.stringify writes NaN as null, and `upgradeState` reads null back as NaN). It used to
 * be null in memory too, and an array with a null in it holds each of its times as a heap object of
 * its own; once one such array had reached the optimized code that appends to them, the arrays it
 * made for every member were of that kind, times boxed (BENCHMARKS.md, 2026-12-05, night).
 */
export const UNDATED = Number.NaN

/** An order's time, not `UNDATED` (nor null, as a state parsed without `upgradeState` has it). */
export const isDated = (at: number | null | undefined): at is number => at != null && !Number.isNaN(at)

/** The orders' nulls (JSON's `UNDATED`) as `UNDATED` again, in place. */
export const undatedInMemory = (orders: Orders): void => {
  if (Array.isArray(orders.at) && orders.at.includes(null)) orders.at = orders.at.map((at) => at ?? UNDATED)
}

/**
 * Orders, by place: `kBefore` then `k` hold their keys (shortHash of the orderId), the arrays their
 * figures. `k` takes the latest SEEN_KEYS keys and then joins `kBefore`, as `seen` does (`appendSplit`).
 */
export interface Orders {
  k: string
  /** The keys of the orders before those in `k`; absent until there are more than SEEN_KEYS. */
  kBefore?: string | undefined
  /** The purchase's event time; `UNDATED` while only a refund for the order has arrived (out of order). */
  at: Array<number | null>
  amount: Array<number>
  /** Sum of refunds received; the net counts it capped at the amount. */
  refunded: Array<number>
}

export const emptyOrders = (): Orders => ({ k: "", at: [], amount: [], refunded: [] })

/** The place of the order with this key among the orders, or -1. */
export const orderIndex = (orders: { readonly k: string; readonly kBefore?: string | undefined }, key: string): number => placeIn(orders.kBefore, orders.k, key)

/** The place of a new order: its key appended (`appendSplit`), its figures at the end of each array. */
export const addOrder = (orders: Orders, key: string, at: number | null, amount: number, refunded: number): void => {
  const [before, latest] = appendSplit(orders.kBefore, orders.k, key)
  if (before !== undefined) orders.kBefore = before
  orders.k = latest
  orders.at = append(orders.at, at)
  orders.amount = append(orders.amount, amount)
  orders.refunded = append(orders.refunded, refunded)
}

type Json = Record<string, unknown>

const numberOr = <A>(value: unknown, otherwise: A): number | A => (typeof value === "number" ? value : otherwise)

/** A JSON object (not an array, not null). */
export const isRecord = (value: unknown): value is Json => typeof value === "object" && value !== null && !Array.isArray(value)

/**
 * The one empty list and the one empty record that every state's containers empty at rest share:
 * `outbox` and `rows` (emptied after each batch), and `ruleTags`, `manualTags`, `journeys` and
 * `entryTimers` for most members most of the time. Six objects of the ~60 each state is made of,
 * which every full collection marks on the engine's thread (BENCHMARKS.md, 2026-12-06, night).
 * Frozen: whatever writes into a container takes `writable` of it first.
 */
export const NO_ITEMS: ReadonlyArray<never> = Object.freeze([])
export const NO_ENTRIES: Readonly<Record<string, never>> = Object.freeze({})

/** The record to write into: itself, or a new one where it is the shared empty one (`NO_ENTRIES`). */
export const writable = <R extends object>(record: R): R => (Object.isFrozen(record) ? ({} as R) : record)

/** The list to push onto: itself, or a new one where it is the shared empty one (`NO_ITEMS`). */
export const writableList = <A>(list: Array<A>): Array<A> => (Object.isFrozen(list) ? [] : list)

const SHARED_RECORDS = ["ruleTags", "manualTags", "journeys", "entryTimers"] as const
const SHARED_LISTS = ["outbox", "rows"] as const

const isEmptyRecord = (record: Json): boolean => {
  for (const _ in record) return false
  return true
}

/** The state's empty containers as the shared ones, in place: a state parsed from JSON has its own. */
export const shareEmpties = (state: Json): void => {
  for (const key of SHARED_RECORDS) {
    const record = state[key]
    if (isRecord(record) && isEmptyRecord(record)) state[key] = NO_ENTRIES
  }
  for (const key of SHARED_LISTS) {
    const list = state[key]
    if (Array.isArray(list) && list.length === 0) state[key] = NO_ITEMS
  }
}

/**
 * A state read from KV, in the compact format: one stored by an engine of before 2026-12-04 is
 * turned into it in place (no bucket needs rewriting; it is written back compact at its next
 * change). What it does not recognise it leaves as it is.
 */
export const upgradeState = <S>(parsed: S): S => {
  const state = parsed as Json
  if (Array.isArray(state["seen"])) {
    state["seen"] = (state["seen"] as Array<unknown>).filter((hash): hash is string => typeof hash === "string" && hash.length === KEY_WIDTH).join("")
  }
  const orders = state["orders"]
  if (isRecord(orders) && typeof orders["k"] !== "string") {
    const compact = emptyOrders()
    for (const key of Object.keys(orders)) {
      const order = orders[key]
      if (key.length !== KEY_WIDTH || !isRecord(order)) continue
      addOrder(compact, key, numberOr(order["at"], UNDATED), numberOr(order["amount"], 0), numberOr(order["refunded"], 0))
    }
    state["orders"] = compact
  } else if (isRecord(orders)) {
    undatedInMemory(orders as unknown as Orders)
  }
  const history = state["history"]
  if (isRecord(history)) {
    for (const type of Object.keys(history)) {
      const h = history[type]
      if (!isRecord(h) || !Array.isArray(h["recent"])) continue
      // Formerly an array of one JSON text each: joined (`RECENT_SEPARATOR`).
      const recent = h["recent"] as Array<unknown>
      // Before that `{at, p}`: the times were the last of `at` already (both kept by the same insertion).
      h["recent"] = recent.map((r) => (typeof r === "string" ? r : JSON.stringify(isRecord(r) && isRecord(r["p"]) ? r["p"] : {}))).join(RECENT_SEPARATOR)
    }
  }
  shareEmpties(state)
  return parsed
}
