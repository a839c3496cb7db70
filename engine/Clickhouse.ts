import {
  type ClickHouseClient,
  type ClickHouseClientConfigOptions,
  ClickHouseLogLevel,
  type ClickHouseSettings,
  createClient
} from "@clickhouse/client"
import { Config, Context, Data, Effect, Layer, Option, Redacted, type Scope } from "effect"
import type { ConfigError } from "effect/ConfigError"
import * as NodePath from "node:path"
import { Readable } from "node:stream"
import { finished } from "node:stream/promises"
import type { SqlRejected } from "../schemas/ClickhouseErrors.ts"
import { checkReadOnlySql } from "./store/ReadOnlySql.ts"
import { BodyPool, encodeRows, RowLines } from "./store/RowBody.ts"

/**
 * The ClickHouse the engine writes to and analysts read: a server when `CLICKHOUSE_URL` is set,
 * otherwise embedded chDB under `MEMBERFLOW_DATA_DIR/clickhouse`. Both speak through
 * `@clickhouse/client`, so the same SQL runs on either.
 */

/** A ClickHouse call failed. The message never carries the URL's credentials. */
export class ClickhouseError extends Data.TaggedError("ClickhouseError")<{
  readonly operation: string
  readonly message: string
  readonly cause: unknown
}> {}

export interface ClickhouseService {
  readonly database: string
  readonly embedded: boolean
  readonly command: (sql: string) => Effect.Effect<void, ClickhouseError>
  /** JSONEachRow rows; `{name:Type}` placeholders are bound from `params` by ClickHouse. */
  readonly query: <A = Record<string, unknown>>(
    sql: string,
    params?: Record<string, unknown>
  ) => Effect.Effect<ReadonlyArray<A>, ClickhouseError>
  /** One insert request per call (JSONCompactEachRow, engine/store/RowBody.ts); nothing is sent for no rows. */
  readonly insert: <A>(table: string, rows: ReadonlyArray<A>) => Effect.Effect<void, ClickhouseError>
  /** Rows encoded now, into lines to append more rows to and send with `insertLines`. */
  readonly encode: (rows: ReadonlyArray<Record<string, unknown>>) => RowLines
  /** Lines in these columns with no row yet, to append rows or encoded lines to. */
  readonly lines: (columns: ReadonlyArray<string>) => RowLines
  /**
   * Sends the lines in one insert (nothing for none). Once it succeeds their buffer is reused: the
   * lines are empty after. After a failure they are kept as they were, to be sent again.
   */
  readonly insertLines: (table: string, lines: RowLines) => Effect.Effect<void, ClickhouseError>
  /** An analyst's SQL: one read-only statement (ReadOnlySql), run with `readonly = 1`. */
  readonly readOnlyQuery: (
    sql: string
  ) => Effect.Effect<ReadonlyArray<Record<string, unknown>>, SqlRejected | ClickhouseError>
  readonly ping: Effect.Effect<void, ClickhouseError>
}

export interface ClickhouseOptions {
  /** `http[s]://[user:password@]host:port[/database]`; unset means embedded chDB. */
  readonly url?: Redacted.Redacted<string> | undefined
  /** chDB keeps its files in `<dataDir>/clickhouse`. */
  readonly dataDir: string
}

/** The engine's own folder: embedded chDB's files and the engine's identity (engine/ingest/EngineIdentity.ts). */
export const DataDirConfig: Config.Config<string> = Config.string("MEMBERFLOW_DATA_DIR").pipe(Config.withDefault("./.memberflow"))

export const ClickhouseConfig: Config.Config<ClickhouseOptions> = Config.all({
  url: Config.option(Config.redacted("CLICKHOUSE_URL")).pipe(
    Config.map(Option.filter((url) => Redacted.value(url).trim() !== "")),
    Config.map(Option.getOrUndefined)
  ),
  dataDir: DataDirConfig
})

export const DEFAULT_DATABASE = "memberflow"

/** 64-bit integers (count(), sums) come back as JSON numbers on both backends, not strings. */
const outputSettings: ClickHouseSettings = { output_format_json_quote_64bit_integers: 0 }

/** The client would print its failures to the console; each one reaches the caller as a ClickhouseError instead. */
const quiet = { log: { level: ClickHouseLogLevel.OFF } } as const

const messageOf = (cause: unknown): string => cause instanceof Error ? cause.message : String(cause)

