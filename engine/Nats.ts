import { type ConsumerMessages, type JsMsg, jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from "@nats-io/jetstream"
import { Kvm } from "@nats-io/kv"
import { connect, credsAuthenticator, type NatsConnection } from "@nats-io/transport-node"
import { Config, Context, Data, Effect, Layer, Option, Redacted, Stream } from "effect"
import { readFileSync } from "node:fs"
import { StreamPublisher } from "./nats/StreamPublisher.ts"

export class NatsError extends Data.TaggedError("NatsError")<{
  readonly operation: string
  readonly cause: unknown
}> {
  override get message(): string {
    const cause = this.cause instanceof Error ? this.cause.message : String(this.cause)
    return `NATS ${this.operation} failed: ${cause}`
  }
}

export interface NatsShape {
  readonly connection: NatsConnection
  readonly js: JetStreamClient
  readonly jsm: JetStreamManager
  readonly kvm: Kvm
  /** JetStream publishes of the hot path (engine/nats/StreamPublisher.ts). */
  readonly publisher: StreamPublisher
  /** Runs one NATS client promise as an Effect; `operation` names it in errors and spans. */
  readonly use: <A>(operation: string, f: () => Promise<A>) => Effect.Effect<A, NatsError>
}

/** Bytes of outgoing messages the client holds before it writes them inline (its default: 32 KB). */
const PENDING_LIMIT = 1024 * 1024

const use = <A>(operation: string, f: () => Promise<A>): Effect.Effect<A, NatsError> =>
  Effect.tryPromise({ try: f, catch: (cause) => new NatsError({ operation, cause }) })

/**
 * Where and how to connect: `NATS_URL` (comma-separated servers), `NATS_TOKEN`, `NATS_CREDS`. Read
 * once by the layer; the event reader's thread (engine/ingest/EventReader.ts) connects with the same.
 */
export interface NatsSettings {
  readonly servers: ReadonlyArray<string>
  readonly token: Option.Option<Redacted.Redacted<string>>
  readonly credsFile: Option.Option<string>
}

export const NatsSettingsConfig: Config.Config<NatsSettings> = Config.all({
  servers: Config.string("NATS_URL").pipe(
    Config.withDefault("nats://127.0.0.1:4222"),
    Config.map((url) => url.split(",").map((s) => s.trim()).filter((s) => s.length > 0))
  ),
  token: Config.option(Config.redacted("NATS_TOKEN")),
  credsFile: Config.option(Config.string("NATS_CREDS"))
})

/**
 * The settings as plain data for another thread (a worker's `workerData` is copied, and a Redacted
 * is not data). The token is unwrapped here, to be handed to the client there.
 */
export interface PlainNatsSettings {
  readonly servers: ReadonlyArray<string>
  readonly token: string | undefined
  readonly credsFile: string | undefined
}

export const plainSettings = (settings: NatsSettings): PlainNatsSettings => ({
  servers: settings.servers,
  token: Option.getOrUndefined(Option.map(settings.token, Redacted.value)),
  credsFile: Option.getOrUndefined(settings.credsFile)
})

/** Connects with the engine's options; `name` tells the connections apart in the server's monitoring. */
export const connectNats = (settings: PlainNatsSettings, name: string): Promise<NatsConnection> => {
  const authenticator = settings.credsFile === undefined ? undefined : credsAuthenticator(readFileSync(settings.credsFile))
  return connect({
    servers: [...settings.servers],
    name,
    // The client builds an Error per request for async stack traces: a 2× cost (LIMITS.md).
    noAsyncTraces: true,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 500,
    // Outgoing bytes are written to the socket once a burst of publishes is over, or inline
    // when 32 KB pile up first. A checkpoint's KV writes (states of 1-3 KB, 256 at once) hit
    // that limit every few publishes: socket writes were 10% of the engine's thread in
    // bench:ingest, 4% with the limit at 1 MB (BENCHMARKS.md). The client reads the option
    // but does not declare it; without it, it falls back to 32 KB.
    ...({ pendingLimit: PENDING_LIMIT } as object),
    ...(settings.token !== undefined ? { token: settings.token } : {}),
    ...(authenticator !== undefined ? { authenticator } : {})
  })
}

/** The NATS connection with JetStream, KV and the options that matter for throughput (LIMITS.md). */
export class Nats extends Context.Tag("memberflow/Nats")<Nats, NatsShape>() {
  static readonly layer = Layer.scoped(
    Nats,
    Effect.gen(function* () {
      const settings = plainSettings(yield* NatsSettingsConfig)
      if (settings.credsFile !== undefined) {
        // A creds file that cannot be read is named before any connection is tried.
        const file = settings.credsFile
        yield* Effect.try({ try: () => credsAuthenticator(readFileSync(file)), catch: (cause) => new NatsError({ operation: `read NATS_CREDS ${file}`, cause }) })
      }
      const connection = yield* Effect.acquireRelease(
        use("connect", () => connectNats(settings, "memberflow")),
        (nc) => Effect.promise(() => nc.drain().catch(() => nc.close())).pipe(Effect.ignore)
      )
      const js = jetstream(connection)
      const jsm = yield* use("jetstreamManager", () => jetstreamManager(connection))
      // Closed before the connection drains (finalizers run in reverse order).
      const publisher = yield* Effect.acquireRelease(
        Effect.sync(() => new StreamPublisher(connection)),
        (p) => Effect.sync(() => p.close())
      )
      return { connection, js, jsm, kvm: new Kvm(connection), publisher, use }
    })
  )
}

/**
 * A pull consumer's messages as a Stream that can always be interrupted. The client's iterator is an
 * async generator: its `return()` queues behind a pending `next()`, which waits for a message that
 * may never come, so interrupting a plain `Stream.fromAsyncIterable` over an idle consumer hangs
 * (and with it the engine's shutdown). Stopping the consumer first ends that `next()`.
 */
export const consumerStream = (messages: ConsumerMessages, operation: string): Stream.Stream<JsMsg, NatsError> =>
  Stream.fromAsyncIterable<JsMsg, NatsError>(
    {
      [Symbol.asyncIterator]: () => {
        const iterator = messages[Symbol.asyncIterator]()
        return {
          next: () => iterator.next(),
          return: (value?: unknown) => {
            messages.stop()
            return iterator.return?.(value) ?? Promise.resolve({ done: true as const, value: undefined })
          }
        }
      }
    },
    (cause) => new NatsError({ operation, cause })
  )
