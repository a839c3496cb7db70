import { Effect, Either, Schema } from "effect"
import { createReadStream } from "node:fs"
import { createInterface } from "node:readline"
import { EventType } from "../schemas/Event.ts"
import { Nats } from "./Nats.ts"
import { Topology } from "./Topology.ts"

export interface PublishSummary {
  readonly lines: number
  readonly published: number
  readonly duplicates: number
  readonly refused: ReadonlyArray<{ readonly line: number; readonly reason: string }>
}

const isType = Schema.is(EventType)

/**
 * Where a line goes: `<prefix>.<type>` when it names a valid type, else `<prefix>.unparsed`, so a
 * bad line still reaches the engine and lands in rejected_events with its raw bytes (nothing lost).
 */
export const routeLine = (line: string, prefix: string): { readonly subject: string; readonly id: string | undefined } => {
  const parsed = Either.try(() => JSON.parse(line) as unknown)
  if (Either.isRight(parsed) && typeof parsed.right === "object" && parsed.right !== null) {
    const record = parsed.right as Record<string, unknown>
    const type = record["type"]
    const id = typeof record["id"] === "string" && record["id"].length > 0 ? record["id"] : undefined
    return { subject: isType(type) ? `${prefix}.${type}` : `${prefix}.unparsed`, id }
  }
  return { subject: `${prefix}.unparsed`, id: undefined }
}

/**
 * Publishes a JSON-lines file to the event stream with up to `inFlight` unacknowledged publishes
 * (never one by one: LIMITS.md), the event id as `Nats-Msg-Id`, and progress reported as it goes.
 */
export const publishFile = Effect.fn("Publisher.publishFile")(function* (
  file: string,
  onProgress: (done: number) => void,
  inFlight = 1000
) {
  const { js, use } = yield* Nats
  const topology = yield* Topology
  return yield* use(`publish ${file}`, async () => {
    const lines = createInterface({ input: createReadStream(file, "utf8"), crlfDelay: Infinity })
    const pending = new Set<Promise<void>>()
    const refused: Array<{ line: number; reason: string }> = []
    let lineNo = 0
    let published = 0
    let duplicates = 0
    for await (const line of lines) {
      lineNo++
      if (line.trim().length === 0) continue
      const { subject, id } = routeLine(line, topology.subjectPrefix)
      const at = lineNo
      const p: Promise<void> = js
        .publish(subject, line, id !== undefined ? { msgID: id } : {})
        .then((ack) => {
          if (ack.duplicate) duplicates++
          else published++
        })
        .catch((error: unknown) => {
          refused.push({ line: at, reason: error instanceof Error ? error.message : String(error) })
        })
        .finally(() => pending.delete(p))
      pending.add(p)
      if (pending.size >= inFlight) await Promise.race(pending)
      if (lineNo % 5000 === 0) onProgress(published + duplicates + refused.length)
    }
    await Promise.all(pending)
    onProgress(published + duplicates + refused.length)
    return { lines: lineNo, published, duplicates, refused } satisfies PublishSummary
  })
})

