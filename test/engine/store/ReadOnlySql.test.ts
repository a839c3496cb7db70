import { describe, expect, it, layer } from "@effect/vitest"
import { Effect, Either } from "effect"
import { Clickhouse } from "../../../engine/Clickhouse.ts"
import { checkReadOnlySql } from "../../../engine/store/ReadOnlySql.ts"
import { tempClickhouseLayer } from "../../support/clickhouse.ts"

const reason = (sql: string): string | undefined =>
  Either.match(checkReadOnlySql(sql), { onLeft: (rejected) => rejected.reason, onRight: () => undefined })

const outsideFunctions = [
  "file", "url", "s3", "s3Cluster", "remote", "remoteSecure", "cluster", "mysql", "postgresql", "hdfs", "jdbc",
  "odbc", "executable", "azureBlobStorage", "gcs", "iceberg", "deltaLake", "hudi", "mongodb", "redis", "sqlite",
  "input", "urlCluster", "fileCluster", "icebergS3", "deltaLakeAzure", "clusterAllReplicas", "hdfsCluster"
]

const attacks: ReadonlyArray<readonly [string, RegExp]> = [
  ["SELECT 1; DROP TABLE events", /one statement/],
  ["SELECT 1; SELECT 2", /one statement/],
  ["SELECT ';'; DROP TABLE events", /one statement/],
  ["SELECT 1 -- comment\n; DROP TABLE events", /one statement/],
  ["SELECT 1 /* ; */ ; DROP TABLE events", /one statement/],
  ["SELECT $$;$$; TRUNCATE TABLE events", /one statement/],
  ["SELECT 1;\nINSERT INTO events SELECT * FROM events", /one statement/],
  ["INSERT INTO events SELECT * FROM events", /only SELECT/],
  ["ALTER TABLE events DELETE WHERE 1", /only SELECT/],
  ["DROP TABLE events", /only SELECT/],
  ["drop table events", /only SELECT/],
  ["CREATE TABLE x (a UInt8) ENGINE = Memory", /only SELECT/],
  ["TRUNCATE TABLE events", /only SELECT/],
  ["RENAME TABLE events TO old_events", /only SELECT/],
  ["SYSTEM FLUSH LOGS", /only SELECT/],
  ["KILL QUERY WHERE 1", /only SELECT/],
  ["OPTIMIZE TABLE events FINAL", /only SELECT/],
  ["GRANT SELECT ON *.* TO analyst", /only SELECT/],
  ["SET readonly = 0", /only SELECT/],
  ["USE system", /only SELECT/],
  ["DELETE FROM events WHERE 1", /only SELECT/],
  ["/* hello */ (DROP TABLE events)", /only SELECT/],
  ["(SHOW TABLES)", /parenthesis/],
  ["WITH x AS (SELECT 1) INSERT INTO events SELECT * FROM x", /INSERT is not allowed/],
  ["EXPLAIN SYNTAX ALTER TABLE events DROP COLUMN amount", /ALTER is not allowed/],
  ["SELECT * FROM events INTO OUTFILE '/tmp/events.csv'", /INTO OUTFILE/],
  ["SELECT 1 SETTINGS readonly = 0", /SETTINGS/],
  ["SELECT 1 settings allow_ddl = 1", /SETTINGS/],
  ["SELECT 1 FORMAT CSV", /FORMAT/],
  ["SELECT * FROM `file`('/etc/passwd', 'LineAsString')", /file\(\) reaches outside/],
  ["SELECT * FROM \"url\"('http://127.0.0.1/', 'CSV', 'a String')", /url\(\) reaches outside/],
  ["SELECT * FROM FILE ('/etc/passwd')", /FILE\(\) reaches outside/],
  ["SELECT * FROM file/* gap */('/etc/passwd')", /file\(\) reaches outside/],
  ["SELECT file('/etc/passwd') AS secrets", /file\(\) reaches outside/],
  ["SELECT * FROM (SELECT * FROM s3('https://bucket/x.csv'))", /s3\(\) reaches outside/],
  ["DESCRIBE TABLE url('http://127.0.0.1/', 'CSV')", /url\(\) reaches outside/],
  ["SELECT * FROM events WHERE member_id IN (SELECT * FROM remote('127.0.0.1', default.t))", /remote\(\) reaches/],
  ["SELECT 'never closed", /string literal is never closed/],
  ["SELECT 1 /* never closed", /comment is never closed/],
  ["SELECT 1 /* nested /* still open */", /comment is never closed/],
  ["SELECT `never closed", /never closed/],
  ["SELECT $tag$ never closed", /heredoc is never closed/],
  ["SELECT 1 #no-space comment", /unexpected '#'/],
  ["", /empty/],
  ["  ;  ", /empty/],
  ["-- only a comment", /empty/],
  ...outsideFunctions.map((name) => [`SELECT * FROM ${name}('x')`, /reaches outside the database/] as const)
]

