import { FetchHttpClient, HttpClient, HttpClientRequest } from "@effect/platform"
import { Config, Data, Effect, Option, Redacted } from "effect"
import { Clickhouse, DataDirConfig } from "../Clickhouse.ts"
import * as Settings from "../Settings.ts"

/** The running engine refused or failed the statement. */
export class QueryFailed extends Data.TaggedError("QueryFailed")<{ readonly message: string }> {}

/**
 * Read-only SQL for the CLI (`memberflow query`, `memberflow lift`): the embedded database belongs
 * to the running engine, so the statement goes to its admin API (`POST /sql`) first; with no engine
 * answering, the CLI opens the database itself. Both paths run the same read-only guard.
 */
export const engineQuery = (sql: string) =>
  Effect.gen(function* () {
    const port = yield* Settings.httpPort
    const token = yield* Config.option(Config.redacted("MEMBERFLOW_ADMIN_TOKEN"))
    const client = yield* HttpClient.HttpClient
    const viaEngine = yield* HttpClientRequest.post(`http://127.0.0.1:${port}/sql`).pipe(
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
          // No engine answered and the database opened here has no memberflow tables: said so, not as
          // ClickHouse's error with its causes (what `memberflow lift` printed on a fresh folder).
          Effect.catchTag("ClickhouseError", (error) =>
            Effect.flatMap(DataDirConfig, (dataDir) =>
              Effect.fail(
                new QueryFailed({
                  message: /UNKNOWN_TABLE|Unknown table/i.test(error.message)
                    ? `no engine answered on http://127.0.0.1:${port}, and the database in ${dataDir} has no memberflow tables: start \`memberflow run\` (or \`memberflow migrate\`) with this MEMBERFLOW_DATA_DIR, or set MEMBERFLOW_HTTP_PORT to the running engine's port (${error.message.split("\n")[0]})`
                    : `no engine answered on http://127.0.0.1:${port}; the database in ${dataDir} refused the statement: ${error.message.split("\n")[0]}`
                })
              )
            )
          )
        )
    })
  }).pipe(Effect.provide(FetchHttpClient.layer))
