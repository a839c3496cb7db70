import { jetstream, jetstreamManager } from "@nats-io/jetstream"
import { Effect, Exit, Scope } from "effect"
import { describe, expect, it } from "vitest"
import { type EventReader, workerReaders } from "../../../engine/ingest/EventReader.ts"
import { ReadyWatch } from "../../../engine/ingest/ReadyWatch.ts"
import { NATS_URL, natsConnect } from "../../support/nats.ts"

/** The reader as the engine has it, its readiness asked of it counted. */
const counting = (reader: EventReader) => {
  const counted = { ...reader, asked: 0 }
  counted.ready = () => {
    counted.asked++
    return reader.ready()
  }
  return counted
}

describe("the ingest loop's wait for events", () => {
  it("watches an idle reader's readiness once however often it waits, is ended by the first event or a wake-up, and is not woken by a reader replaced", async () => {
    const nc = await natsConnect()
    const jsm = await jetstreamManager(nc)
    const name = `MF_T_READYWATCH_${Date.now()}_${process.pid}`
    await jsm.streams.add({ name, subjects: [`${name}.>`] })
    const scope = Effect.runSync(Scope.make())
    try {
      const readers = await Effect.runPromise(
        workerReaders({ stream: name, subjectPrefix: name, maxBytes: 65_536, batchSize: 100, batchWindow: 5, nats: { servers: [NATS_URL], token: undefined, credsFile: undefined } }).pipe(Scope.extend(scope))
      )
      const reader = counting(await readers.open(1, { count: 1, owned: new Set([0]) }))
      const watch = new ReadyWatch()

      // Idle: every wait times out, and the readiness was asked for once (each wait added its own
      // callbacks to it before: about 700 bytes each, kept until an event came).
      for (let i = 0; i < 1_000; i++) expect(await watch.wait(reader, 0)).toBe(false)
      expect(reader.asked).toBe(1)

      // A wake-up ends a wait at once.
      const woken = watch.wait(reader, 60_000)
      watch.cancel()
      expect(await woken).toBe(false)

      // The first event ends the wait under way, with true, and is there to take.
      const waiting = watch.wait(reader, 30_000)
      await jetstream(nc).publish(`${name}.member.registered`, JSON.stringify({ id: "rw-1", type: "member.registered", memberId: "rw", occurredAt: new Date().toISOString() }))
      expect(await waiting).toBe(true)
      expect(reader.asked).toBe(1)
      const batch = await reader.next()
      expect(batch?.items.map((item) => item.event?.id)).toEqual(["rw-1"])

      // Another reader waited on while the one watched before ends (stopped): that readiness wakes
      // nobody waiting on the other, which has nothing, so its wait runs out.
      const idle = watch.wait(reader, 60_000)
      watch.cancel()
      expect(await idle).toBe(false)
      const others = await Effect.runPromise(
        workerReaders({ stream: name, subjectPrefix: name, maxBytes: 65_536, batchSize: 100, batchWindow: 5, nats: { servers: [NATS_URL], token: undefined, credsFile: undefined } }).pipe(Scope.extend(scope))
      )
      const other = counting(await others.open(batch!.through + 1, { count: 1, owned: new Set([0]) }))
      const waitingOnOther = watch.wait(other, 500)
      reader.stop()
      expect(await reader.next()).toBeNull()
      expect(await waitingOnOther).toBe(false)
      expect(other.asked).toBe(1)
      other.stop()
    } finally {
      await Effect.runPromise(Scope.close(scope, Exit.void))
      await jsm.streams.delete(name)
      await nc.close()
    }
  }, 60_000)
})
