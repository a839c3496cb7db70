import { describe, expect, it, layer } from "@effect/vitest"
import { Effect } from "effect"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import * as NodePath from "node:path"
import { Clickhouse, make } from "../../../engine/Clickhouse.ts"
import { migrate, migrations, runMigrations } from "../../../engine/store/Migrations.ts"
import type { EventRow, MemberProfileRow, MemberTagRow, RejectedEventRow } from "../../../schemas/Rows.ts"
import { tempClickhouseLayer } from "../../support/clickhouse.ts"

/** One full row per table: the keys are the typed contract the DDL must match column for column. */
const eventRow: EventRow = {
  event_id: "e1", type: "purchase", member_id: "m1", occurred_at: "2026-01-02 03:04:05.006",
  received_at: "2026-01-02 03:04:06.000", source: "pos", properties: "{\"sku\":\"A\"}", amount: 12.5
}
const rejectedRow: RejectedEventRow = {
  rejection_id: "r1", received_at: "2026-01-02 03:04:05.006", subject: "member.events.x", raw: "{", reason: "not JSON"
}
const profileRow: MemberProfileRow = {
  member_id: "m1", version: 1, updated_at: "2026-01-02 03:04:05.006", tier: "silver", tier_since: null,
  birthday: "05-17", timezone: "Asia/Shanghai", locale: "zh-CN", consent_sms: 1, consent_email: 0, consent_wechat: 1,
  registered_at: "2025-01-01 00:00:00.000", last_seen_at: null, last_purchase_at: null, purchase_count: 0,
  purchase_total: 0, spend_365d: 0, rfm_frequency: 0, rfm_monetary: 0, rfm_r: 0, rfm_f: 0, rfm_m: 0, rfm_segment: "new", tags: [],
  points_balance: 0, points_expires_at: null, attributes: "{}"
}
const tagRow: MemberTagRow = {
  event_id: "e1", member_id: "m1", tag: "vip", op: "add", at: "2026-01-02 03:04:05.006", source: "manual"
}

const columnsOf = (table: string) =>
  Effect.flatMap(Clickhouse, (clickhouse) =>
    clickhouse.query<{ readonly name: string }>(
      "SELECT name FROM system.columns WHERE database = currentDatabase() AND table = {table:String} ORDER BY position",
      { table }
    )).pipe(Effect.map((rows) => rows.map((row) => row.name)))

