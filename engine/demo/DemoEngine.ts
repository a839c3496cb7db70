import { Command, FileSystem, HttpClient, HttpClientRequest } from "@effect/platform"
import { Clock, Data, type Duration, Effect, Stream } from "effect"
import { execPath } from "node:process"
import { fileURLToPath } from "node:url"
import { ENGINE_NODE_FLAGS } from "../NodeFlags.ts"

/**
 * `memberflow run` as a child process of the demo, the way an operator runs it: the package's bin,
 * its own environment, its log in a file, its admin API (`POST /sql`, `/metrics`) as the only way
 * in. Scoped: leaving the scope (the end of the demo, a failure, Ctrl-C) sends it SIGTERM, which
 * drains it, and waits for it to exit.
 */

export class DemoEngineFailed extends Data.TaggedError("DemoEngineFailed")<{ readonly message: string }> {}

const BIN = fileURLToPath(new URL("../../bin/memberflow.js", import.meta.url))

export interface DemoEngine {
  readonly url: string
  readonly pid: number
  readonly sql: <A = Record<string, unknown>>(query: string) => Effect.Effect<ReadonlyArray<A>, DemoEngineFailed>
  /** the Prometheus text of `/metrics` */
  readonly metrics: Effect.Effect<string, DemoEngineFailed>
  /** events in the stream the engine has not handled yet (its `/readyz`); -1 when it cannot say */
  readonly lag: Effect.Effect<number, DemoEngineFailed>
  /** fails, with the end of the engine's log, once the process has exited */
  readonly alive: Effect.Effect<void, DemoEngineFailed>
  /** waits until `/readyz` answers 200 (the stream, tables and journeys are loaded) */
  readonly ready: Effect.Effect<void, DemoEngineFailed>
  /** SIGTERM (drain), then its exit code; SIGKILL if it has not exited after `grace` */
  readonly stop: (grace: Duration.DurationInput) => Effect.Effect<number | null>
}

const failed = (message: string) => (cause: unknown) =>
  new DemoEngineFailed({ message: `${message}: ${cause instanceof Error ? cause.message : String(cause)}` })

export const startDemoEngine = (options: { readonly env: Record<string, string>; readonly port: number; readonly token: string; readonly logFile: string }) =>
  Effect.gen(function* () {
    const fs = yield* FileSystem.FileSystem
    const client = yield* HttpClient.HttpClient
    const url = `http://127.0.0.1:${options.port}`
    const child = yield* Command.make(execPath, ...ENGINE_NODE_FLAGS, BIN, "run").pipe(
      Command.env(options.env),
      Command.start,
      Effect.mapError(failed("cannot start memberflow run"))
    )
    yield* Stream.merge(child.stdout, child.stderr).pipe(Stream.run(fs.sink(options.logFile)), Effect.ignore, Effect.forkScoped)

    const logTail = fs.readFileString(options.logFile).pipe(
      Effect.map((text) => text.trimEnd().split("\n").slice(-15).join("\n")),
      Effect.orElseSucceed(() => "(no log)")
    )
    const alive = child.isRunning.pipe(
      Effect.orElseSucceed(() => false),
      Effect.flatMap((running) =>
        running
          ? Effect.void
          : Effect.flatMap(logTail, (tail) =>
            Effect.fail(new DemoEngineFailed({ message: `the engine (memberflow run, pid ${child.pid}) exited. The end of its log, ${options.logFile}:\n${tail}` }))
          )
      )
    )

    const request = (r: HttpClientRequest.HttpClientRequest) =>
      client.execute(HttpClientRequest.bearerToken(r, options.token)).pipe(
        Effect.flatMap((response) => Effect.map(response.text, (text) => ({ status: response.status, text }))),
        Effect.scoped,
        Effect.mapError(failed(`the engine's admin API at ${url} did not answer`))
      )

    const sql = <A = Record<string, unknown>>(query: string): Effect.Effect<ReadonlyArray<A>, DemoEngineFailed> =>
      request(HttpClientRequest.post(`${url}/sql`).pipe(HttpClientRequest.bodyText(query, "text/plain"))).pipe(
        Effect.flatMap(({ status, text }) =>
          Effect.try({
            try: () => JSON.parse(text) as { rows?: Array<A>; error?: string },
            catch: failed(`POST /sql answered ${status} with something other than JSON`)
          }).pipe(
            Effect.flatMap((body) =>
              status === 200 && body.rows !== undefined
                ? Effect.succeed(body.rows)
                : Effect.fail(new DemoEngineFailed({ message: `POST /sql failed (${status}): ${body.error ?? text}` }))
            )
          )
        )
      )

    const metrics = request(HttpClientRequest.get(`${url}/metrics`)).pipe(Effect.map(({ text }) => text))
    const lag = request(HttpClientRequest.get(`${url}/readyz`)).pipe(
      Effect.map(({ text }) => {
        try {
          const lag = (JSON.parse(text) as { ingest?: { lag?: unknown } }).ingest?.lag
          return typeof lag === "number" ? lag : -1
        } catch {
          return -1
        }
      })
    )

    // Ready when /readyz says so; an engine that exits first is a failure with its log.
    const readyz = request(HttpClientRequest.get(`${url}/readyz`)).pipe(
      Effect.map(({ status }) => status === 200),
      Effect.orElseSucceed(() => false)
    )
    const ready = Effect.gen(function* () {
      const deadline = (yield* Clock.currentTimeMillis) + 180_000
      for (;;) {
        yield* alive
        if (yield* readyz) return
        if ((yield* Clock.currentTimeMillis) > deadline) {
          const tail = yield* logTail
          return yield* new DemoEngineFailed({ message: `the engine was not ready after 180 s. The end of its log, ${options.logFile}:\n${tail}` })
        }
        yield* Effect.sleep("250 millis")
      }
    })

    const exitCode = child.exitCode.pipe(Effect.map((code): number | null => code), Effect.orElseSucceed(() => null))
    const stop = (grace: Duration.DurationInput) =>
      child.kill("SIGTERM").pipe(
        Effect.timeout(grace),
        Effect.catchAll(() => child.kill("SIGKILL").pipe(Effect.ignore)),
        Effect.zipRight(exitCode)
      )
    return { url, pid: child.pid, sql, metrics, lag, alive, ready, stop } satisfies DemoEngine
  })
