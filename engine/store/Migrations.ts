import { Clock, Effect } from "effect"
import { chTime } from "../../schemas/Rows.ts"
import { Clickhouse, ClickhouseError } from "../Clickhouse.ts"
import { CAMPAIGN_LIFT, campaignLiftSelect } from "./CampaignLift.ts"

/**
 * The analyst tables (spec/clickhouse.md), created by versioned migrations. Each migration runs
 * once, in order, and is recorded in `schema_migrations`. Every statement is `IF NOT EXISTS` (or
 * `OR REPLACE` for views), so two processes migrating at once both succeed; their duplicate
 * records collapse in the ReplacingMergeTree. Migrations only ever add: never drop data here.
 *
 * Plain ClickHouse DDL, no chDB-only syntax: the same statements run on a server of the same major.
 */

export interface Migration {
  readonly version: number
  readonly name: string
  readonly statements: ReadonlyArray<string>
}

const Time = "DateTime64(3, 'UTC')"

const schemaMigrationsDdl = `CREATE TABLE IF NOT EXISTS schema_migrations (
  version UInt32,
  name String,
  applied_at ${Time}
) ENGINE = ReplacingMergeTree
ORDER BY version`

/**
 * member_profiles, column for column with MemberProfileRow (schemas/Rows.ts). Money is
 * Decimal(18, 2) like events.amount, so sums are exact (a JS number with more than two decimals is
 * truncated on insert); points_balance is Float64 because earn rates may give fractional points.
 */
export const memberProfileColumns = [
  ["member_id", "String"],
  ["version", "UInt64"],
  ["updated_at", Time],
  ["tier", "LowCardinality(String)"],
  ["tier_since", `Nullable(${Time})`],
  ["birthday", "String"],
  ["timezone", "LowCardinality(String)"],
  ["locale", "LowCardinality(String)"],
  ["consent_sms", "UInt8"],
  ["consent_email", "UInt8"],
  ["consent_wechat", "UInt8"],
  ["registered_at", `Nullable(${Time})`],
  ["last_seen_at", `Nullable(${Time})`],
  ["last_purchase_at", `Nullable(${Time})`],
  ["purchase_count", "UInt32"],
  ["purchase_total", "Decimal(18, 2)"],
  ["spend_365d", "Decimal(18, 2)"],
  ["rfm_frequency", "UInt32"],
  ["rfm_monetary", "Decimal(18, 2)"],
  ["rfm_r", "UInt8"],
  ["rfm_f", "UInt8"],
  ["rfm_m", "UInt8"],
  ["rfm_segment", "LowCardinality(String)"],
  ["tags", "Array(String)"],
  ["points_balance", "Float64"],
  ["points_expires_at", `Nullable(${Time})`],
  ["attributes", "String"]
] as const

/** The view analysts and the engine read for "each member's latest profile". */
export const MEMBER_PROFILES_LATEST = "member_profiles_latest"

/**
 * Latest profile per member with argMax over `version`: the faster of the two documented forms
 * (LIMITS.md). Columns are qualified with the table alias because an unqualified `version` would
 * resolve to the `version` alias, an aggregate inside an aggregate.
 */
export const memberProfilesLatestSelect = `SELECT
  p.member_id AS member_id,
${memberProfileColumns
  .filter(([name]) => name !== "member_id")
  .map(([name]) => `  argMax(p.${name}, p.version) AS ${name}`)
  .join(",\n")}
FROM member_profiles AS p
GROUP BY p.member_id`

/** The same latest state with FINAL, which merges replaced rows at read time. */
export const memberProfilesFinalSelect = "SELECT * FROM member_profiles FINAL"

/**
 * `events` is partitioned by the year of `occurred_at`. Each insert writes a part per partition it
 * touches, and chDB then merges them: by month, a history import spread over ten months made ten
 * parts of every group commit, and chDB took half a core of the benchmark's two while a backlog
 * drained; by year, a third of a core, and the engine applied 15% more events a second
 * (BENCHMARKS.md, 2026-12-06 late night). Parts still carry the min and max of `occurred_at`, so a
 * query over a time range skips the parts outside it. A table created before then keeps its monthly
 * partitions (this statement does not run again; the same queries give the same answers);
 * README, "Analysts", says how to rebuild it by year at a quiet hour.
 */