describe("ClickHouse migrations", () => {
  layer(tempClickhouseLayer())((it) => {
    it.effect("a fresh database gets every analyst table, with the columns the rows are written with", () =>
      Effect.gen(function*() {
        expect(yield* columnsOf("events")).toEqual(Object.keys(eventRow))
        expect(yield* columnsOf("rejected_events")).toEqual(Object.keys(rejectedRow))
        expect(yield* columnsOf("member_profiles")).toEqual(Object.keys(profileRow))
        expect(yield* columnsOf("member_tags")).toEqual(Object.keys(tagRow))
        expect(yield* columnsOf("rfm_cutpoints")).toEqual(["computed_at", "version", "r", "f", "m"])
        expect(yield* columnsOf("member_profiles_latest")).toEqual(Object.keys(profileRow))
      }))

    it.effect("events are partitioned by year: one insert of ten months' history makes one part", () =>
      Effect.gen(function*() {
        const clickhouse = yield* Clickhouse
        const [table] = yield* clickhouse.query<{ readonly partition_key: string }>(
          "SELECT partition_key FROM system.tables WHERE database = currentDatabase() AND name = 'events'"
        )
        expect(table?.partition_key).toBe("toYear(occurred_at)")
        const months = Array.from({ length: 10 }, (_, i) => ({
          ...eventRow,
          event_id: `history-${i}`,
          member_id: "history",
          occurred_at: `2025-${String(i + 1).padStart(2, "0")}-15 10:00:00.000`
        }))
        yield* clickhouse.insert("events", months)
        const parts = yield* clickhouse.query<{ readonly partition: string; readonly n: string }>(
          "SELECT partition, toString(count()) AS n FROM system.parts WHERE database = currentDatabase() AND table = 'events' AND active AND partition = '2025' GROUP BY partition"
        )
        expect(parts).toEqual([{ partition: "2025", n: "1" }])
      }))

    it.effect("each applied migration is recorded once with its version and name", () =>
      Effect.gen(function*() {
        const clickhouse = yield* Clickhouse
        const recorded = yield* clickhouse.query<{ readonly version: number; readonly name: string }>(
          "SELECT version, name FROM schema_migrations FINAL ORDER BY version"
        )
        expect(recorded).toEqual(migrations.map(({ name, version }) => ({ version, name })))
      }))

    it.effect("running migrate again applies nothing and keeps the data", () =>
      Effect.gen(function*() {
        const clickhouse = yield* Clickhouse
        yield* clickhouse.insert("events", [eventRow])
        expect(yield* migrate).toEqual([])
        expect(yield* migrate).toEqual([])
        const count = yield* clickhouse.query<{ readonly n: number }>("SELECT count() AS n FROM events WHERE member_id = 'm1'")
        expect(count).toEqual([{ n: 1 }])
      }))

    it.effect("a failing migration stops the run with an error naming it, and later ones wait", () =>
      Effect.gen(function*() {
        const clickhouse = yield* Clickhouse
        const error = yield* Effect.flip(runMigrations([
          { version: 901, name: "create_scratch_a", statements: ["CREATE TABLE IF NOT EXISTS scratch_a (a UInt8) ENGINE = MergeTree ORDER BY a"] },
          { version: 902, name: "broken", statements: ["CREATE TABLE IF NOT EXISTS scratch_b (b NoSuchType) ENGINE = MergeTree ORDER BY b"] },
          { version: 903, name: "create_scratch_c", statements: ["CREATE TABLE IF NOT EXISTS scratch_c (c UInt8) ENGINE = MergeTree ORDER BY c"] }
        ]))
        expect(error.message).toMatch(/^migration 902 \(broken\) failed; later migrations were not applied: .*NoSuchType/)
        const tables = yield* clickhouse.query<{ readonly name: string }>(
          "SELECT name FROM system.tables WHERE database = currentDatabase() AND name LIKE 'scratch_%' ORDER BY name"
        )
        expect(tables).toEqual([{ name: "scratch_a" }])
        const recorded = yield* clickhouse.query("SELECT version FROM schema_migrations FINAL WHERE version > 900")
        expect(recorded).toEqual([{ version: 901 }])
      }))

    it.effect("typed rows of every table insert as they are", () =>
      Effect.gen(function*() {
        const clickhouse = yield* Clickhouse
        yield* clickhouse.insert("rejected_events", [rejectedRow])
        yield* clickhouse.insert("member_profiles", [profileRow])
        yield* clickhouse.insert("member_tags", [tagRow])
        yield* clickhouse.insert("rfm_cutpoints", [{
          computed_at: "2026-01-02 00:00:00.000", version: "v1", r: [30, 90], f: [1, 3], m: [100.5, 900]
        }])
        expect(yield* clickhouse.query("SELECT * FROM rejected_events")).toEqual([rejectedRow])
        expect(yield* clickhouse.query("SELECT * FROM member_profiles_latest")).toEqual([profileRow])
        expect(yield* clickhouse.query("SELECT * FROM member_tags")).toEqual([tagRow])
        expect(yield* clickhouse.query("SELECT r, f, m FROM rfm_cutpoints")).toEqual([{ r: [30, 90], f: [1, 3], m: [100.5, 900] }])
      }))
  })
})

describe("two engines migrating the same database at once", () => {
  it.scoped("both succeed and every migration is recorded once", () =>
    Effect.gen(function*() {
      const dataDir = yield* Effect.acquireRelease(
        Effect.promise(() => mkdtemp(NodePath.join(tmpdir(), "memberflow-race-"))),
        (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
      )
      const clickhouse = yield* make({ dataDir })
      const [first, second] = yield* Effect.provideService(
        Effect.all([migrate, migrate], { concurrency: 2 }),
        Clickhouse,
        clickhouse
      )
      expect(new Set([...first, ...second])).toEqual(new Set(migrations.map((migration) => migration.name)))
      const recorded = yield* clickhouse.query<{ readonly version: number }>(
        "SELECT version FROM schema_migrations FINAL ORDER BY version"
      )
      expect(recorded.map((row) => row.version)).toEqual(migrations.map((migration) => migration.version))
      expect(yield* Effect.provideService(migrate, Clickhouse, clickhouse)).toEqual([])
    }))
})

describe("migration list", () => {
  it("versions are unique and increasing so each runs once, in order", () => {
    const versions = migrations.map((migration) => migration.version)
    expect(versions).toEqual([...versions].sort((a, b) => a - b))
    expect(new Set(versions).size).toBe(versions.length)
    expect(migrations.flatMap((migration) => migration.statements).join("\n")).not.toMatch(/\bDROP\b/i)
  })
})