/**
 * Builds errors whose message never repeats the password. The client holds it only as an option,
 * so it should not appear at all; scrubbing is the second line (skipped for passwords too short to
 * replace without mangling the message).
 */
const errorFactory = (password: string | undefined) => (operation: string, cause: unknown): ClickhouseError => {
  const text = messageOf(cause)
  const scrubbed = password !== undefined && password.length >= 4 ? text.split(password).join("<redacted>") : text
  return new ClickhouseError({ operation, message: `${operation} failed: ${scrubbed}`, cause })
}
type MakeError = ReturnType<typeof errorFactory>

interface ServerTarget {
  readonly url: string
  readonly username: string | undefined
  readonly password: string | undefined
  readonly database: string
}

/** Splits the URL so credentials travel as client options, never inside a URL that may be printed. */
const parseServerUrl = (url: Redacted.Redacted<string>): Effect.Effect<ServerTarget, ClickhouseError> =>
  Effect.try({
    try: () => {
      const parsed = new URL(Redacted.value(url))
      const database = decodeURIComponent(parsed.pathname.replace(/^\/+|\/+$/g, "")) || DEFAULT_DATABASE
      return {
        url: `${parsed.protocol}//${parsed.host}${parsed.search}`,
        username: parsed.username === "" ? undefined : decodeURIComponent(parsed.username),
        password: parsed.password === "" ? undefined : decodeURIComponent(parsed.password),
        database
      }
    },
    // The URL parser's own error quotes the input, password included: keep none of it.
    catch: () =>
      new ClickhouseError({
        operation: "parse CLICKHOUSE_URL",
        message: "CLICKHOUSE_URL is not a valid URL (expected http[s]://[user:password@]host:port[/database])",
        cause: undefined
      })
  })

type ClientConnection = NonNullable<ClickHouseClientConfigOptions["connection"]>

/**
 * chdb types its connection against @clickhouse/client-common while @clickhouse/client bundles
 * its own copy of the same declarations (nominally distinct through a private field): check the
 * shape at run time instead of casting.
 */
const isClientConnection = <A extends object>(value: A): value is A & ClientConnection =>
  ["query", "exec", "command", "insert", "ping", "close"].every((method) => typeof Reflect.get(value, method) === "function")

const acquireClient = (open: () => ClickHouseClient, makeError: MakeError, label: string) =>
  acquireOpened(Effect.try({ try: open, catch: (cause) => makeError(`open ${label}`, cause) }), label)

const acquireOpened = (open: Effect.Effect<ClickHouseClient, ClickhouseError>, label: string) =>
  Effect.acquireRelease(
    open,
    (client) =>
      Effect.tryPromise(() => client.close()).pipe(
        Effect.catchAll((cause) => Effect.logWarning(`closing ${label} failed`, messageOf(cause)))
      )
  )

const commandOn = (client: ClickHouseClient, makeError: MakeError, sql: string) =>
  Effect.tryPromise({
    try: (signal) => client.command({ query: sql, abort_signal: signal }),
    catch: (cause) => makeError("command", cause)
  })

interface Backend {
  readonly database: string
  readonly embedded: boolean
  readonly client: ClickHouseClient
  /** Runs analysts' SQL: a session pinned to readonly (chDB) or the same client with readonly per query. */
  readonly readOnlyClient: ClickHouseClient
  readonly readOnlySettings: ClickHouseSettings
  readonly makeError: MakeError
  /** Sends JSONCompactEachRow lines (engine/store/RowBody.ts) into `table`; settles once they are in. */
  readonly sendRows: (table: string, columns: ReadonlyArray<string>, lines: Buffer, signal: AbortSignal) => Promise<unknown>
}

const ROWS_FORMAT = "JSONCompactEachRow"

/**
 * The settings of every group-commit insert. Parallel parsing splits a large input among parser
 * threads: made for big files on many cores, it cost more CPU than it saved on this machine's two,
 * shared with the engine's thread and the NATS server (BENCHMARKS.md, "parallel parsing off").
 */
const INSERT_SETTINGS = { input_format_parallel_parsing: 0 } as const

/**
 * chDB binds one data directory per process and keeps settings per session: the writer session
 * and a second, read-only session on the same path. `readonly = 1` is pinned with `SET` on the
 * second one because the chDB connection applies per-query settings as session `SET`s.
 */
