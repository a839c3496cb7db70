import { HttpRouter, HttpServer, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { Clock, Config, ConfigError, Effect, Layer, Option, Redacted, Runtime } from "effect"
import { createServer, type Server } from "node:http"
import { isLoopback, tokenMatches } from "./AdminAuth.ts"
import { Clickhouse, DataDirConfig } from "./Clickhouse.ts"
import { recordAdminAddress } from "./ingest/EngineIdentity.ts"
import type { JourneySlot } from "./journeys/Machine.ts"
import { publicProfile } from "./member/MemberState.ts"
import { Ingest } from "./Ingest.ts"
import { Timers } from "./Timers.ts"
import { JourneyRuntime } from "./JourneyRuntime.ts"
import { MemberLookup } from "./MemberLookup.ts"
import { observeGc, renderPrometheus, watchHolds } from "./Metrics.ts"
import { resubscribe, unsubscribe, unsubscribePage } from "./Unsubscribe.ts"
import { twilioStatusCallback } from "./Webhooks.ts"
import { Nats } from "./Nats.ts"
import { ProgramRuntime } from "./ProgramRuntime.ts"
import * as Settings from "./Settings.ts"

const json = (status: number, body: unknown) => HttpServerResponse.unsafeJson(body, { status })

/**
 * The admin HTTP server (operations.md): health, readiness, metrics, member lookups and read-only
 * SQL. Admin routes need `Authorization: Bearer <MEMBERFLOW_ADMIN_TOKEN>`; without a token the
 * server refuses to bind anywhere but loopback.
 */
export const HttpLive = Layer.unwrapEffect(
  Effect.gen(function* () {
    const port = yield* Settings.httpPort
    const host = yield* Settings.httpHost
    const token = yield* Config.option(Config.redacted("MEMBERFLOW_ADMIN_TOKEN"))
    if (Option.isNone(token) && !isLoopback(host)) {
      return yield* Effect.fail(
        ConfigError.InvalidData(["MEMBERFLOW_ADMIN_TOKEN"], `is required when the admin API binds to ${host} (not loopback)`)
      )
    }
    observeGc()
    // A hold of half a second or more is logged with how the thread spent it (engine/Metrics.ts, `watchHolds`).
    const runtime = yield* Effect.runtime<never>()
    const ms = (value: number | null) => (value === null ? "unknown" : Math.round(value))
    watchHolds(({ heldMs, cpuMs, waitingMs }) => {
      if (heldMs < 500) return
      Runtime.runFork(runtime)(
        Effect.logWarning("the engine's thread held events up").pipe(
          Effect.annotateLogs({ heldMs: Math.round(heldMs), onCoreMs: ms(cpuMs), waitingForCoreMs: ms(waitingMs) })
        )
      )
    })

    const guarded = <E, R>(handler: Effect.Effect<HttpServerResponse.HttpServerResponse, E, R>) =>
      Effect.gen(function* () {
        if (Option.isSome(token)) {
          const request = yield* HttpServerRequest.HttpServerRequest
          if (!tokenMatches(request.headers["authorization"], Redacted.value(token.value))) {
            return json(401, { error: "unauthorized: send Authorization: Bearer <MEMBERFLOW_ADMIN_TOKEN>" })
          }
        }
        return yield* handler
      })

    const router = HttpRouter.empty.pipe(
      HttpRouter.get("/healthz", HttpServerResponse.text("ok")),
      // Providers call these: their signature is the authentication, not the admin token.
      HttpRouter.post("/webhooks/twilio", twilioStatusCallback),
      // Members follow these from their messages: the link's signature is the authentication.
      HttpRouter.get("/unsubscribe", unsubscribePage),
      HttpRouter.post("/unsubscribe", unsubscribe),
      HttpRouter.post("/resubscribe", resubscribe),
      HttpRouter.get(
        "/readyz",
        Effect.gen(function* () {
          const { connection } = yield* Nats
          const clickhouse = yield* Clickhouse
          const runtime = yield* ProgramRuntime
          const journeys = yield* (yield* JourneyRuntime).status
          const nats = yield* Effect.tryPromise(() => connection.flush()).pipe(Effect.as("ok"), Effect.orElseSucceed(() => "unreachable"))
          const ch = yield* clickhouse.ping.pipe(Effect.as("ok"), Effect.orElseSucceed(() => "unreachable"))
          const ready = nats === "ok" && ch === "ok"
          const ingest = yield* (yield* Ingest).status
          const timers = (yield* Timers).status()
          return json(ready ? 200 : 503, {
            ready,
            nats,
            clickhouse: ch,
            // which member partitions this engine owns, and how far behind the stream it is
            // and which of them it is still replaying (taken behind the stream: their lookups wait meanwhile)
            ingest: {
              engine: ingest.engineId,
              partitions: ingest.partitions,
              owned: ingest.owned.map((o) => o.partition),
              replaying: ingest.owned.filter((o) => o.replaying > 0).map((o) => ({ partition: o.partition, behind: o.replaying })),
              lag: ingest.lag
            },
            // journey timers this engine keeps for its partitions; partitions whose timers are still being read in
            timers,
            program: { dir: runtime.dir, loaded: true },
            // A refused edit keeps the running journeys (still ready) and shows why here.
            journeys: { loaded: journeys.set.current.length, error: journeys.error }
          })
        })
      ),
      HttpRouter.get(
        "/metrics",
        Effect.map(renderPrometheus, (text) => HttpServerResponse.text(text, { contentType: "text/plain; version=0.0.4" }))
      ),
      HttpRouter.get(
        "/members/:id",
        guarded(
          Effect.gen(function* () {
            const { id } = yield* HttpRouter.params
            const lookup = yield* MemberLookup
            const runtime = yield* ProgramRuntime
            // This engine runs, so a partition without an owner gets one shortly: waited for, not read from KV.
            const found = yield* lookup.get(id ?? "", { awaitOwner: true }).pipe(
              Effect.map((state) => ({ state })),
              // Its partition's new owner is still replaying the stream: a state now would be older than it.
              Effect.catchTag("MemberReplayingError", (error) => Effect.succeed({ replaying: error })),
              // Said as it is (its stored state cannot be read, NATS away…), not as "internal error".
              Effect.catchTag("MemberStoreError", (error) => Effect.succeed({ failed: error }))
            )
            if ("failed" in found) return json(500, { error: found.failed.message })
            if ("replaying" in found) {
              return HttpServerResponse.unsafeJson({ error: found.replaying.message, replaying: found.replaying.behind }, { status: 503, headers: { "retry-after": "2" } })
            }
            const state = found.state
            if (state === null) return json(404, { error: `no member ${id}` })
            const ctx = yield* runtime.context
            const now = yield* Clock.currentTimeMillis
            // operations.md: the profile, its active enrollments and its recent messages
            const journeys = Object.values(state.journeys as Record<string, JourneySlot>)
              .flatMap((slot) => (slot.active === null ? [] : [slot.active]))
              .map((e) => ({
                journeyId: e.journeyId,
                version: e.journeyVersion,
                enrollmentId: e.id,
                variant: e.variant,
                enteredAt: new Date(e.enteredAt).toISOString(),
                step: e.stepId,
                ...(e.wait === null ? {} : { waitingFor: e.wait.kind === "timer" ? "time" : "event", until: new Date(e.wait.due).toISOString() })
              }))
            const clickhouse = yield* Clickhouse
            const messages = yield* clickhouse
              .query(
                "SELECT message_id, journey_id, step_id, variant, channel, template, status, reason, provider_message_id, created_at, updated_at FROM messages FINAL WHERE member_id = {member:String} ORDER BY created_at DESC LIMIT 20",
                { member: state.memberId }
              )
              .pipe(Effect.orElseSucceed(() => []))
            return json(200, { ...publicProfile(state, ctx, now), journeys, messages })
          })
        )
      ),
      HttpRouter.get(
        "/journeys",
        guarded(
          Effect.gen(function* () {
            const { set, error, loadedAt } = yield* (yield* JourneyRuntime).status
            const clickhouse = yield* Clickhouse
            const counts = yield* clickhouse
              .query<{ journey_id: string; journey_version: string; variant: string; status: string; n: number }>(
                "SELECT journey_id, journey_version, variant, status, count() AS n FROM journey_enrollments FINAL GROUP BY journey_id, journey_version, variant, status"
              )
              .pipe(Effect.orElseSucceed(() => []))
            return json(200, {
              error,
              loadedAt: new Date(loadedAt).toISOString(),
              journeys: set.current.map(({ journey, version }) => ({
                id: journey.id,
                name: journey.name,
                status: journey.status,
                category: journey.category,
                version,
                enrollments: counts
                  .filter((c) => c.journey_id === journey.id)
                  .map((c) => ({ version: c.journey_version, variant: c.variant, status: c.status, count: Number(c.n) }))
              }))
            })
          })
        )
      ),
      HttpRouter.post(
        "/sql",
        guarded(
          Effect.gen(function* () {
            const request = yield* HttpServerRequest.HttpServerRequest
            const body = yield* request.text
            const contentType = request.headers["content-type"] ?? ""
            let sql = body
            if (contentType.includes("application/json")) {
              const parsed = yield* Effect.try(() => JSON.parse(body) as { sql?: unknown }).pipe(Effect.orElseSucceed(() => ({ sql: undefined })))
              if (typeof parsed.sql !== "string") return json(400, { error: 'send {"sql": "SELECT ..."} or the SQL as text/plain' })
              sql = parsed.sql
            }
            const clickhouse = yield* Clickhouse
            return yield* clickhouse.readOnlyQuery(sql).pipe(
              Effect.map((rows) => json(200, { rows })),
              Effect.catchTags({
                SqlRejected: (error) => Effect.succeed(json(400, { error: error.message })),
                ClickhouseError: (error) => Effect.succeed(json(400, { error: error.message }))
              })
            )
          })
        )
      )
    )

    // On shutdown the routes go first, then the server closes once its connections have. A request
    // arriving on a kept-alive connection after that is never answered, and the connection never
    // closes (a provider's status callbacks, a monitor's polls): the shutdown would wait forever.
    // So idle connections are closed at once and the rest after a second.
    const servers: Array<Server> = []
    const closeConnections = Layer.scopedDiscard(
      Effect.addFinalizer(() =>
        Effect.sync(() => {
          for (const server of servers) {
            server.closeIdleConnections()
            setTimeout(() => server.closeAllConnections(), 1_000).unref()
          }
        })
      )
    )
    // Where the CLI finds this engine (engine/Cli/EngineQuery.ts): the host and the port bound, whatever was asked (0: any).
    const dataDir = yield* DataDirConfig
    const recordAddress = Layer.effectDiscard(
      Effect.gen(function* () {
        const { address } = yield* HttpServer.HttpServer
        if (address._tag !== "TcpAddress") return
        yield* recordAdminAddress(dataDir, host, address.port).pipe(
          Effect.catchAll((error) => Effect.logWarning("the CLI will not find this engine's admin API by its data directory").pipe(Effect.annotateLogs({ reason: error.message })))
        )
      })
    )
    return router.pipe(
      // A path or method nobody serves (a scanner's probe, a GET of a POST-only route): 404, not an error.
      Effect.catchTag("RouteNotFound", () => Effect.succeed(json(404, { error: "not found" }))),
      Effect.catchAllCause((cause) => Effect.logError("admin request failed", cause).pipe(Effect.as(json(500, { error: "internal error" })))),
      HttpServer.serve(),
      HttpServer.withLogAddress,
      Layer.merge(recordAddress),
      Layer.provide(
        NodeHttpServer.layer(() => {
          const server = createServer()
          servers.push(server)
          return server
        }, { port, host })
      ),
      Layer.merge(closeConnections)
    )
  })
)
