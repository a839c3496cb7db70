import { Args, Command, Options } from "@effect/cli"
import { Config, Console, Context, Effect, Layer, Option } from "effect"
import { statSync } from "node:fs"
import { Channels } from "../channels/Channels.ts"
import { liveSenders } from "../channels/LiveSenders.ts"
import { Clickhouse } from "./Clickhouse.ts"
import { DeliveryLive } from "./Delivery.ts"
import { MessageLedger } from "./Delivery/Ledger.ts"
import { ExperimentsLive } from "./Experiments.ts"
import { HttpLive } from "./Http.ts"
import { BroadcastsLive } from "./Broadcasts.ts"
import { engineQuery } from "./Cli/EngineQuery.ts"
import { deadletterCommand } from "./Cli/DeadletterCommand.ts"
import { demoCommand } from "./Cli/DemoCommand.ts"
import { liftCommand } from "./Cli/LiftCommand.ts"
import { reportCommand } from "./Cli/ReportCommand.ts"
import { simulateCommand } from "./Cli/SimulateCommand.ts"
import { Ingest, IngestLive } from "./Ingest.ts"
import { EngineId } from "./ingest/EngineIdentity.ts"
import { JourneyRuntime } from "./JourneyRuntime.ts"
import { TimersLive } from "./Timers.ts"
import { formatReport, validateDir, ValidationFailed } from "./journeys/JourneyFile.ts"
import { MaintenanceLive } from "./Maintenance.ts"
import { MemberLookup } from "./MemberLookup.ts"
import { MemberStore } from "./MemberStore.ts"
import { Nats } from "./Nats.ts"
import { ProgramRuntime } from "./ProgramRuntime.ts"
import { publishFile } from "./Publisher.ts"
import { migrate } from "./store/Migrations.ts"
import { ensureTopology, Topology } from "./Topology.ts"
import * as Settings from "./Settings.ts"
import { ThreadPriorityLive } from "./ThreadPriority.ts"

const ClickhouseLive = Clickhouse.layerConfig
const NatsLive = Layer.merge(Nats.layer, Topology.layer)

/** The engine: everything `memberflow run` starts, in dependency order. */
export const EngineLive = Layer.mergeAll(MaintenanceLive, HttpLive, BroadcastsLive, DeliveryLive, ExperimentsLive, ThreadPriorityLive).pipe(
  Layer.provideMerge(IngestLive),
  Layer.provideMerge(TimersLive),
  Layer.provideMerge(Layer.mergeAll(MemberStore.Default, MemberLookup.Default, ProgramRuntime.Default, JourneyRuntime.Default, Channels.layer(liveSenders), MessageLedger.Default)),
  Layer.provideMerge(Layer.effectDiscard(Effect.all([ensureTopology(), migrate], { discard: true }))),
  Layer.provideMerge(Layer.merge(NatsLive, ClickhouseLive)),
  // first: a data directory another live engine uses is refused before its database is opened
  Layer.provideMerge(EngineId.layer)
)

/**
 * Runs until interrupted (SIGTERM/SIGINT drain and exit 0) or until ingestion fails for good, which
 * fails the command (exit 1) so that a supervisor restarts the engine.
 */
const run = Command.make("run", {}, () =>
  // Every setting is checked before anything is connected or created (engine/Settings.ts).
  Settings.checkRunSettings.pipe(
    Effect.zipRight(Layer.build(EngineLive)),
    Effect.flatMap((context) => Context.get(context, Ingest).done),
    Effect.scoped
  )
).pipe(
  Command.withDescription("the engine: consume events, keep profiles, admin HTTP server")
)

const migrateCommand = Command.make("migrate", {}, () =>
  migrate.pipe(
    Effect.flatMap((applied) => Console.log(applied.length === 0 ? "ClickHouse is up to date" : `applied: ${applied.join(", ")}`)),
    Effect.provide(ClickhouseLive)
  )
).pipe(Command.withDescription("create / migrate the ClickHouse tables"))

const progressBar = (total: number) => {
  const interactive = process.stderr.isTTY === true
  let last = 0
  return (done: number) => {
    const now = Date.now()
    if (!interactive && now - last < 2000 && done < total) return
    last = now
    const ratio = total > 0 ? Math.min(done / total, 1) : 1
    const width = 30
    const filled = Math.round(ratio * width)
    const bar = `[${"#".repeat(filled)}${"-".repeat(width - filled)}] ${(ratio * 100).toFixed(0).padStart(3)}% ${done}/${total}`
    process.stderr.write(interactive ? `\r${bar}` : `${bar}\n`)
  }
}