const embeddedBackend = (dataDir: string): Effect.Effect<Backend, ClickhouseError, Scope.Scope> =>
  Effect.gen(function*() {
    const makeError = errorFactory(undefined)
    const path = NodePath.resolve(dataDir, "clickhouse")
    // Loaded here, not with the module: loading chDB maps its native library (~0.15–0.2 s of a start),
    // which the CLI's commands without a database (publish, validate, simulate, --help) and an
    // engine on a ClickHouse server never need.
    const [{ drainPending }, { createChdbConnection }] = yield* Effect.tryPromise({
      try: () => Promise.all([import("chdb"), import("chdb/connection")]),
      catch: (cause) => makeError("load chDB", cause)
    })
    // Runs after both sessions closed: only then is the process free to open another directory.
    yield* Effect.addFinalizer(() =>
      Effect.tryPromise(() => drainPending()).pipe(Effect.catchAll((cause) => Effect.logWarning("chDB drain failed", messageOf(cause))))
    )
    // createChdbConnection refuses a second data directory in this process: that surfaces here.
    const connectTo = (label: string) =>
      Effect.try({ try: () => createChdbConnection({ path }), catch: (cause) => makeError(`open ${label}`, cause) }).pipe(
        Effect.filterOrFail(isClientConnection, () =>
          makeError(`open ${label}`, new Error("chdb/connection does not match the @clickhouse/client Connection contract")))
      )
    const connect = (label: string) => Effect.map(connectTo(label), (connection) => createClient({ connection, ...quiet }))
    // The writer's connection is kept for its raw insert: chDB parses the lines where they lie.
    const writer = yield* connectTo("chDB")
    const client = yield* acquireOpened(Effect.sync(() => createClient({ connection: writer, ...quiet })), "chDB")
    yield* commandOn(client, makeError, `CREATE DATABASE IF NOT EXISTS ${DEFAULT_DATABASE}`)
    for (const sql of [`USE ${DEFAULT_DATABASE}`, "SET output_format_json_quote_64bit_integers = 0"]) {
      yield* commandOn(client, makeError, sql)
    }
    const readOnlyClient = yield* acquireOpened(connect("chDB read-only session"), "chDB read-only session")
    for (const sql of [`USE ${DEFAULT_DATABASE}`, "SET output_format_json_quote_64bit_integers = 0", "SET readonly = 1"]) {
      yield* commandOn(readOnlyClient, makeError, sql)
    }
    const sendRows: Backend["sendRows"] = (table, columns, lines, signal) =>
      writer.chdb.rawInsert({ table, columns, values: lines, format: ROWS_FORMAT, settings: INSERT_SETTINGS, signal })
    return { database: DEFAULT_DATABASE, embedded: true, client, readOnlyClient, readOnlySettings: {}, makeError, sendRows }
  })

