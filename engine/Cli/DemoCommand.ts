import { Command, Options } from "@effect/cli"
import { FetchHttpClient } from "@effect/platform"
import { Clock, Config, ConfigProvider, Console, Context, Data, Effect, Either, Fiber, Layer, Option } from "effect"
import { randomBytes } from "node:crypto"
import { mkdir, mkdtemp, writeFile } from "node:fs/promises"
import { createServer } from "node:net"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import { formatReport, validateDir } from "../journeys/JourneyFile.ts"
import { SHIPPED_JOURNEYS, writeDemoJourneys } from "../demo/DemoJourneys.ts"
import { startDemoEngine } from "../demo/DemoEngine.ts"
import { runUntilSettled } from "../demo/DemoRun.ts"
import { n, table } from "../demo/Progress.ts"
import { goalPlanOf, RATES } from "../demo/Responder.ts"
import { generateBrand } from "../demo/SyntheticBrand.ts"
import { Nats } from "../Nats.ts"
import { publishFile } from "../Publisher.ts"
import { CAMPAIGN_LIFT } from "../store/CampaignLift.ts"
import { ensureTopology, Topology } from "../Topology.ts"
import { decodeLiftRows, report as liftReport } from "./LiftCommand.ts"
import { reportCommand } from "./ReportCommand.ts"

/**
 * `memberflow demo`: the whole product on one machine with only NATS running. Its own stream,
 * subjects and KV buckets (a timestamped suffix) and a temp folder, so it never touches a real
 * deployment; the shipped journeys demo-timed (a day passes in a second); `memberflow run` as a
 * child process in sandbox mode; a synthetic brand's 13 months of history; members answering
 * their journeys, some arms better than control; progress while it runs; the lift table at the end.
 */

export class DemoFailed extends Data.TaggedError("DemoFailed")<{ readonly message: string }> {}

/**
 * The brand the issue describes. Measured on the 2-core machine with nothing else running: 20,000
 * members in 105 s (history applied by 60 s, journeys settled by 103 s), peak RSS 1.6 GB.
 */
export const DEFAULT_MEMBERS = 20_000

const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`

const freePort = Effect.async<number, DemoFailed>((resume) => {
  const server = createServer()
  server.once("error", (cause) => resume(Effect.fail(new DemoFailed({ message: `no free port for the engine's admin API: ${cause.message}` }))))
  server.listen(0, "127.0.0.1", () => {
    const address = server.address()
    server.close(() =>
      resume(typeof address === "object" && address !== null ? Effect.succeed(address.port) : Effect.fail(new DemoFailed({ message: "no free port" })))
    )
  })
})

const io = <A>(what: string, f: () => Promise<A>) =>
  Effect.tryPromise({ try: f, catch: (cause) => new DemoFailed({ message: `${what}: ${cause instanceof Error ? cause.message : String(cause)}` }) })

/** Everything the demo made in NATS: its streams and KV buckets (never anything else). */
const dropTopology = Effect.gen(function* () {
  const { jsm } = yield* Nats
  const t = yield* Topology
  const streams = [t.stream, t.deadletterStream, t.timersStream, t.messagesStream, ...[t.membersBucket, t.metaBucket, t.ledgerBucket].map((b) => `KV_${b}`)]
  yield* Effect.forEach(streams, (name) => Effect.promise(() => jsm.streams.delete(name).catch(() => false)), { discard: true })
})

const reportCli = Command.run(reportCommand, { name: "memberflow report", version: "0.1.0" })

/**
 * The HTML report of each experiment journey: `memberflow report <journey> --out <file>` run in
 * this process, where the configuration is the demo's (its journeys, its engine's admin API).
 */
const htmlReports = (journeyIds: ReadonlyArray<string>, dir: string) =>
  Effect.forEach(journeyIds, (id) => {
    const file = join(dir, `${id}-report.html`)
    return reportCli(["node", "memberflow", id, "--out", file]).pipe(
      Effect.as(file),
      Effect.mapError((e) => new DemoFailed({ message: `memberflow report ${id} failed: ${typeof e === "object" && e !== null && "message" in e ? String(e.message) : String(e)}` }))
    )
  })

