import { FetchHttpClient, HttpClient, HttpClientRequest } from "@effect/platform"
import { Config, Data, Effect, Option, Redacted } from "effect"
import { urlHostFor } from "../AdminAuth.ts"
import { Clickhouse, DataDirConfig } from "../Clickhouse.ts"
import { type RunningEngine, runningEngineOf } from "../ingest/EngineIdentity.ts"
import * as Settings from "../Settings.ts"

/** Why the statement failed when no engine answered and the folder's database, opened here, refused it. */
const noEngine = (origin: string, dataDir: string, cause: string, engine: RunningEngine | null): string => {
  const where = `no engine answered on ${origin}`
  const first = cause.split("\n")[0]
  if (/UNKNOWN_TABLE|Unknown table/i.test(cause)) {
    return `${where}, and the database in ${dataDir} has no memberflow tables: start \`memberflow run\` (or \`memberflow migrate\`) with this MEMBERFLOW_DATA_DIR, or set MEMBERFLOW_HTTP_PORT to the running engine's port (${first})`
  }
  // chDB opens a folder in one process at a time, and only says it "failed to create connection".
  if (engine !== null) {
    const set = engine.httpPort === null ? `set MEMBERFLOW_HTTP_PORT to that engine's admin port (its log says "Listening on …")` : `it listens on port ${engine.httpPort}: set MEMBERFLOW_HTTP_PORT to that, or leave it unset`
    return `${where}, and the database in ${dataDir} is open in the engine running with this MEMBERFLOW_DATA_DIR (process ${engine.pid}): ${set}`
  }
  return `${where}; the database in ${dataDir} refused the statement: ${first}`
}

/** The running engine refused or failed the statement. */
export class QueryFailed extends Data.TaggedError("QueryFailed")<{ readonly message: string }> {}

/**
 * The admin API to ask, as `http://host:port`. The port: MEMBERFLOW_HTTP_PORT when it is set to a
 * port; otherwise (unset, or 0: any free port) the one the engine running with MEMBERFLOW_DATA_DIR
 * recorded when it began to listen (engine/ingest/EngineIdentity.ts), else the default. The host:
 * MEMBERFLOW_HTTP_HOST when set, else the one that engine recorded, else loopback; one that means
 * every interface (0.0.0.0) is asked on loopback.
 */
const adminOrigin = Effect.gen(function* () {
  const engine = runningEngineOf(yield* DataDirConfig)
  const configured = yield* Settings.httpPort
  const portSet = Option.isSome(yield* Config.option(Config.string("MEMBERFLOW_HTTP_PORT")))
  const port = portSet && configured !== 0 ? configured : (engine?.httpPort ?? (configured === 0 ? Settings.DEFAULT_HTTP_PORT : configured))
  const hostSet = Option.isSome(yield* Config.option(Config.string("MEMBERFLOW_HTTP_HOST")))
  const host = hostSet ? yield* Settings.httpHost : (engine?.httpHost ?? (yield* Settings.httpHost))
  return `http://${urlHostFor(host)}:${port}`
})

/**
 * Read-only SQL for the CLI (`memberflow query`, `memberflow lift`): the embedded database belongs
 * to the running engine, so the statement goes to its admin API (`POST /sql`) first; with no engine
 * answering, the CLI opens the database itself. Both paths run the same read-only guard.
 */
export const engineQuery = (sql: string) =>
  Effect.gen(function* () {
    const origin = yield* adminOrigin
    const token = yield* Config.option(Config.redacted("MEMBERFLOW_ADMIN_TOKEN"))
    const client = yield* HttpClient.HttpClient
    const viaEngine = yield* HttpClientRequest.post(`${origin}/sql`).pipe(
      HttpClientRequest.bodyText(sql, "text/plain"),
      Option.isSome(token) ? HttpClientRequest.bearerToken(Redacted.value(token.value)) : (r) => r,
      client.execute,
      Effect.flatMap((response) => Effect.map(response.json, (body) => ({ status: response.status, body: body as { rows?: Array<Record<string, unknown>>; error?: string } }))),
      Effect.scoped,
      Effect.option
    )
    return yield* Option.match(viaEngine, {
      onSome: ({ status, body }): Effect.Effect<ReadonlyArray<Record<string, unknown>>, QueryFailed> =>
        status === 200 && body.rows !== undefined ? Effect.succeed(body.rows) : Effect.fail(new QueryFailed({ message: body.error ?? `engine answered ${status}` })),
      onNone: () =>
        Effect.flatMap(Clickhouse, (clickhouse) => clickhouse.readOnlyQuery(sql)).pipe(
          Effect.provide(Clickhouse.layerConfig),
          // No engine answered and the database opened here could not answer: said why, not as
          // ClickHouse's error with its causes (what `memberflow lift` printed on a fresh folder).
          Effect.catchTag("ClickhouseError", (error) =>
            Effect.gen(function* () {
              const dataDir = yield* DataDirConfig
              const engine = yield* Effect.sync(() => runningEngineOf(dataDir))
              return yield* new QueryFailed({ message: noEngine(origin, dataDir, error.message, engine) })
            })
          )
        )
    })
  }).pipe(Effect.provide(FetchHttpClient.layer))
