import { describe, expect, it, layer } from "@effect/vitest"
import { ConfigProvider, Effect, Exit, Redacted } from "effect"
import { Clickhouse, ClickhouseConfig, make } from "../../../engine/Clickhouse.ts"
import { memberProfilesFinalSelect, memberProfilesLatestSelect } from "../../../engine/store/Migrations.ts"
import type { EventRow } from "../../../schemas/Rows.ts"
import { tempClickhouseLayer } from "../../support/clickhouse.ts"

const event = (id: string, member: string, amount: number | null): EventRow => ({
  event_id: id,
  type: amount === null ? "login" : "purchase",
  member_id: member,
  occurred_at: "2026-03-04 05:06:07.089",
  received_at: "2026-03-04 05:06:08.001",
  source: "pos",
  properties: JSON.stringify({ sku: "A;B", note: "it's" }),
  amount
})

describe("Clickhouse (embedded chDB)", () => {
  layer(tempClickhouseLayer())((it) => {
    it.effect("runs embedded in the memberflow database", () =>
      Effect.gen(function*() {
        const clickhouse = yield* Clickhouse
        expect(clickhouse.embedded).toBe(true)
        expect(clickhouse.database).toBe("memberflow")
        yield* clickhouse.ping
        expect(yield* clickhouse.query("SELECT currentDatabase() AS db")).toEqual([{ db: "memberflow" }])
      }))

    it.effect("rows come back as inserted: millisecond times, JSON strings, nullable decimals", () =>
      Effect.gen(function*() {
        const clickhouse = yield* Clickhouse
        const rows = [event("rt-1", "m-rt", 199.99), event("rt-2", "m-rt", null)]
        yield* clickhouse.insert("events", rows)
        const back = yield* clickhouse.query<EventRow>(
          "SELECT * FROM events WHERE member_id = {member:String} ORDER BY event_id",
          { member: "m-rt" }
        )
        expect(back).toEqual(rows)
      }))

    it.effect("array columns and 64-bit counts read back as JSON arrays and numbers", () =>
      Effect.gen(function*() {
        const clickhouse = yield* Clickhouse
        yield* clickhouse.command("CREATE TABLE scratch_tags (id String, tags Array(String)) ENGINE = MergeTree ORDER BY id")
        yield* clickhouse.insert("scratch_tags", [{ id: "a", tags: ["vip", "new;member", "o'brien"] }, { id: "b", tags: [] }])
        expect(yield* clickhouse.query("SELECT * FROM scratch_tags ORDER BY id")).toEqual([
          { id: "a", tags: ["vip", "new;member", "o'brien"] },
          { id: "b", tags: [] }
        ])
        const ids = ["a", "b", "missing"]
        expect(yield* clickhouse.query("SELECT count() AS n FROM scratch_tags WHERE id IN {ids:Array(String)}", { ids }))
          .toEqual([{ n: 2 }])
      }))

    it.effect("a large insert of many rows, Chinese text, emoji and quotes in it, reads back exactly", () =>
      Effect.gen(function*() {
        const clickhouse = yield* Clickhouse
        // Far more than the first buffer holds (engine/store/RowBody.ts grows it), with text that
        // takes 3 and 4 bytes a character in UTF-8 and every character JSON escapes.
        const rows = Array.from({ length: 20_000 }, (_, i) =>
          event(`big-${String(i).padStart(5, "0")}`, "m-big", i % 3 === 0 ? null : i / 100)
        ).map((row, i) => ({ ...row, source: i % 2 === 0 ? "小程序 🎁 \"quoted\" \\ back\nline\ttab" : "pos" }))
        yield* clickhouse.insert("events", rows)
        const back = yield* clickhouse.query<EventRow>("SELECT * FROM events WHERE member_id = 'm-big' ORDER BY event_id")
        expect(back.length).toBe(rows.length)
        expect(back).toEqual(rows)
      }))

    it.effect("a failed insert is a ClickhouseError, and the next insert still succeeds", () =>
      Effect.gen(function*() {
        const clickhouse = yield* Clickhouse
        const error = yield* Effect.flip(clickhouse.insert("events", [{ event_id: "x", no_such_column: 1 }]))
        expect(error._tag).toBe("ClickhouseError")
        expect(error.message).toMatch(/^insert into events failed: .*no_such_column/s)
        yield* clickhouse.insert("events", [event("after-failure", "m-fail", 1)])
        expect(yield* clickhouse.query("SELECT event_id FROM events WHERE member_id = 'm-fail'")).toEqual([{ event_id: "after-failure" }])
      }))

    it.effect("inserting no rows sends nothing and succeeds", () =>
      Effect.gen(function*() {
        const clickhouse = yield* Clickhouse
        yield* clickhouse.insert("events", [])
        yield* clickhouse.insert("no_such_table", [])
      }))

    it.effect("the latest profile version wins, read with FINAL or with argMax", () =>
      Effect.gen(function*() {
        const clickhouse = yield* Clickhouse
        const profile = (version: number, tier: string, tags: ReadonlyArray<string>) => ({
          member_id: "m-latest", version, updated_at: `2026-01-0${version} 00:00:00.000`, tier, tags
        })
        // Separate inserts make separate parts, so nothing is merged before the read.
        yield* clickhouse.insert("member_profiles", [profile(2, "gold", ["vip"])])
        yield* clickhouse.insert("member_profiles", [profile(1, "silver", [])])
        yield* clickhouse.insert("member_profiles", [profile(3, "platinum", ["vip", "whale"])])
        const parts = yield* clickhouse.query<{ readonly n: number }>(
          "SELECT count() AS n FROM member_profiles WHERE member_id = 'm-latest'"
        )
        expect(parts).toEqual([{ n: 3 }])
        const pick = "SELECT member_id, version, tier, tags FROM"
        const expected = [{ member_id: "m-latest", version: 3, tier: "platinum", tags: ["vip", "whale"] }]
        expect(yield* clickhouse.query(`${pick} (${memberProfilesFinalSelect}) WHERE member_id = 'm-latest'`))
          .toEqual(expected)
        expect(yield* clickhouse.query(`${pick} (${memberProfilesLatestSelect}) WHERE member_id = 'm-latest'`))
          .toEqual(expected)
        expect(yield* clickhouse.query(`${pick} member_profiles_latest WHERE member_id = 'm-latest'`)).toEqual(expected)
      }))

    it.effect("a failing statement is a ClickhouseError naming the operation", () =>
      Effect.gen(function*() {
        const clickhouse = yield* Clickhouse
        const error = yield* Effect.flip(clickhouse.query("SELECT * FROM no_such_table"))
        expect(error._tag).toBe("ClickhouseError")
        expect(error.message).toMatch(/^query failed: .*no_such_table/)
      }))

    it.effect("analysts' queries run in a read-only session while the engine keeps writing", () =>
      Effect.gen(function*() {
        const clickhouse = yield* Clickhouse
        expect(yield* clickhouse.readOnlyQuery("SELECT getSetting('readonly') AS readonly")).toEqual([{ readonly: 1 }])
        yield* clickhouse.insert("events", [event("ro-1", "m-ro", 5)])
        expect(yield* clickhouse.readOnlyQuery("SELECT event_id FROM events WHERE member_id = 'm-ro';")).toEqual([
          { event_id: "ro-1" }
        ])
      }))
  })
})