const options = {
  members: Options.integer("members").pipe(Options.withDefault(DEFAULT_MEMBERS), Options.withDescription("synthetic members")),
  seed: Options.text("seed").pipe(Options.withDefault("memberflow"), Options.withDescription("the same seed makes the same brand")),
  daySeconds: Options.float("day-seconds").pipe(Options.withDefault(1), Options.withDescription("how long a journey's day lasts in the demo, in seconds")),
  dir: Options.text("dir").pipe(Options.optional, Options.withDescription("where the demo's files go (default: a new temp folder)")),
  maxSeconds: Options.integer("max-seconds").pipe(Options.withDefault(600), Options.withDescription("stop waiting for the journeys after this long"))
}

const demo = (args: { readonly members: number; readonly seed: string; readonly daySeconds: number; readonly dir: Option.Option<string>; readonly maxSeconds: number }) =>
  Effect.gen(function* () {
    if (!Number.isInteger(args.members) || args.members < 100 || args.members > 1_000_000) {
      return yield* new DemoFailed({ message: `--members must be a whole number from 100 to 1,000,000 (got ${args.members})` })
    }
    if (!(args.daySeconds >= 0.2 && args.daySeconds <= 3600)) {
      return yield* new DemoFailed({ message: `--day-seconds must be from 0.2 to 3600 (got ${args.daySeconds})` })
    }
    const started = yield* Clock.currentTimeMillis
    const timings: Array<readonly [string, number]> = []
    const mark = (what: string) => Effect.map(Clock.currentTimeMillis, (now) => void timings.push([what, now - started]))

    // Names no deployment uses: a timestamp and a few random characters.
    const suffix = `${new Date(started).toISOString().replace(/[-:]/g, "").slice(0, 15)}_${randomBytes(2).toString("hex")}`.toLowerCase()
    const dir = Option.isSome(args.dir) ? resolve(args.dir.value) : yield* io("create a temp folder", () => mkdtemp(join(tmpdir(), "memberflow-demo-")))
    yield* io(`create ${dir}`, () => mkdir(dir, { recursive: true }))
    const journeys = yield* writeDemoJourneys(SHIPPED_JOURNEYS, join(dir, "journeys"), args.daySeconds).pipe(
      Effect.mapError((e) => new DemoFailed({ message: e.message }))
    )
    // The same checks as `memberflow validate`, before anything starts.
    const checked = yield* validateDir(journeys.dir)
    if (checked.errors.length > 0 || checked.program === undefined) {
      return yield* new DemoFailed({ message: `the demo's journeys do not validate:\n${formatReport(checked)}` })
    }
    const program = checked.program
    const port = yield* freePort
    const token = randomBytes(18).toString("base64url")
    const natsUrl = yield* Config.string("NATS_URL").pipe(Config.withDefault("nats://127.0.0.1:4222"))
    const env: Record<string, string> = {
      MEMBERFLOW_STREAM: `MEMBERFLOW_DEMO_${suffix.toUpperCase()}`,
      MEMBERFLOW_SUBJECT_PREFIX: `demo_${suffix}.events`,
      MEMBERFLOW_KV_PREFIX: `memberflow_demo_${suffix}`,
      MEMBERFLOW_DATA_DIR: join(dir, "data"),
      // its own embedded tables, even where CLICKHOUSE_URL points at a real deployment's server
      CLICKHOUSE_URL: "",
      JOURNEYS_DIR: journeys.dir,
      CHANNELS_MODE: "sandbox",
      MEMBERFLOW_HTTP_HOST: "127.0.0.1",
      MEMBERFLOW_HTTP_PORT: String(port),
      MEMBERFLOW_PUBLIC_URL: `http://127.0.0.1:${port}`,
      MEMBERFLOW_ADMIN_TOKEN: token,
      MEMBERFLOW_ACK_WAIT_MS: "3000",
      MEMBERFLOW_BRAND_NAME: "MAISON (demo)"
    }
    const natsLayer = Layer.merge(Nats.layer, Topology.layer)
    // In here the demo's names are the configuration, as they are for its engine.
    const provider = ConfigProvider.fromMap(new Map(Object.entries(env))).pipe(ConfigProvider.orElse(() => ConfigProvider.fromEnv()))

    return yield* Effect.gen(function* () {
      const context = yield* Layer.build(natsLayer).pipe(
        Effect.mapError((e) => new DemoFailed({ message: `cannot reach NATS at ${natsUrl} (${e.message}). Start one with \`nats-server -js\` or \`docker compose up nats\`; NATS_URL names another.` }))
      )
      const topology = Context.get(context, Topology)
      yield* ensureTopology().pipe(Effect.provide(context), Effect.mapError((e) => new DemoFailed({ message: e.message })))
      // Runs after the engine has stopped (finalizers run in reverse): the demo leaves nothing in NATS.
      yield* Effect.addFinalizer(() => dropTopology.pipe(Effect.provide(context)))

      yield* Console.log(`memberflow demo — ${n(args.members)} members, the six shipped journeys demo-timed (1 day = ${args.daySeconds} s), channels in sandbox`)
      yield* Console.log(`  folder      ${dir}`)
      yield* Console.log(`  journeys    ${journeys.dir} (validated: ${checked.journeys.length} journeys, ${checked.files} files)`)
      for (const [id, changes] of journeys.journeys) yield* Console.log(`                ${id}: ${changes.length === 0 ? "as shipped" : changes.join("; ")}`)
      yield* Console.log(`  NATS        ${natsUrl}: stream ${topology.stream}, subjects ${topology.subjectPrefix}.>, KV ${env["MEMBERFLOW_KV_PREFIX"]}_* (removed at the end)`)
      yield* Console.log(`  ClickHouse  ${env["MEMBERFLOW_DATA_DIR"]} (embedded; kept)`)
      const engine = yield* startDemoEngine({ env, port, token, logFile: join(dir, "engine.log") }).pipe(Effect.mapError((e) => new DemoFailed({ message: e.message })))
      yield* Console.log(`  engine      memberflow run (pid ${engine.pid}), CHANNELS_MODE=sandbox, admin API ${engine.url}, log ${join(dir, "engine.log")}`)
      // it starts (tables, journeys) while the brand is made and published
      const engineReady = yield* Effect.fork(Effect.zipRight(engine.ready, mark("engine ready")))

      const now = yield* Clock.currentTimeMillis
      const brand = generateBrand({
        members: args.members,
        seed: args.seed,
        now,
        currency: program.currency,
        tiers: program.tiers.levels,
        subscribeTemplates: [...new Set([...checked.templates.wechat.values()].filter((t) => t.kind === "subscribe").map((t) => t.templateId))],
        dateTriggers: checked.journeys.flatMap((j) => ("date" in j.trigger && j.status === "active" ? [j.trigger.date] : []))
      })
      const historyFile = join(dir, "history.jsonl")
      yield* io(`write ${historyFile}`, () => writeFile(historyFile, brand.members.flatMap((m) => m.events.map((e) => JSON.stringify(e))).join("\n") + "\n"))
      const count = (f: (m: (typeof brand.members)[number]) => string | null) => {
        const out = new Map<string, number>()
        for (const m of brand.members) {
          const key = f(m)
          if (key !== null) out.set(key, (out.get(key) ?? 0) + 1)
        }
        return out
      }
      const tiers = count((m) => m.tier)
      const roles = count((m) => m.role)
      yield* Console.log(`  brand       ${n(brand.events)} events of 13 months (${historyFile}); tiers ${program.tiers.levels.map((l) => `${l.name} ${n(tiers.get(l.id) ?? 0)}`).join(", ")}`)
      yield* Console.log(`              planted for today: ${[...roles.entries()].map(([role, k]) => `${role} ${n(k)}`).join(", ")}; lapsed 30+ days ${n(brand.members.filter((m) => m.lastPurchaseAt !== null && now - m.lastPurchaseAt > 30 * 86_400_000).length)}`)
      yield* Console.log(`              members answer: control ${RATES.control * 100}%, first variant ${RATES.variants[0] * 100}%, second ${RATES.variants[1] * 100}%, journeys without an experiment ${RATES.noExperiment * 100}%`)
      yield* mark("brand generated")

      let lastLine = 0
      const summary = yield* publishFile(historyFile, (done) => {
        const t = Date.now()
        if (t - lastLine < 3000 && done < brand.events) return
        lastLine = t
        process.stderr.write(`[${String(Math.round((t - started) / 1000)).padStart(3)}s] publishing history · ${n(done)}/${n(brand.events)}\n`)
      }).pipe(Effect.provide(context), Effect.mapError((e) => new DemoFailed({ message: e.message })))
      if (summary.refused.length > 0) return yield* new DemoFailed({ message: `NATS refused ${summary.refused.length} history events: ${summary.refused[0]?.reason}` })
      yield* mark("history published")
      yield* Fiber.join(engineReady).pipe(Effect.mapError((e) => new DemoFailed({ message: e.message })))

      const plans = new Map(checked.journeys.flatMap((j) => {
        const plan = goalPlanOf(j)
        return plan === null ? [] : [[plan.journeyId, plan] as const]
      }))
      const result = yield* runUntilSettled({
        engine,
        seed: args.seed,
        currency: program.currency,
        dayMs: args.daySeconds * 1000,
        plans,
        history: brand.events,
        started,
        deadline: started + args.maxSeconds * 1000
      }).pipe(Effect.provide(context), Effect.mapError((e) => new DemoFailed({ message: e.message })))
      if (result.caughtUpAt !== null) timings.push(["history applied by the engine", result.caughtUpAt])
      timings.push([result.settled ? "journeys settled" : "stopped waiting (--max-seconds)", result.settledAt])

      const sql = <A>(query: string) => engine.sql<A>(query).pipe(Effect.mapError((e) => new DemoFailed({ message: e.message })))
      const enrolled = yield* sql<{ journey_id: string; variant: string; n: number }>(
        "SELECT journey_id, variant, count() AS n FROM journey_enrollments FINAL GROUP BY journey_id, variant ORDER BY journey_id, variant"
      )
      const messages = yield* sql<{ channel: string; status: string; n: number }>(
        "SELECT channel, status, count() AS n FROM messages FINAL GROUP BY channel, status ORDER BY channel, status"
      )
      const conversions = yield* sql<{ journey_id: string; n: number; revenue: number }>(
        "SELECT journey_id, count() AS n, toFloat64(sum(value)) AS revenue FROM conversions FINAL GROUP BY journey_id ORDER BY journey_id"
      )
      yield* Console.log("")
      yield* Console.log(result.settled ? "Every journey has run its course." : `Stopped waiting after ${args.maxSeconds} s: some members are still inside a journey.`)
      yield* Console.log("")
      yield* Console.log(table(["journey", "arm", "enrolled"], enrolled.map((r) => [r.journey_id, r.variant, Number(r.n)])))
      yield* Console.log("")
      yield* Console.log(table(["channel", "status", "messages"], messages.map((r) => [r.channel, r.status, Number(r.n)])))
      yield* Console.log("")
      yield* Console.log(table(["journey", "conversions", "revenue"], conversions.map((r) => [r.journey_id, Number(r.n), Number(r.revenue)])))

      const decoded = decodeLiftRows(yield* sql<unknown>(`SELECT * FROM ${CAMPAIGN_LIFT}`))
      if (Either.isLeft(decoded)) return yield* new DemoFailed({ message: `${CAMPAIGN_LIFT} returned rows the lift report does not understand: ${decoded.left.message}` })
      const experiments = checked.journeys.filter((j) => j.experiment !== undefined).map((j) => j.id)
      for (const id of experiments) {
        const rows = decoded.right.filter((row) => row.journey_id === id)
        yield* Console.log("")
        if (rows.length === 0) yield* Console.log(`${id}: nobody entered it`)
        else for (const line of liftReport(id, rows)) yield* Console.log(line)
      }
      yield* Console.log("")
      const reports = yield* htmlReports(experiments, dir)
      for (const file of reports) yield* Console.log(`HTML report: ${file}`)
      yield* mark("lift printed")

      const code = yield* engine.stop("60 seconds")
      yield* mark(`engine stopped (exit ${code ?? "by signal"})`)
      yield* Console.log("")
      yield* Console.log(`Timings: ${[...timings].sort((a, b) => a[1] - b[1]).map(([what, ms]) => `${what} ${seconds(ms)}`).join(" · ")}`)
      yield* Console.log(`The tables stay in ${env["MEMBERFLOW_DATA_DIR"]}: MEMBERFLOW_DATA_DIR=${env["MEMBERFLOW_DATA_DIR"]} npx memberflow query "SELECT * FROM ${CAMPAIGN_LIFT}"`)
      if (code !== 0) return yield* new DemoFailed({ message: `the engine did not stop cleanly (exit ${code ?? "by signal"}); see ${join(dir, "engine.log")}` })
    }).pipe(
      Effect.scoped,
      // by now the scope has closed: the engine has drained and exited, the streams are gone
      Effect.onInterrupt(() => Console.error(`\ninterrupted: the demo's engine was stopped and its streams removed from NATS; its files stay in ${dir}`)),
      Effect.withConfigProvider(provider),
      Effect.provide(FetchHttpClient.layer)
    )
  })

export const demoCommand = Command.make("demo", options, demo).pipe(
  Command.withDescription("the whole product on one machine: a synthetic brand, the shipped journeys demo-timed, sandbox channels, a lift report")
)
