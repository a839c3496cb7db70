import { jetstream, jetstreamManager } from "@nats-io/jetstream"
import { Effect, Exit, Scope } from "effect"
import type { Worker } from "node:worker_threads"
import { describe, expect, it } from "vitest"
import { type EventReader, spawnReaderThread, workerReaders } from "../../../engine/ingest/EventReader.ts"
import { NATS_URL, natsConnect } from "../../support/nats.ts"

/** Every batch the reader has, until it reaches `through` or fails; the failure, if it did. */
const readUntil = async (reader: EventReader, through: number, ids: Array<string>): Promise<{ last: number; failure: Error | null }> => {
  let last = 0
  for (;;) {
    let batch
    try {
      batch = await reader.next()
    } catch (error) {
      return { last, failure: error as Error }
    }
    if (batch === null) return { last, failure: null }
    for (const item of batch.items) ids.push(item.event!.id)
    last = batch.through
    if (last >= through) return { last, failure: null }
  }
}

describe("the event reader's thread dying", () => {
  it("fails the reader it was feeding, after the batches it had sent; the next open starts a new thread, and from the position after the last batch taken every event comes once", async () => {
    const nc = await natsConnect()
    const jsm = await jetstreamManager(nc)
    const name = `MF_T_READERCRASH_${Date.now()}_${process.pid}`
    await jsm.streams.add({ name, subjects: [`${name}.>`] })
    const scope = Effect.runSync(Scope.make())
    const threads: Array<Worker> = []
    try {
      const js = jetstream(nc)
      const published = Array.from({ length: 300 }, (_, i) => `crash-${i + 1}`)
      for (const id of published) {
        await js.publish(`${name}.member.registered`, JSON.stringify({ id, type: "member.registered", memberId: `m-${id}`, occurredAt: new Date().toISOString() }))
      }
      const readers = await Effect.runPromise(
        workerReaders(
          { stream: name, subjectPrefix: name, maxBytes: 65_536, batchSize: 50, batchWindow: 5, nats: { servers: [NATS_URL], token: undefined, credsFile: undefined } },
          (options) => {
            const thread = spawnReaderThread(options)
            threads.push(thread)
            return thread
          }
        ).pipe(Scope.extend(scope))
      )
      const filter = { count: 1, owned: new Set([0]) }
      const ids: Array<string> = []
      const first = await readers.open(1, filter)
      const before = await readUntil(first, 50, ids)
      expect(before.failure).toBeNull()
      // The thread reads at most two batches (100 messages) past what this side took (at most 100
      // here): some of the 300 are still unread when it dies.

      // The thread ends as a crash would end it (terminated from outside, exit code 1).
      await threads[0]!.terminate()
      const after = await readUntil(first, 300, ids)
      expect(after.failure?.message).toMatch(/the event reader's thread exited \(code 1\)/)

      // Opened again where the last batch taken ended, as the ingest loop does: a new thread.
      const from = Math.max(before.last, after.last) + 1
      const second = await readers.open(from, filter)
      expect(threads).toHaveLength(2)
      const rest = await readUntil(second, 300, ids)
      expect(rest.failure).toBeNull()
      expect(rest.last).toBe(300)
      expect(ids).toEqual(published)
      second.stop()
    } finally {
      await Effect.runPromise(Scope.close(scope, Exit.void))
      await jsm.streams.delete(name).catch(() => undefined)
      await nc.close()
    }
  }, 60_000)
})
