import type { NatsConnection } from "@nats-io/transport-node"
import { writeFileSync } from "node:fs"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type EngineProcess, eventually, freePort, runCli, startEngine, tempDir } from "../support/engine.ts"
import { dropTopology, natsConnect, publishEvents, type TestTopology, uniqueTopology } from "../support/nats.ts"

const TOKEN = "admin-token-for-tests-0123456789"
const ago = (days: number) => new Date(Date.now() - days * 86_400_000).toISOString()

describe("the admin API and the CLI, as an operator uses them", () => {
  let topology: TestTopology
  let nc: NatsConnection
  let engine: EngineProcess
  let base: string
  let dataDir: string
  const cliEnv = () => ({ ...topology.env, MEMBERFLOW_HTTP_PORT: String(engine.port), MEMBERFLOW_ADMIN_TOKEN: TOKEN })

  beforeAll(async () => {
    topology = uniqueTopology("adminapi")
    nc = await natsConnect()
    dataDir = tempDir("adminapi")
    // With a token, binding to every interface is allowed.
    engine = await startEngine({ ...topology.env, MEMBERFLOW_DATA_DIR: dataDir, MEMBERFLOW_ADMIN_TOKEN: TOKEN, MEMBERFLOW_HTTP_HOST: "0.0.0.0" }, "adminapi")
    base = `http://127.0.0.1:${engine.port}`
    await publishEvents(nc, topology, [
      {
        id: "lily-reg",
        type: "member.registered",
        memberId: "lily",
        occurredAt: ago(40),
        properties: { name: "Lily", phone: "+8613812345678", email: "lily.chen@example.com", wechatOpenId: "oAbCdEfGhIjKlMnOp", consent: { sms: true } }
      },
      { id: "lily-p1", type: "purchase", memberId: "lily", occurredAt: ago(3), properties: { orderId: "L1", amount: 1200, currency: "CNY" } }
    ])
    await eventually(async () => ((await engine.get("/members/lily")).body as { purchase?: { total: number } }).purchase?.total === 1200, 20_000, "lily's purchase")
  })

  afterAll(async () => {
    await engine?.kill("SIGTERM")
    await nc?.close()
    if (topology) await dropTopology(topology)
  })

  const request = (path: string, init: { method?: string; token?: string; body?: string } = {}) =>
    fetch(`${base}${path}`, {
      method: init.method ?? "GET",
      headers: { ...(init.token !== undefined ? { authorization: `Bearer ${init.token}` } : {}), "content-type": "text/plain" },
      ...(init.body !== undefined ? { body: init.body } : {})
    })

  it("/healthz answers ok and /readyz reports NATS, ClickHouse and the program as JSON, both without a token", async () => {
    const health = await request("/healthz")
    expect(health.status).toBe(200)
    expect(await health.text()).toBe("ok")
    const ready = await request("/readyz")
    expect(ready.status).toBe(200)
    expect(ready.headers.get("content-type")).toContain("application/json")
    expect(await ready.json()).toMatchObject({ ready: true, nats: "ok", clickhouse: "ok", program: { loaded: true } })
  })

  it("a path or method nobody serves answers 404, with no error logged", async () => {
    const before = engine.output().split("\n").filter((line) => line.includes("admin request failed")).length
    for (const [path, method] of [["/favicon.ico", "GET"], ["/wp-login.php", "POST"], ["/resubscribe", "GET"], ["/healthz", "DELETE"]] as const) {
      const answer = await request(path, { method })
      expect([path, method, answer.status]).toEqual([path, method, 404])
      expect(await answer.json()).toEqual({ error: "not found" })
    }
    expect(engine.output().split("\n").filter((line) => line.includes("admin request failed")).length).toBe(before)
  })

  it("/unsubscribe without MEMBERFLOW_UNSUBSCRIBE_KEY refuses every link, saying so, and changes nothing", async () => {
    for (const method of ["GET", "POST"]) {
      const response = await request("/unsubscribe?member=lily&channel=sms&sig=AAAAAAAAAAAAAAAAAAAAAA", { method, ...(method === "POST" ? { body: "List-Unsubscribe=One-Click" } : {}) })
      expect(response.status).toBe(404)
      expect(await response.text()).toContain("Unsubscribe links are not set up on this server (MEMBERFLOW_UNSUBSCRIBE_KEY)")
    }
    expect(((await engine.get("/members/lily")).body as { consent: { sms: boolean } }).consent.sms).toBe(true)
    expect(engine.output()).toContain("unsubscribe links in messages are unsigned, and the engine refuses them: set MEMBERFLOW_UNSUBSCRIBE_KEY")
  })

  it("/metrics is Prometheus text with the memberflow_ counters", async () => {
    const response = await request("/metrics")
    expect(response.status).toBe(200)
    expect(response.headers.get("content-type")).toContain("text/plain")
    const text = await response.text()
    for (const name of ["memberflow_events_received_total", "memberflow_events_applied_total"]) {
      expect(text).toContain(`# TYPE ${name} counter`)
      expect(text).toMatch(new RegExp(`^# HELP ${name} .+$`, "m"))
      expect(Number(new RegExp(`^${name} (\\d+)$`, "m").exec(text)?.[1])).toBeGreaterThanOrEqual(2)
    }
    // How long the loop sat idle on the previous batch's writes: a counter of seconds from the first batch on.
    expect(text).toContain("# TYPE memberflow_ingest_write_wait_seconds_total counter")
    const waited = Number(/^memberflow_ingest_write_wait_seconds_total (\S+)$/m.exec(text)?.[1])
    expect(waited).toBeGreaterThanOrEqual(0)
    expect(waited).toBeLessThan(60)
    // Every sample line is `name{labels} value`.
    for (const line of text.split("\n").filter((l) => l !== "" && !l.startsWith("#"))) {
      expect(line).toMatch(/^(memberflow|process|nodejs)_[a-zA-Z0-9_]*(\{[^}]*\})? (-?[0-9.e+-]+|NaN|\+Inf|-Inf)$/)
    }
  })

  it("member lookups and SQL need the right bearer token: none and a wrong one get 401", async () => {
    for (const [path, method, body] of [["/members/lily", "GET", undefined], ["/sql", "POST", "SELECT 1 AS one"]] as const) {
      const none = await request(path, { method, ...(body !== undefined ? { body } : {}) })
      expect(none.status, `${method} ${path} without a token`).toBe(401)
      expect((await none.json()) as { error: string }).toMatchObject({ error: expect.stringContaining("Bearer") })
      const wrong = await request(path, { method, token: `${TOKEN}x`, ...(body !== undefined ? { body } : {}) })
      expect(wrong.status, `${method} ${path} with a wrong token`).toBe(401)
      const right = await request(path, { method, token: TOKEN, ...(body !== undefined ? { body } : {}) })
      expect(right.status, `${method} ${path} with the token`).toBe(200)
    }
    const sql = await request("/sql", { method: "POST", token: TOKEN, body: "SELECT 1 AS one" })
    expect(await sql.json()).toEqual({ rows: [{ one: 1 }] })
  })

  it("POST /sql refuses writes, DDL and several statements with 400 and a reason, and changes nothing", async () => {
    const refusals: ReadonlyArray<readonly [string, RegExp]> = [
      ["INSERT INTO events (event_id) VALUES ('x')", /only SELECT.*found 'INSERT'/],
      ["DROP TABLE events", /only SELECT.*found 'DROP'/],
      ["SELECT 1; DROP TABLE events", /only one statement/],
      ["SELECT count() FROM events; SELECT 2", /only one statement/]
    ]
    for (const [sql, reason] of refusals) {
      const response = await request("/sql", { method: "POST", token: TOKEN, body: sql })
      expect(response.status, sql).toBe(400)
      expect(((await response.json()) as { error: string }).error, sql).toMatch(reason)
    }
    const rows = await engine.sql<{ n: number }>("SELECT count() AS n FROM events WHERE event_id = 'x'")
    expect(rows).toEqual([{ n: 0 }])
  })

  it("a member's profile never shows a phone, email or WeChat openid in clear", async () => {
    const response = await request("/members/lily", { token: TOKEN })
    const text = await response.text()
    for (const secret of ["13812345678", "8613812345678", "lily.chen@example.com", "lily.chen", "oAbCdEfGhIjKlMnOp"]) {
      expect(text).not.toContain(secret)
    }
    const body = JSON.parse(text) as { attributes: Record<string, unknown> }
    expect(body.attributes).toMatchObject({ name: "Lily", phone: "138****5678", email: "l***@example.com", wechatOpenId: "oAbC***" })
    // The analyst table holds the same masked forms.
    await eventually(async () => (await engine.sql("SELECT 1 FROM member_profiles WHERE member_id = 'lily'")).length > 0, 10_000, "lily's row")
    const rows = await engine.sql<{ attributes: string }>("SELECT attributes FROM member_profiles WHERE member_id = 'lily'")
    for (const row of rows) {
      expect(row.attributes).not.toContain("13812345678")
      expect(row.attributes).not.toContain("lily.chen@example.com")
      expect(row.attributes).toContain("138****5678")
    }
  })

  it("`memberflow publish` prints a summary and a progress bar, and the events arrive", async () => {
    const file = join(tempDir("adminapi-publish"), "events.jsonl")
    const lines = Array.from({ length: 50 }, (_, i) =>
      JSON.stringify({ id: `cli-${i}`, type: "purchase", memberId: `cli-${i % 5}`, occurredAt: ago(2), properties: { orderId: `co-${i}`, amount: 10, currency: "CNY" } })
    )
    writeFileSync(file, lines.join("\n") + "\n")
    const result = await runCli(["publish", file], cliEnv())
    expect(result.code, result.stderr).toBe(0)
    expect(result.stdout).toContain(`published 50 events from ${file} (0 duplicates dropped by JetStream, 0 refused)`)
    expect(result.stderr).toMatch(/\[#{30}\] 100% 50\/50/)
    await eventually(async () => ((await engine.get("/members/cli-4")).body as { purchase?: { count: number } }).purchase?.count === 10, 20_000, "the published events")

    // The same file again: JetStream's duplicate window drops every line.
    const again = await runCli(["publish", file], cliEnv())
    expect(again.code).toBe(0)
    expect(again.stdout).toContain("published 0 events")
    expect(again.stdout).toContain("50 duplicates dropped by JetStream")
  })

  it("`memberflow query` prints a table while the engine runs, or JSON rows with --format json", async () => {
    const sql = "SELECT member_id, toString(amount) AS amount FROM events FINAL WHERE member_id = 'lily' AND type = 'purchase'"
    const table = await runCli(["query", sql], cliEnv())
    expect(table.code, table.stderr).toBe(0)
    const [header, rule, row, ...rest] = table.stdout.trimEnd().split("\n")
    expect(header?.split(/\s+/)).toEqual(["member_id", "amount"])
    expect(rule).toMatch(/^-{9}\s+-{6,}$/)
    expect(row?.split(/\s+/)).toEqual(["lily", "1200"])
    expect(rest).toEqual([])

    const json = await runCli(["query", "--format", "json", sql], cliEnv())
    expect(json.code, json.stderr).toBe(0)
    expect(json.stdout.trim().split("\n").map((line) => JSON.parse(line) as unknown)).toEqual([{ member_id: "lily", amount: "1200" }])

    const refused = await runCli(["query", "DROP TABLE events"], cliEnv())
    expect(refused.code).not.toBe(0)
    expect(refused.stdout + refused.stderr).toContain("found 'DROP'")
  })

  it("`memberflow query` with the running engine's folder finds the engine by it, whatever port it took (0: any free one)", async () => {
    // This engine was started with MEMBERFLOW_HTTP_PORT=0 (test/support/engine.ts): the port is its own choice.
    const { MEMBERFLOW_HTTP_PORT: _ignored, ...withoutPort } = cliEnv()
    const sql = "SELECT member_id, toString(amount) AS amount FROM events FINAL WHERE member_id = 'lily' AND type = 'purchase'"
    for (const env of [{ ...withoutPort, MEMBERFLOW_DATA_DIR: dataDir }, { ...withoutPort, MEMBERFLOW_DATA_DIR: dataDir, MEMBERFLOW_HTTP_PORT: "0" }]) {
      // Only the engine can answer: chDB refuses a second process the folder it has open.
      const found = await runCli(["query", "--format", "json", sql], env)
      expect(found.code, found.stderr).toBe(0)
      expect(found.stdout.trim().split("\n").map((line) => JSON.parse(line) as unknown)).toEqual([{ member_id: "lily", amount: "1200" }])
    }
  })

  it("`memberflow query` on the running engine's folder but another port names the engine, its port and the setting to fix, not chDB's refusal", async () => {
    const elsewhere = String(await freePort())
    const result = await runCli(["query", "SELECT count() FROM events"], { ...cliEnv(), MEMBERFLOW_DATA_DIR: dataDir, MEMBERFLOW_HTTP_PORT: elsewhere })
    expect(result.code).not.toBe(0)
    expect(result.stdout + result.stderr).toContain(
      `no engine answered on http://127.0.0.1:${elsewhere}, and the database in ${dataDir} is open in the engine running with this MEMBERFLOW_DATA_DIR (process ${engine.child.pid}): it listens on port ${engine.port}: set MEMBERFLOW_HTTP_PORT to that, or leave it unset`
    )
    // The engine's folder is left as it was: it still answers on its own port.
    const rows = await engine.sql<{ n: number }>("SELECT count() AS n FROM events FINAL WHERE member_id = 'lily'")
    expect(rows[0]?.n).toBeGreaterThanOrEqual(2)
  })
})

describe("the admin API's binding rules and `memberflow migrate`", () => {
  it("without a token, `memberflow run` refuses to bind to a non-loopback host and names MEMBERFLOW_ADMIN_TOKEN", async () => {
    expect(process.env["MEMBERFLOW_ADMIN_TOKEN"], "the test needs no token in its own environment").toBeUndefined()
    const topology = uniqueTopology("adminbind")
    try {
      const outcome = await startEngine({ ...topology.env, MEMBERFLOW_HTTP_HOST: "0.0.0.0" }, "adminbind").then(
        async (started) => {
          await started.kill("SIGTERM")
          return "it started"
        },
        (error: unknown) => String(error)
      )
      expect(outcome).toMatch(/engine exited \([1-9]\d*\) before ready/)
      expect(outcome).toContain("MEMBERFLOW_ADMIN_TOKEN")
      expect(outcome).toContain("0.0.0.0")
    } finally {
      await dropTopology(topology)
    }
  })

  it("`memberflow query` asks the engine at the host it bound, named or recorded, not only at 127.0.0.1", { timeout: 120_000 }, async () => {
    // 127.0.0.2 is loopback (no token needed) but not 127.0.0.1: an engine there does not answer on 127.0.0.1.
    const topology = uniqueTopology("adminhost")
    const dataDir = tempDir("adminhost")
    const engine = await startEngine({ ...topology.env, MEMBERFLOW_DATA_DIR: dataDir, MEMBERFLOW_HTTP_HOST: "127.0.0.2" }, "adminhost")
    try {
      const sql = "SELECT name FROM system.tables WHERE database = currentDatabase() AND name = 'member_profiles'"
      const named = { ...topology.env, MEMBERFLOW_DATA_DIR: dataDir, MEMBERFLOW_HTTP_HOST: "127.0.0.2", MEMBERFLOW_HTTP_PORT: String(engine.port) }
      const { MEMBERFLOW_HTTP_HOST: _host, MEMBERFLOW_HTTP_PORT: _port, ...recorded } = named
      // Only the engine can answer: chDB refuses a second process the folder it has open.
      for (const env of [named, recorded]) {
        const found = await runCli(["query", "--format", "json", sql], env)
        expect(found.code, found.stderr).toBe(0)
        expect(found.stdout.trim()).toBe(JSON.stringify({ name: "member_profiles" }))
      }
      // Another host named: that is where it asks, and the message says so.
      const elsewhere = await runCli(["query", sql], { ...named, MEMBERFLOW_HTTP_HOST: "127.0.0.3" })
      expect(elsewhere.code).not.toBe(0)
      expect(elsewhere.stdout + elsewhere.stderr).toContain(`no engine answered on http://127.0.0.3:${engine.port}, and the database in ${dataDir} is open in the engine running`)
    } finally {
      await engine.kill("SIGTERM")
      await dropTopology(topology)
    }
  })

  // four CLI processes, each starting the TypeScript loader and chDB: slow on a busy machine
  it("`memberflow migrate` creates the tables in a fresh data directory and is idempotent", { timeout: 180_000 }, async () => {
    const env = { MEMBERFLOW_DATA_DIR: tempDir("adminmigrate"), MEMBERFLOW_HTTP_PORT: String(await freePort()) }
    // Before it, with no engine on that port either: `lift` says where it looked and what to run, not ClickHouse's error.
    const early = await runCli(["lift", "birthday-reward"], env)
    expect(early.code).not.toBe(0)
    expect(early.stdout + early.stderr).toContain(`no engine answered on http://127.0.0.1:${env.MEMBERFLOW_HTTP_PORT}, and the database in ${env.MEMBERFLOW_DATA_DIR} has no memberflow tables: start \`memberflow run\` (or \`memberflow migrate\`)`)
    expect(early.stdout + early.stderr).not.toContain("ChdbQueryError")
    const first = await runCli(["migrate"], env)
    expect(first.code, first.stderr).toBe(0)
    expect(first.stdout).toMatch(/^applied: .*create_events.*create_member_profiles/m)
    const second = await runCli(["migrate"], env)
    expect(second.code, second.stderr).toBe(0)
    expect(second.stdout.trim()).toBe("ClickHouse is up to date")
    // No engine on that port: `memberflow query` opens the database itself.
    const tables = await runCli(["query", "--format", "json", "SELECT name FROM system.tables WHERE database = currentDatabase() ORDER BY name"], env)
    expect(tables.code, tables.stderr).toBe(0)
    const names = tables.stdout.trim().split("\n").map((line) => (JSON.parse(line) as { name: string }).name)
    expect(names).toEqual(expect.arrayContaining(["events", "member_profiles", "member_tags", "rejected_events", "rfm_cutpoints", "schema_migrations"]))
    const [count] = (await runCli(["query", "--format", "json", "SELECT count() AS n FROM schema_migrations FINAL"], env)).stdout.trim().split("\n")
    expect(Number((JSON.parse(count ?? "{}") as { n?: number }).n)).toBeGreaterThanOrEqual(6)
  })
})