export const migrations: ReadonlyArray<Migration> = [
  {
    version: 1,
    name: "create_events",
    statements: [`CREATE TABLE IF NOT EXISTS events (
  event_id String,
  type LowCardinality(String),
  member_id String,
  occurred_at ${Time},
  received_at ${Time},
  source LowCardinality(String),
  properties String COMMENT 'JSON object',
  amount Nullable(Decimal(18, 2)) COMMENT 'purchase/refund amount'
) ENGINE = ReplacingMergeTree
PARTITION BY toYear(occurred_at)
ORDER BY (member_id, event_id)`]
  },
  {
    version: 2,
    name: "create_rejected_events",
    statements: [`CREATE TABLE IF NOT EXISTS rejected_events (
  rejection_id String,
  received_at ${Time},
  subject String,
  raw String,
  reason String
) ENGINE = ReplacingMergeTree
ORDER BY rejection_id`]
  },
  {
    version: 3,
    name: "create_member_profiles",
    statements: [`CREATE TABLE IF NOT EXISTS member_profiles (
${memberProfileColumns.map(([name, type]) => `  ${name} ${type}`).join(",\n")}
) ENGINE = ReplacingMergeTree(version)
ORDER BY member_id`]
  },
  {
    version: 4,
    name: "create_member_tags",
    // `tag` is in the key: one event may add several tags, and each change is its own row.
    statements: [`CREATE TABLE IF NOT EXISTS member_tags (
  event_id String,
  member_id String,
  tag String,
  op LowCardinality(String) COMMENT 'add or remove',
  at ${Time},
  source LowCardinality(String) COMMENT 'rule id, journey id or manual'
) ENGINE = ReplacingMergeTree
ORDER BY (member_id, event_id, tag)`]
  },
  {
    version: 5,
    name: "create_rfm_cutpoints",
    statements: [`CREATE TABLE IF NOT EXISTS rfm_cutpoints (
  computed_at ${Time},
  version String,
  r Array(Float64),
  f Array(Float64),
  m Array(Float64)
) ENGINE = MergeTree
ORDER BY computed_at`]
  },
  {
    version: 6,
    name: "create_member_profiles_latest",
    // A later migration that adds profile columns re-creates this view with CREATE OR REPLACE VIEW.
    statements: [`CREATE VIEW IF NOT EXISTS ${MEMBER_PROFILES_LATEST} AS\n${memberProfilesLatestSelect}`]
  },
  {
    version: 7,
    name: "create_journey_enrollments",
    statements: [`CREATE TABLE IF NOT EXISTS journey_enrollments (
  enrollment_id String,
  journey_id LowCardinality(String),
  journey_version String,
  member_id String,
  variant LowCardinality(String) COMMENT 'control for the holdout',
  entered_at ${Time},
  trigger_event_id String,
  status LowCardinality(String) COMMENT 'active, completed or exited',
  exited_at Nullable(${Time}),
  exit_reason String,
  version UInt64
) ENGINE = ReplacingMergeTree(version)
ORDER BY (journey_id, enrollment_id)`]
  },
  {
    version: 8,
    name: "create_journey_steps",
    statements: [`CREATE TABLE IF NOT EXISTS journey_steps (
  enrollment_id String,
  journey_id LowCardinality(String),
  step_id LowCardinality(String),
  at ${Time},
  outcome LowCardinality(String)
) ENGINE = ReplacingMergeTree
ORDER BY (journey_id, enrollment_id, step_id, at)`]
  },
  {
    version: 9,
    name: "create_messages",
    statements: [`CREATE TABLE IF NOT EXISTS messages (
  message_id String,
  enrollment_id String,
  journey_id LowCardinality(String),
  variant LowCardinality(String),
  step_id LowCardinality(String),
  member_id String,
  channel LowCardinality(String),
  template LowCardinality(String),
  status LowCardinality(String) COMMENT 'queued, sent, delivered, failed or suppressed',
  reason String,
  provider_message_id String,
  created_at ${Time},
  updated_at ${Time}
) ENGINE = ReplacingMergeTree(updated_at)
ORDER BY message_id`]
  },
  {
    version: 10,
    name: "create_conversions",
    statements: [`CREATE TABLE IF NOT EXISTS conversions (
  journey_id LowCardinality(String),
  enrollment_id String,
  variant LowCardinality(String),
  member_id String,
  event_id String,
  converted_at ${Time},
  value Decimal(18, 2)
) ENGINE = ReplacingMergeTree
ORDER BY (journey_id, enrollment_id)`]
  },
  {
    version: 11,
    name: "create_journey_variants",
    // Written by the engine for every journey version it runs (JourneyRuntime.ts); rows of one
    // version are identical whoever writes them, so re-writing them on each start is harmless.
    statements: [`CREATE TABLE IF NOT EXISTS journey_variants (
  journey_id LowCardinality(String),
  journey_version String,
  variant LowCardinality(String) COMMENT 'control for the holdout, default without an experiment',
  weight_percent Float64 COMMENT 'planned % of the version''s entrants',
  category LowCardinality(String) COMMENT 'marketing or transactional',
  goal_event Nullable(String),
  goal_within_seconds Nullable(UInt64),
  loaded_at ${Time} COMMENT 'when the version was first registered'
) ENGINE = ReplacingMergeTree
ORDER BY (journey_id, journey_version, variant)`]
  },
  {
    version: 12,
    name: "create_campaign_lift",
    statements: [`CREATE VIEW IF NOT EXISTS ${CAMPAIGN_LIFT} AS\n${campaignLiftSelect}`]
  },
  {
    // `at` is the engine's time for the step (the arrival of what moved it, so that a replay decides
    // alike); this is when ClickHouse received the row: how late a step really was, measurable.
    version: 13,
    name: "journey_steps_written_at",
    statements: [
      `ALTER TABLE journey_steps ADD COLUMN IF NOT EXISTS written_at ${Time} DEFAULT now64(3) COMMENT 'when the row reached ClickHouse'`
    ]
  }
]

