import type { JsMsg } from "@nats-io/jetstream"
import type { MemberEvent } from "../../schemas/Event.ts"
import { arrivalMs, decode, eventLine } from "./ApplyBatch.ts"
import { partitionOf, partitionOfSequence } from "./Partition.ts"
import { isPassMarker } from "./Passes.ts"
import { isApplied } from "./RecordBatch.ts"

/**
 * A message of the event stream as the ingest loop takes it: read, its arrival taken and decoded (or
 * refused) where it was read — on the event reader's own thread (engine/ingest/EventReader.ts), so
 * that the engine's thread gets events, not protocol frames and bytes.
 */
export interface Delivered {
  readonly seq: number
  /** Its arrival in the stream (the server's timestamp), in epoch milliseconds. */
  readonly arrival: number
  /** Null when refused. */
  readonly event: MemberEvent | null
  /** Why it was refused (null when not). */
  readonly reason: string | null
  /** A refused message's subject and payload as they came, for rejected_events and the dead-letter stream ("" and null otherwise). */
  readonly subject: string
  readonly data: Uint8Array | null
  /** The event's `events` row, encoded where it was read (`eventLine`, UTF-8), or null to be made when applied. */
  readonly row: Uint8Array | null
}

export interface DeliveredBatch {
  /** The last stream sequence read, handed on or not: the engine's own events already applied are not. */
  readonly through: number
  readonly items: ReadonlyArray<Delivered>
}

export interface DeliverOptions {
  readonly subjectPrefix: string
  readonly maxBytes: number
}

/** The partitions an engine owns, of `count`: the events of others are not handed on. */
export interface PartitionFilter {
  readonly count: number
  readonly owned: ReadonlySet<number>
}

/**
 * Decodes a batch of messages read, leaving out the engine's own events that their write already
 * applied and, with a filter, the events of partitions the engine does not own (a pass marker, which
 * names no member of any, is always handed on).
 */
export const deliver = (batch: ReadonlyArray<JsMsg>, options: DeliverOptions, filter: PartitionFilter | null = null): DeliveredBatch => {
  const items: Array<Delivered> = []
  for (const msg of batch) {
    if (isApplied(msg)) continue
    const arrival = arrivalMs(msg)
    const decoded = decode(msg, options.subjectPrefix, options.maxBytes, arrival)
    if (filter !== null) {
      const event = decoded.event
      const marker = event !== null && isPassMarker(event)
      const partition = event === null ? partitionOfSequence(msg.seq, filter.count) : partitionOf(event.memberId, filter.count)
      if (!marker && !filter.owned.has(partition)) continue
    }
    items.push(
      decoded.event !== null
        ? { seq: msg.seq, arrival, event: decoded.event, reason: null, subject: "", data: null, row: null }
        : { seq: msg.seq, arrival, event: null, reason: decoded.reason ?? "refused", subject: msg.subject, data: msg.data, row: null }
    )
  }
  return { through: batch.length === 0 ? 0 : batch[batch.length - 1]!.seq, items }
}

/** A batch as it crosses to the engine's thread: `text` (JSON) and the events' rows (`rows`, transferred, not copied). */
export interface EncodedBatch {
  readonly text: string
  readonly rows: ArrayBuffer
}

/**
 * A batch for the engine's thread: one JSON array, read there with one `JSON.parse` (structured
 * cloning of the same objects cost that thread twice as much), and each event's `events` row
 * encoded here into one byte buffer, which that thread copies into its insert if the event is
 * applied (a duplicate's is left). An event is `[seq, arrival, event, rowStart, rowEnd]`, a refusal
 * `[seq, arrival, subject, reason, base64 payload]`. What a decoded event holds came from JSON, so
 * it goes through JSON unchanged.
 */
export const encodeDelivered = (batch: DeliveredBatch): EncodedBatch => {
  const entries: Array<unknown> = []
  let rows = Buffer.from(new ArrayBuffer(Math.max(1024, batch.items.length * 256)))
  let at = 0
  for (const item of batch.items) {
    if (item.event === null) {
      entries.push([item.seq, item.arrival, item.subject, item.reason, Buffer.from(item.data ?? new Uint8Array()).toString("base64")])
      continue
    }
    const line = eventLine(item.event, item.arrival)
    // UTF-8 takes at most 3 bytes per UTF-16 unit.
    if (at + line.length * 3 > rows.length) {
      const larger = Buffer.from(new ArrayBuffer(Math.max(rows.length * 2, at + line.length * 3)))
      rows.copy(larger, 0, 0, at)
      rows = larger
    }
    const start = at
    at += rows.write(line, at)
    entries.push([item.seq, item.arrival, item.event, start, at])
  }
  return { text: JSON.stringify(entries), rows: rows.buffer as ArrayBuffer }
}

type Entry = [number, number, MemberEvent, number, number] | [number, number, string, string, string]

/** `encodeDelivered`'s batch back into the batch read through `through`. */
export const decodeDelivered = (through: number, text: string, rows: ArrayBuffer): DeliveredBatch => {
  const entries = JSON.parse(text) as Array<Entry>
  const bytes = new Uint8Array(rows)
  const items: Array<Delivered> = new Array(entries.length)
  for (let i = 0; i < entries.length; i++) {
    const entry = entries[i]!
    items[i] = typeof entry[2] === "object"
      ? { seq: entry[0], arrival: entry[1], event: entry[2], reason: null, subject: "", data: null, row: bytes.subarray(entry[3] as number, entry[4] as number) }
      : { seq: entry[0], arrival: entry[1], event: null, reason: entry[3] as string, subject: entry[2], data: Buffer.from(entry[4] as string, "base64"), row: null }
  }
  return { through, items }
}