const publish = Command.make("publish", { file: Args.file({ name: "file.jsonl", exists: "yes" }) }, ({ file }) =>
  Effect.gen(function* () {
    yield* ensureTopology()
    // Progress is by bytes read would need a second pass; lines are counted once up front instead.
    const size = statSync(file).size
    const total = size === 0 ? 0 : yield* Effect.promise(() => countLines(file))
    const summary = yield* publishFile(file, progressBar(total))
    process.stderr.write("\n")
    yield* Console.log(
      `published ${summary.published} events from ${file} (${summary.duplicates} duplicates dropped by JetStream, ${summary.refused.length} refused)`
    )
    for (const refusal of summary.refused) yield* Console.error(`${file}:${refusal.line}: refused by NATS: ${refusal.reason}`)
    if (summary.refused.length > 0) return yield* Effect.fail(new Error(`${summary.refused.length} lines were not published`))
  }).pipe(Effect.provide(NatsLive))
).pipe(Command.withDescription("publish events from a JSON-lines file, with progress"))

const countLines = async (file: string): Promise<number> => {
  const { createReadStream } = await import("node:fs")
  let count = 0
  let last = 10
  for await (const chunk of createReadStream(file)) {
    const buffer = chunk as Buffer
    for (let i = 0; i < buffer.length; i++) if (buffer[i] === 10) count++
    last = buffer[buffer.length - 1] ?? last
  }
  return last === 10 ? count : count + 1
}

/**
 * `memberflow query`: the embedded database belongs to the running engine, so the query goes to its
 * admin API first; with no engine running it opens the database itself.
 */
const query = Command.make(
  "query",
  { sql: Args.text({ name: "SQL" }), format: Options.choice("format", ["table", "json"]).pipe(Options.withDefault("table")) },
  ({ sql, format }) =>
    Effect.gen(function* () {
      const rows = yield* engineQuery(sql)
      if (format === "json") {
        for (const row of rows) yield* Console.log(JSON.stringify(row))
      } else {
        yield* Console.log(renderTable(rows))
      }
    })
).pipe(Command.withDescription("read-only SQL against the engine's ClickHouse"))

export const renderTable = (rows: ReadonlyArray<Record<string, unknown>>): string => {
  if (rows.length === 0) return "(no rows)"
  const columns = Object.keys(rows[0] ?? {})
  const cell = (value: unknown) => (typeof value === "string" ? value : JSON.stringify(value))
  const widths = columns.map((column) => Math.max(column.length, ...rows.map((row) => cell(row[column]).length)))
  const line = (values: ReadonlyArray<string>) => values.map((value, i) => value.padEnd(widths[i] ?? 0)).join("  ")
  return [line(columns), line(widths.map((w) => "-".repeat(w))), ...rows.map((row) => line(columns.map((c) => cell(row[c]))))].join("\n")
}

/** `memberflow validate [dir]`: checks journeys, program.yaml and templates; sends nothing; exit 1 on errors. */
const validate = Command.make("validate", { dir: Args.text({ name: "dir" }).pipe(Args.optional) }, ({ dir }) =>
  Effect.gen(function* () {
    const folder = Option.isSome(dir) ? dir.value : yield* Config.string("JOURNEYS_DIR").pipe(Config.withDefault("journeys"))
    const report = yield* validateDir(folder)
    yield* Console.log(formatReport(report))
    if (report.errors.length > 0) return yield* new ValidationFailed({ errors: report.errors.length })
  })
).pipe(Command.withDescription("check journeys, program.yaml and templates (file:line:column); exit 1 on errors"))

export const cli = Command.make("memberflow").pipe(
  Command.withDescription("real-time marketing automation for membership programs"),
  Command.withSubcommands([
    run,
    migrateCommand,
    publish,
    query,
    validate,
    simulateCommand,
    liftCommand,
    reportCommand,
    demoCommand,
    deadletterCommand.pipe(Command.provide(NatsLive))
  ])
)

export const runCli = Command.run(cli, { name: "memberflow", version: "0.1.0" })