const failed = (migration: Migration, error: ClickhouseError) =>
  new ClickhouseError({
    operation: `migration ${migration.version} ${migration.name}`,
    message: `migration ${migration.version} (${migration.name}) failed; later migrations were not applied: ${error.message}`,
    cause: error
  })

/** Applies the pending ones of `list` in order, stopping at the first failure; returns the names applied. */
export const runMigrations = (
  list: ReadonlyArray<Migration>
): Effect.Effect<ReadonlyArray<string>, ClickhouseError, Clickhouse> => Effect.gen(function*() {
  const clickhouse = yield* Clickhouse
  yield* clickhouse.command(schemaMigrationsDdl)
  const recorded = yield* clickhouse.query<{ readonly version: number }>("SELECT DISTINCT version FROM schema_migrations")
  const done = new Set(recorded.map((row) => Number(row.version)))
  const applied: Array<string> = []
  for (const migration of list) {
    if (done.has(migration.version)) continue
    for (const statement of migration.statements) {
      yield* Effect.mapError(clickhouse.command(statement), (error) => failed(migration, error))
    }
    const now = yield* Clock.currentTimeMillis
    yield* Effect.mapError(
      clickhouse.insert("schema_migrations", [{ version: migration.version, name: migration.name, applied_at: chTime(now) }]),
      (error) => failed(migration, error)
    )
    yield* Effect.logInfo("applied ClickHouse migration").pipe(
      Effect.annotateLogs({ version: migration.version, name: migration.name })
    )
    applied.push(migration.name)
  }
  return applied
}).pipe(Effect.withSpan("Migrations.migrate"))

/** The engine's migrations (`memberflow migrate`, also run on start). */
export const migrate: Effect.Effect<ReadonlyArray<string>, ClickhouseError, Clickhouse> = runMigrations(migrations)