describe("Clickhouse configuration", () => {
  it.effect("with no CLICKHOUSE_URL the engine embeds chDB under MEMBERFLOW_DATA_DIR", () =>
    Effect.gen(function*() {
      const fromEnv = (env: Record<string, string>) =>
        Effect.withConfigProvider(ClickhouseConfig, ConfigProvider.fromMap(new Map(Object.entries(env))))
      expect(yield* fromEnv({})).toEqual({ url: undefined, dataDir: "./.memberflow" })
      expect(yield* fromEnv({ CLICKHOUSE_URL: " ", MEMBERFLOW_DATA_DIR: "/var/lib/mf" }))
        .toEqual({ url: undefined, dataDir: "/var/lib/mf" })
      const server = yield* fromEnv({ CLICKHOUSE_URL: "http://u:pw@ch:8123/analytics" })
      expect(server.url === undefined ? undefined : Redacted.value(server.url)).toBe("http://u:pw@ch:8123/analytics")
      expect(String(server.url)).not.toContain("pw")
    }))

  it.effect("a server URL's password appears in no error", () =>
    Effect.gen(function*() {
      const password = "s3cr3t-Passw0rd"
      const attempts = [
        `http://analyst:${password}@[not-a-host/memberflow`,
        // Nothing listens on port 1 of this machine: the connection is refused.
        `http://analyst:${password}@127.0.0.1:1/memberflow`
      ]
      for (const url of attempts) {
        const exit = yield* Effect.exit(Effect.scoped(make({ url: Redacted.make(url), dataDir: "unused" })))
        expect(Exit.isFailure(exit)).toBe(true)
        const rendered = JSON.stringify(exit) + String(exit)
        expect(rendered).not.toContain(password)
        if (Exit.isFailure(exit)) expect(String(exit.cause)).toMatch(/ClickhouseError|CLICKHOUSE_URL/)
      }
    }))
})
