import type { JetStreamClient } from "@nats-io/jetstream"
import { Effect, type Scope } from "effect"
import { existsSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { Worker } from "node:worker_threads"
import type { PlainNatsSettings } from "../Nats.ts"
import { readStream } from "./Batcher.ts"
import { decodeDelivered, type Delivered, deliver, type DeliveredBatch, type PartitionFilter } from "./Delivered.ts"
import { readerStarting } from "../ThreadName.ts"

/**
 * The event stream read from a position, in batches of decoded events (engine/ingest/Delivered.ts).
 *
 * By default the reading and decoding run on a thread of their own (engine/ingest/ReaderThread.ts,
 * with its own NATS connection): the NATS client's protocol parsing, each message's objects and the
 * decoding were about a quarter of the engine's thread in the 1,000,000-event benchmark, which was
 * the bottleneck, while the machine had a third of a core to spare (BENCHMARKS.md). What crosses
 * over is one JSON text a batch, parsed at once here. `MEMBERFLOW_READER=thread` reads on the
 * engine's thread instead, through the engine's connection, as before.
 */

export interface EventReader {
  /**
   * The engine owns fewer partitions now: their events need not be handed on any more. (One it
   * gains needs a reader opened anew: events of it may have been left out already.)
   */
  readonly keep: (owned: ReadonlySet<number>) => void
  /** The next batch (waits for one); null once the reading ended. Rejects when reading failed. */
  readonly next: () => Promise<DeliveredBatch | null>
  /** Resolves once a batch, the end or a failure is there, taking nothing. */
  readonly ready: () => Promise<void>
  readonly stop: () => void
}

export interface EventReaders {
  /** Reads the stream from sequence `from`, handing on the events of `filter`'s partitions; the reader opened before stops. */
  readonly open: (from: number, filter: PartitionFilter) => Promise<EventReader>
}

export interface ReaderOptions {
  readonly stream: string
  readonly subjectPrefix: string
  readonly maxBytes: number
  readonly batchSize: number
  readonly batchWindow: number
}

/** What the reader's thread is given (`workerData`). */
export interface ReaderThreadOptions extends ReaderOptions {
  readonly nats: PlainNatsSettings
}

export type ReaderCommand =
  /**
   * `taken`: one Int32 counting the messages this side has taken (wrapping), added to with
   * `Atomics`: a message per batch taken cost the engine's thread more than the batch's transfer.
   */
  | { readonly kind: "open"; readonly gen: number; readonly from: number; readonly taken: SharedArrayBuffer; readonly count: number; readonly owned: ReadonlyArray<number> }
  | { readonly kind: "keep"; readonly gen: number; readonly owned: ReadonlyArray<number> }
  | { readonly kind: "stop"; readonly gen: number }
  | { readonly kind: "close" }

export type ReaderReport =
  /** `messages` read through sequence `through`, decoded into `text` (engine/ingest/Delivered.ts). */
  | { readonly kind: "batch"; readonly gen: number; readonly through: number; readonly messages: number; readonly text: string; readonly rows: ArrayBuffer }
  | { readonly kind: "end"; readonly gen: number }
  | { readonly kind: "error"; readonly gen: number; readonly message: string }
  | { readonly kind: "closed" }
  /** Its first word: the thread has named itself (engine/ThreadName.ts, `readerStarting`). */
  | { readonly kind: "named" }

/** On the engine's thread: the consumer's messages through the engine's own connection. */
export const threadReaders = (js: JetStreamClient, options: ReaderOptions): EventReaders => {
  let current: { stop: () => void } | null = null
  return {
    open: async (from, opened) => {
      current?.stop()
      let filter = opened
      const { messages, next } = await readStream(js, options.stream, from, options.batchSize, options.batchWindow)
      const reader: EventReader = {
        keep: (owned) => {
          filter = { count: filter.count, owned: new Set(owned) }
        },
        next: async () => {
          const batch = await next()
          return batch === null ? null : deliver(batch, options, filter)
        },
        ready: next.ready,
        stop: () => messages.stop()
      }
      current = reader
      return reader
    }
  }
}

/** Young generation of the reader's thread: the engine's flags (engine/NodeFlags.ts) would give it the engine's 64 MB semi-spaces. */
const READER_YOUNG_MB = 32
/** How long a closing reader thread may take to drain its connection before it is terminated. */
const CLOSE_MS = 2_000

/**
 * The reader's thread: the bundle's `reader.mjs` beside the engine's (`npm run build`), else the
 * TypeScript source through tsx's loader, as `bin/memberflow.js` runs the engine. The bundle is
 * known by that file, not by its folder's name: a bundle copied elsewhere (a folder not named
 * `dist`) looked for the sources beside it and read nothing, warning forever.
 */
export const spawnReaderThread = (options: ReaderThreadOptions): Worker => {
  const here = import.meta.url
  const resourceLimits = { maxYoungGenerationSizeMb: READER_YOUNG_MB }
  const bundled = new URL("./reader.mjs", here)
  if (here.endsWith(".mjs") && existsSync(fileURLToPath(bundled))) return new Worker(bundled, { workerData: options, resourceLimits })
  const source = JSON.stringify(new URL("./ReaderThread.ts", here).href)
  return new Worker(`import("tsx/esm/api").then((tsx) => { tsx.register(); return import(${source}) })`, { eval: true, workerData: options, resourceLimits })
}

/**
 * The reader's queue on this side: batches sent by the thread, waiting to be taken. The thread
 * sends what arrived within the batch window; `next` takes every batch waiting, up to `size`
 * messages, as one: while the engine's thread is busy, small batches pile up, and one batch handled
 * per small batch would pay the per-batch costs many times over.
 */
class Inbox implements EventReader {
  private readonly batches: Array<{ readonly through: number; readonly messages: number; readonly text: string; readonly rows: ArrayBuffer }> = []
  private ended = false
  private failure: Error | null = null
  private waiting: { promise: Promise<void>; resolve: () => void } | null = null

  constructor(
    readonly gen: number,
    private readonly size: number,
    private readonly take: (messages: number) => void,
    private readonly onStop: () => void,
    readonly keep: (owned: ReadonlySet<number>) => void
  ) {}

  /** Ends this reader: a `next` still waiting gets null. */
  readonly stop = (): void => {
    this.end()
    this.onStop()
  }

  private settle() {
    const waiting = this.waiting
    this.waiting = null
    waiting?.resolve()
  }

  batch(through: number, messages: number, text: string, rows: ArrayBuffer) {
    this.batches.push({ through, messages, text, rows })
    this.settle()
  }

  end() {
    this.ended = true
    this.settle()
  }

  fail(error: Error) {
    this.failure ??= error
    this.settle()
  }

  private get hasNews(): boolean {
    return this.batches.length > 0 || this.ended || this.failure !== null
  }

  /** One promise while nothing is there, however often asked (the ingest loop asks every 500 ms while idle). */
  readonly ready = (): Promise<void> => {
    if (this.hasNews) return Promise.resolve()
    if (this.waiting === null) {
      let resolve!: () => void
      const promise = new Promise<void>((r) => (resolve = r))
      this.waiting = { promise, resolve }
    }
    return this.waiting.promise
  }

  readonly next = async (): Promise<DeliveredBatch | null> => {
    while (!this.hasNews) await this.ready()
    const first = this.batches.shift()
    if (first !== undefined) {
      const batch = decodeDelivered(first.through, first.text, first.rows)
      let messages = first.messages
      let through = batch.through
      const items = batch.items as Array<Delivered>
      while (this.batches.length > 0 && messages + this.batches[0]!.messages <= this.size) {
        const more = this.batches.shift()!
        messages += more.messages
        const decoded = decodeDelivered(more.through, more.text, more.rows)
        for (const item of decoded.items) items.push(item)
        through = decoded.through
      }
      this.take(messages)
      return { through, items }
    }
    if (this.failure !== null) throw this.failure
    return null
  }
}

/**
 * Through the reader's thread, started at the first `open` and again after it died; closed with the
 * scope. `startThread` makes the thread (a test holds on to it, to end it as a crash would).
 */
export const workerReaders = (options: ReaderThreadOptions, startThread: (options: ReaderThreadOptions) => Worker = spawnReaderThread): Effect.Effect<EventReaders, never, Scope.Scope> =>
  Effect.gen(function* () {
    let worker: Worker | null = null
    let gen = 0
    let inbox: Inbox | null = null
    let closed: (() => void) | null = null

    const start = (): Worker => {
      const named = readerStarting()
      const started = startThread(options)
      started.on("message", (report: ReaderReport) => {
        if (report.kind === "named") {
          named()
          return
        }
        if (report.kind === "closed") {
          closed?.()
          return
        }
        if (inbox === null || report.gen !== inbox.gen) return
        if (report.kind === "batch") inbox.batch(report.through, report.messages, report.text, report.rows)
        else if (report.kind === "end") inbox.end()
        else inbox.fail(new Error(report.message))
      })
      started.on("error", (error) => inbox?.fail(error))
      started.on("exit", (code) => {
        named()
        if (worker === started) worker = null
        inbox?.fail(new Error(`the event reader's thread exited (code ${code})`))
        closed?.()
      })
      return started
    }

    yield* Effect.addFinalizer(() =>
      Effect.promise(async () => {
        const running = worker
        worker = null
        inbox = null
        if (running === null) return
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, CLOSE_MS)
          closed = () => {
            clearTimeout(timer)
            resolve()
          }
          running.postMessage({ kind: "close" } satisfies ReaderCommand)
        })
        await running.terminate()
      })
    )

    return {
      open: async (from, filter) => {
        worker ??= start()
        const running = worker
        const opened = ++gen
        inbox?.stop()
        const post = (command: ReaderCommand) => {
          if (worker === running) running.postMessage(command)
        }
        const taken = new SharedArrayBuffer(4)
        const counter = new Int32Array(taken)
        const take = (messages: number) => {
          Atomics.add(counter, 0, messages)
          Atomics.notify(counter, 0)
        }
        const next = new Inbox(
          opened,
          options.batchSize,
          take,
          () => {
            if (inbox?.gen === opened) inbox = null
            post({ kind: "stop", gen: opened })
          },
          (owned) => post({ kind: "keep", gen: opened, owned: [...owned] })
        )
        inbox = next
        post({ kind: "open", gen: opened, from, taken, count: filter.count, owned: [...filter.owned] })
        return next
      }
    } satisfies EventReaders
  })
