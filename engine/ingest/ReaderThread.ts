import { type ConsumerMessages, jetstream } from "@nats-io/jetstream"
import type { NatsConnection } from "@nats-io/transport-node"
import { parentPort, workerData } from "node:worker_threads"
import { connectNats } from "../Nats.ts"
import { readStream } from "./Batcher.ts"
import { deliver, encodeDelivered, type PartitionFilter } from "./Delivered.ts"
import type { ReaderCommand, ReaderReport, ReaderThreadOptions } from "./EventReader.ts"
import { nameThisThread, READER_THREAD_NAME } from "../ThreadName.ts"

/**
 * The event reader's thread (engine/ingest/EventReader.ts): its own NATS connection and ordered
 * consumer on the event stream, from where the engine asks; each batch read is decoded here and sent
 * to the engine's thread as one JSON text. At most two batches' worth of messages wait there
 * untaken: the consumer's iterator is then left alone, and the client pulls no more
 * (engine/ingest/Batcher.ts).
 */

const options = workerData as ReaderThreadOptions
const port = parentPort
if (port === null) throw new Error("engine/ingest/ReaderThread.ts runs as a worker thread only")
// Named, so that `top -H` tells it apart, and so that MEMBERFLOW_THREADS_NICE leaves it at the
// engine's priority: the engine's thread waits on its batches (engine/ThreadPriority.ts).
nameThisThread(READER_THREAD_NAME)

const post = (report: ReaderReport) => port.postMessage(report)
post({ kind: "named" })
const messageOf = (error: unknown): string => (error instanceof Error ? error.message : String(error))

let connecting: Promise<NatsConnection> | null = null
/** The connection, made at the first read and made again if the client gave it up. */
const connection = async (): Promise<NatsConnection> => {
  if (connecting !== null) {
    const nc = await connecting.catch(() => null)
    if (nc !== null && !nc.isClosed()) return nc
  }
  connecting = connectNats(options.nats, "memberflow-reader")
  return connecting
}

interface Reading {
  readonly gen: number
  stopped: boolean
  messages: ConsumerMessages | null
  /** Messages sent (wrapping at 32 bits, as `taken`). */
  sent: number
  /** Messages the engine's thread has taken, counted there. */
  readonly taken: Int32Array
  /** The partitions whose events are handed on. */
  filter: PartitionFilter
}

/** `Atomics.waitAsync` (ES2024: not in this project's lib types). */
const waitAsync = (Atomics as unknown as {
  readonly waitAsync: (array: Int32Array, index: number, value: number, timeoutMs: number) => { readonly async: boolean; readonly value: Promise<string> | string }
}).waitAsync

/** Waits while two batches' worth of messages sent are not taken yet (or until stopped). */
const credit = async (reading: Reading) => {
  for (;;) {
    const taken = Atomics.load(reading.taken, 0)
    if (reading.stopped || ((reading.sent - taken) | 0) < 2 * options.batchSize) return
    const waiting = waitAsync(reading.taken, 0, taken, 1_000)
    if (waiting.async) await waiting.value
  }
}

let current: Reading | null = null

const stop = () => {
  const reading = current
  current = null
  if (reading === null) return
  reading.stopped = true
  reading.messages?.stop()
  Atomics.notify(reading.taken, 0)
}

const read = async (reading: Reading, from: number) => {
  try {
    const nc = await connection()
    if (reading.stopped) return
    const { messages, next } = await readStream(jetstream(nc), options.stream, from, options.batchSize, options.batchWindow)
    reading.messages = messages
    if (reading.stopped) {
      messages.stop()
      return
    }
    while (!reading.stopped) {
      await credit(reading)
      if (reading.stopped) return
      const batch = await next()
      if (reading.stopped) return
      if (batch === null) {
        post({ kind: "end", gen: reading.gen })
        return
      }
      const delivered = deliver(batch, options, reading.filter)
      reading.sent = (reading.sent + batch.length) | 0
      const { text, rows } = encodeDelivered(delivered)
      port.postMessage({ kind: "batch", gen: reading.gen, through: delivered.through, messages: batch.length, text, rows } satisfies ReaderReport, [rows])
    }
  } catch (error) {
    if (!reading.stopped) post({ kind: "error", gen: reading.gen, message: messageOf(error) })
  }
}

port.on("message", (command: ReaderCommand) => {
  switch (command.kind) {
    case "open": {
      stop()
      const filter = { count: command.count, owned: new Set(command.owned) }
      const reading: Reading = { gen: command.gen, stopped: false, messages: null, sent: 0, taken: new Int32Array(command.taken), filter }
      current = reading
      void read(reading, command.from)
      return
    }
    case "keep": {
      if (current?.gen === command.gen) current.filter = { count: current.filter.count, owned: new Set(command.owned) }
      return
    }
    case "stop": {
      if (current?.gen === command.gen) stop()
      return
    }
    case "close": {
      stop()
      const closing = connecting === null ? Promise.resolve() : connecting.then((nc) => nc.drain().catch(() => nc.close()), () => undefined)
      void closing.finally(() => {
        post({ kind: "closed" })
        port.close()
      })
      return
    }
  }
})