const serverBackend = (url: Redacted.Redacted<string>): Effect.Effect<Backend, ClickhouseError, Scope.Scope> =>
  Effect.gen(function*() {
    const target = yield* parseServerUrl(url)
    const makeError = errorFactory(target.password)
    const connect = (database: string) => () =>
      createClient({
        url: target.url,
        database,
        clickhouse_settings: outputSettings,
        ...quiet,
        ...(target.username === undefined ? {} : { username: target.username }),
        ...(target.password === undefined ? {} : { password: target.password })
      })
    // The database must exist before a client can name it as its default.
    yield* Effect.scoped(
      Effect.flatMap(
        acquireClient(connect("default"), makeError, "ClickHouse bootstrap client"),
        (bootstrap) => commandOn(bootstrap, makeError, `CREATE DATABASE IF NOT EXISTS \`${target.database.replaceAll("`", "``")}\``)
      )
    )
    const client = yield* acquireClient(connect(target.database), makeError, "ClickHouse client")
    return {
      database: target.database,
      embedded: false,
      client,
      readOnlyClient: client,
      readOnlySettings: { ...outputSettings, readonly: "1" },
      makeError,
      // The statement as the client's insert writes it, the lines as the request body unchanged
      // (its insert would encode rows itself). Columns are the rows' own keys, named by this code.
      sendRows: async (table, columns, lines, signal) => {
        const result = await client.exec({
          query: `INSERT INTO ${table} (${columns.join(", ")}) FORMAT ${ROWS_FORMAT}`,
          values: Readable.from([lines], { objectMode: false }),
          clickhouse_settings: INSERT_SETTINGS,
          abort_signal: signal
        })
        await finished(result.stream.resume())
      }
    }
  })

const fromBackend = (backend: Backend): ClickhouseService => {
  const { client, makeError } = backend
  const spanAttributes = { "db.system.name": "clickhouse", "db.namespace": backend.database }

  const command = Effect.fn("Clickhouse.command")(function*(sql: string) {
    yield* commandOn(client, makeError, sql)
  })

  const query = <A = Record<string, unknown>>(sql: string, params?: Record<string, unknown>) =>
    Effect.tryPromise({
      try: async (signal) => {
        const result = await client.query({
          query: sql,
          format: "JSONEachRow",
          abort_signal: signal,
          ...(params === undefined ? {} : { query_params: params })
        })
        return result.json<A>()
      },
      catch: (cause) => makeError("query", cause)
    }).pipe(Effect.withSpan("Clickhouse.query", { attributes: spanAttributes }))

  // Rows go as JSONCompactEachRow lines written into a pooled buffer (engine/store/RowBody.ts):
  // arrays in a named column order are about half the encoding work of JSONEachRow in this process
  // and twice the insert rate in ClickHouse (BENCHMARKS.md). A buffer goes back to the pool only
  // once its insert succeeded: one that failed or was cut short may still be read.
  const pool = new BodyPool()
  const encode = (rows: ReadonlyArray<Record<string, unknown>>) => encodeRows(rows, pool)
  const lines = (columns: ReadonlyArray<string>) => new RowLines(columns, pool)
  const insertLines = (table: string, lines: RowLines) =>
    lines.rows === 0 ? Effect.void : Effect.tryPromise({
      try: async (signal) => {
        await backend.sendRows(table, lines.columns, lines.bytes, signal)
        lines.release()
      },
      catch: (cause) => makeError(`insert into ${table}`, cause)
    }).pipe(
      Effect.withSpan("Clickhouse.insert", { attributes: { ...spanAttributes, table, rows: lines.rows } })
    )
  const insert = <A>(table: string, rows: ReadonlyArray<A>) =>
    rows.length === 0 ? Effect.void : Effect.suspend(() => insertLines(table, encode(rows as ReadonlyArray<Record<string, unknown>>)))

  const readOnlyQuery = Effect.fn("Clickhouse.readOnlyQuery")(function*(sql: string) {
    const statement = yield* checkReadOnlySql(sql)
    return yield* Effect.tryPromise({
      try: async (signal) => {
        const result = await backend.readOnlyClient.query({
          query: statement,
          format: "JSONEachRow",
          abort_signal: signal,
          clickhouse_settings: backend.readOnlySettings
        })
        return result.json<Record<string, unknown>>()
      },
      catch: (cause) => makeError("read-only query", cause)
    })
  })

  const ping = Effect.tryPromise({
    try: () => client.ping(),
    catch: (cause) => makeError("ping", cause)
  }).pipe(
    Effect.flatMap((result) => result.success ? Effect.void : Effect.fail(makeError("ping", result.error))),
    Effect.withSpan("Clickhouse.ping", { attributes: spanAttributes })
  )

  return { database: backend.database, embedded: backend.embedded, command, query, insert, encode, lines, insertLines, readOnlyQuery, ping }
}

/** Opens the clients for the life of the scope. chDB allows one data directory per process: acquire once. */
export const make = (options: ClickhouseOptions): Effect.Effect<ClickhouseService, ClickhouseError, Scope.Scope> =>
  Effect.map(
    options.url === undefined ? embeddedBackend(options.dataDir) : serverBackend(options.url),
    fromBackend
  ).pipe(Effect.withSpan("Clickhouse.make", { attributes: { embedded: options.url === undefined } }))

/** The service, opened for the life of the layer. `layerConfig` reads CLICKHOUSE_URL and MEMBERFLOW_DATA_DIR. */
export class Clickhouse extends Context.Tag("memberflow/Clickhouse")<Clickhouse, ClickhouseService>() {
  static readonly layerConfig: Layer.Layer<Clickhouse, ClickhouseError | ConfigError> = Layer.scoped(
    Clickhouse,
    Effect.flatMap(ClickhouseConfig, make)
  )
}

export const layer = (options: ClickhouseOptions): Layer.Layer<Clickhouse, ClickhouseError> =>
  Layer.scoped(Clickhouse, make(options))

export const layerConfig = (
  config: Config.Config<ClickhouseOptions> = ClickhouseConfig
): Layer.Layer<Clickhouse, ClickhouseError | ConfigError> => Layer.scoped(Clickhouse, Effect.flatMap(config, make))
