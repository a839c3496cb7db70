import { Args, Command, Options } from "@effect/cli"
import { FileSystem } from "@effect/platform"
import { Clock, Config, Console, Data, Effect, Either, Option, Schema } from "effect"
import * as NodePath from "node:path"
import { loadJourneys } from "../journeys/JourneyFile.ts"
import { journeyVersion } from "../JourneyRuntime.ts"
import { didYouMean } from "../program/YamlDocument/Suggest.ts"
import { reportHtml } from "../report/Report.ts"
import { CAMPAIGN_LIFT } from "../store/CampaignLift.ts"
import { engineQuery } from "./EngineQuery.ts"
import { decodeLiftRows } from "./LiftCommand.ts"

export class ReportFailed extends Data.TaggedError("ReportFailed")<{ readonly message: string }> {}


/** 64-bit numbers arrive as numbers from our clients, but a server profile may quote them. */
const Num = Schema.Union(Schema.Number, Schema.NumberFromString)

const VersionRow = Schema.Struct({ journey_version: Schema.String, enrollments: Num, members: Num, first_entry: Num, last_entry: Num })
const StatusRow = Schema.Struct({ status: Schema.String, exit_reason: Schema.String, enrollments: Num })
const StepRow = Schema.Struct({ step_id: Schema.String, outcome: Schema.String, enrollments: Num })
const ActivityRow = Schema.Struct({ last_step: Num, last_conversion: Num })

const messageOf = (error: unknown): string =>
  typeof error === "object" && error !== null && "message" in error && typeof error.message === "string" ? error.message : String(error)

/** A read through the running engine (or the database directly), decoded; any failure says what was being read. */
const read = <A, I>(what: string, row: Schema.Schema<A, I>, sql: string) =>
  engineQuery(sql).pipe(
    Effect.mapError((error) => new ReportFailed({ message: `cannot read ${what} from the engine's ClickHouse: ${messageOf(error)}` })),
    Effect.flatMap((rows) => {
      const decoded = Schema.decodeUnknownEither(Schema.Array(row))(rows)
      return Either.isRight(decoded)
        ? Effect.succeed(decoded.right)
        : Effect.fail(new ReportFailed({ message: `${what}: ClickHouse returned rows this command does not understand: ${decoded.left.message}` }))
    })
  )

/** Everything the report shows from ClickHouse about one journey (`id` is a validated journey id). */
const readData = (id: string) =>
  Effect.gen(function* () {
    const where = `journey_id = '${id}'`
    const versions = yield* read(
      "journey_enrollments",
      VersionRow,
      `SELECT journey_version, count() AS enrollments, uniqExact(member_id) AS members,
        toUnixTimestamp64Milli(min(entered_at)) AS first_entry, toUnixTimestamp64Milli(max(entered_at)) AS last_entry
      FROM journey_enrollments FINAL WHERE ${where}
      GROUP BY journey_version ORDER BY first_entry, journey_version`
    )
    const statuses = yield* read(
      "journey_enrollments",
      StatusRow,
      `SELECT status, exit_reason, count() AS enrollments FROM journey_enrollments FINAL WHERE ${where}
      GROUP BY status, exit_reason ORDER BY enrollments DESC, status, exit_reason`
    )
    // a wait records `waiting` and later how it ended: an enrollment counts once per step, by its
    // latest outcome; still `waiting` in an enrollment that has ended means it left during the wait
    const steps = yield* read(
      "journey_steps",
      StepRow,
      `SELECT s.step_id AS step_id, if(s.outcome = 'waiting' AND ifNull(e.status, 'active') NOT IN ('active', ''), 'left-waiting', s.outcome) AS outcome,
        count() AS enrollments
      FROM (
        SELECT enrollment_id, step_id, argMax(outcome, at) AS outcome FROM journey_steps FINAL WHERE ${where} GROUP BY enrollment_id, step_id
      ) AS s
      LEFT JOIN (SELECT enrollment_id, status FROM journey_enrollments FINAL WHERE ${where}) AS e ON e.enrollment_id = s.enrollment_id
      GROUP BY step_id, outcome`
    )
    const [activity] = yield* read(
      "the latest activity",
      ActivityRow,
      `SELECT (SELECT toUnixTimestamp64Milli(max(at)) FROM journey_steps WHERE ${where}) AS last_step,
        (SELECT toUnixTimestamp64Milli(max(converted_at)) FROM conversions WHERE ${where}) AS last_conversion`
    )
    const lift = decodeLiftRows(
      yield* engineQuery(`SELECT * FROM ${CAMPAIGN_LIFT} WHERE ${where}`).pipe(
        Effect.mapError((error) => new ReportFailed({ message: `cannot read ${CAMPAIGN_LIFT} from the engine's ClickHouse: ${messageOf(error)}` }))
      )
    )
    if (Either.isLeft(lift)) return yield* new ReportFailed({ message: `${CAMPAIGN_LIFT} returned rows this command does not understand: ${lift.left.message}` })
    // max() over no rows is the epoch
    const latest = Math.max(activity?.last_step ?? 0, activity?.last_conversion ?? 0)
    return {
      versions: versions.map((v) => ({ version: v.journey_version, enrollments: v.enrollments, members: v.members, firstEntry: v.first_entry, lastEntry: v.last_entry })),
      statuses: statuses.map((s) => ({ status: s.status, reason: s.exit_reason, enrollments: s.enrollments })),
      steps: steps.map((s) => ({ stepId: s.step_id, outcome: s.outcome, enrollments: s.enrollments })),
      lift: lift.right,
      lastActivity: latest > 0 ? latest : null
    }
  })

/**
 * `memberflow report <journey> [--out file.html]`: one self-contained HTML page (no script, no
 * network) with the journey as a diagram, its funnel, and each arm's conversion and lift. The
 * definition is the current file in JOURNEYS_DIR; the data comes through the same read-only path
 * as `memberflow query` (the running engine's POST /sql, else the database directly).
 */
export const reportCommand = Command.make(
  "report",
  { journeyId: Args.text({ name: "journey" }), out: Options.file("out").pipe(Options.optional) },
  ({ journeyId, out }) =>
    Effect.gen(function* () {
      const dir = yield* Config.string("JOURNEYS_DIR").pipe(Config.withDefault("journeys"))
      const loaded = yield* loadJourneys(dir)
      const journey = loaded.journeys.find((j) => j.id === journeyId)
      if (journey === undefined) {
        return yield* new ReportFailed({ message: `no journey "${journeyId}" in ${dir}${didYouMean(journeyId, loaded.journeys.map((j) => j.id))}` })
      }
      const data = yield* readData(journey.id)
      const html = reportHtml({
        journey,
        currentVersion: journeyVersion(journey),
        generatedAt: yield* Clock.currentTimeMillis,
        ...data
      })
      const file = NodePath.resolve(Option.getOrElse(out, () => `${journey.id}-report.html`))
      const fs = yield* FileSystem.FileSystem
      yield* fs.writeFileString(file, html).pipe(Effect.mapError((error) => new ReportFailed({ message: `cannot write ${file}: ${messageOf(error)}` })))
      const entries = data.versions.reduce((sum, v) => sum + v.enrollments, 0)
      yield* Console.log(
        entries === 0
          ? `wrote ${file}: ${journey.id} has no data yet (nobody has entered it)`
          : `wrote ${file}: ${journey.id}, ${entries.toLocaleString("en-US")} enrollments over ${data.versions.length} version${data.versions.length === 1 ? "" : "s"}`
      )
    })
).pipe(Command.withDescription("one self-contained HTML report of a journey: flow diagram, funnel by step, conversion and lift per arm with 95% CIs"))