/** Legit analyst queries; each must also run on chDB through readOnlyQuery. */
const legit: ReadonlyArray<string> = [
  "SELECT 1",
  "select ';' AS semi, 'a''b' AS doubled, 'c\\'d' AS escaped",
  "SELECT 1;",
  "SELECT 1;;  \n",
  "-- leading comment\nSELECT 1 /* inline ; comment */ AS x -- trailing ; comment",
  "SELECT 1 AS x; -- a comment after the only statement",
  "SELECT 1 AS x # hash comment ; still comment",
  "SELECT 1 /* nested /* comment */ still ; comment */ AS x",
  "SELECT $$heredoc; with DROP TABLE inside$$ AS h",
  "SELECT 'DROP TABLE events; INSERT INTO x' AS s",
  "WITH t AS (SELECT 1 AS a) SELECT a FROM t",
  "(SELECT 1 AS a) UNION ALL (SELECT 2 AS a)",
  "SHOW TABLES",
  "SHOW CREATE TABLE events",
  "DESCRIBE TABLE events",
  "desc events",
  "EXPLAIN SELECT count() FROM events",
  "EXISTS TABLE events",
  "SELECT count() AS n FROM system.tables WHERE database = 'memberflow'",
  "SELECT * FROM numbers(3)",
  "SELECT format('{} {}', 'a', 'b') AS f, replace('abc', 'b', 'x') AS r, URLHierarchy('https://a.b/c') AS u",
  "SELECT `file`, \"url\" FROM (SELECT 1 AS `file`, 2 AS url)",
  "SELECT member_id, argMax(tier, version) AS latest_tier FROM member_profiles GROUP BY member_id"
]

describe("read-only SQL guard", () => {
  it("refuses every write, multi-statement, file export, settings change and outside table function", () => {
    for (const [sql, why] of attacks) {
      expect({ sql, reason: reason(sql) }).toEqual({ sql, reason: expect.stringMatching(why) })
    }
  })

  it("accepts read-only statements with ';' in literals, comments and a trailing ';'", () => {
    for (const sql of legit) expect({ sql, reason: reason(sql) }).toEqual({ sql, reason: undefined })
  })

  it("hands ClickHouse the statement without the trailing ';' and comments", () => {
    expect(checkReadOnlySql("SELECT 1 AS x; -- done\n;")).toEqual(Either.right("SELECT 1 AS x"))
    expect(checkReadOnlySql("/* who */ SELECT ';' -- c")).toEqual(Either.right("/* who */ SELECT ';'"))
  })
})

describe("readOnlyQuery on chDB", () => {
  layer(tempClickhouseLayer())((it) => {
    it.effect("every accepted query runs", () =>
      Effect.gen(function*() {
        const clickhouse = yield* Clickhouse
        for (const sql of legit) {
          const rows = yield* clickhouse.readOnlyQuery(sql)
          expect(Array.isArray(rows)).toBe(true)
        }
        expect(yield* clickhouse.readOnlyQuery("SELECT 1 AS x; -- done")).toEqual([{ x: 1 }])
        expect(yield* clickhouse.readOnlyQuery("SELECT ';' AS semi;")).toEqual([{ semi: ";" }])
      }))

    it.effect("a refused query never reaches the tables", () =>
      Effect.gen(function*() {
        const clickhouse = yield* Clickhouse
        yield* clickhouse.insert("rejected_events", [
          { rejection_id: "r1", received_at: "2026-01-01 00:00:00.000", subject: "s", raw: "x", reason: "bad" }
        ])
        const error = yield* Effect.flip(clickhouse.readOnlyQuery("SELECT 1; TRUNCATE TABLE rejected_events"))
        expect(error._tag).toBe("SqlRejected")
        expect(yield* clickhouse.query("SELECT count() AS n FROM rejected_events")).toEqual([{ n: 1 }])
      }))
  })
})
