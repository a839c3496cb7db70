import { describe, expect, it } from "@effect/vitest"
import { Effect, Redacted } from "effect"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"
import { make } from "../../../engine/Clickhouse.ts"

/**
 * The server path (CLICKHOUSE_URL set) against a local HTTP endpoint that answers as ClickHouse's
 * HTTP interface does: the statement in the `query` parameter (or, for a command, the body), an
 * insert's data as the request body, 200 with an empty body when it is done, and 500 with the
 * `Code: N. DB::Exception: …` text when not. It records what the engine sent.
 */

interface Received {
  readonly query: string
  readonly database: string | null
  readonly body: string
  /** The request's settings (URL parameters other than the statement and the database). */
  readonly settings: Record<string, string>
}

const fakeClickhouse = Effect.acquireRelease(
  Effect.async<{ readonly url: string; readonly received: Array<Received>; readonly close: () => void }>((resume) => {
    const received: Array<Received> = []
    const server = Http.createServer((request, response) => {
      const chunks: Array<Buffer> = []
      request.on("data", (chunk: Buffer) => chunks.push(chunk))
      request.on("end", () => {
        const url = new URL(request.url ?? "/", "http://localhost")
        const body = Buffer.concat(chunks).toString("utf8")
        const query = url.searchParams.get("query") ?? body
        const settings = Object.fromEntries([...url.searchParams].filter(([key]) => key !== "query" && key !== "database"))
        received.push({ query, database: url.searchParams.get("database"), body: url.searchParams.has("query") ? body : "", settings })
        if (query.includes("no_such_table")) {
          response.writeHead(500, { "X-ClickHouse-Exception-Code": "60" })
          response.end("Code: 60. DB::Exception: Table analytics.no_such_table does not exist. (UNKNOWN_TABLE) (version 24.8.1.1)")
          return
        }
        response.writeHead(200, { "X-ClickHouse-Summary": "{\"written_rows\":\"0\"}" })
        response.end()
      })
    })
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo
      resume(Effect.succeed({ url: `http://writer:pw-1234@127.0.0.1:${port}/analytics`, received, close: () => server.close() }))
    })
  }),
  (fake) => Effect.sync(fake.close)
)

describe("Clickhouse (server over HTTP)", () => {
  it.scoped("rows travel as JSONCompactEachRow lines in the insert's body, one per row, in the statement's column order", () =>
    Effect.gen(function*() {
      const fake = yield* fakeClickhouse
      const clickhouse = yield* make({ url: Redacted.make(fake.url), dataDir: "unused" })
      expect(clickhouse.embedded).toBe(false)
      expect(clickhouse.database).toBe("analytics")
      const rows = [
        { event_id: "e-1", member_id: "m-1", amount: 199.5, properties: "{\"sku\":\"A\"}" },
        { event_id: "e-2", member_id: "會員-2 🎁", amount: null },
        { event_id: "e-3", member_id: "m-3", amount: 1, tags: ["vip", "new\nline"] }
      ]
      yield* clickhouse.insert("events", rows)
      const insert = fake.received.find((r) => r.query.startsWith("INSERT"))
      expect(insert?.query).toBe("INSERT INTO events (event_id, member_id, amount, properties, tags) FORMAT JSONCompactEachRow")
      expect(insert?.database).toBe("analytics")
      // One insert's lines are parsed by one thread (engine/Clickhouse.ts INSERT_SETTINGS).
      expect(insert?.settings).toMatchObject({ input_format_parallel_parsing: "0" })
      const lines = insert?.body.split("\n") ?? []
      expect(lines.pop()).toBe("")
      expect(lines.map((line) => JSON.parse(line))).toEqual([
        ["e-1", "m-1", 199.5, "{\"sku\":\"A\"}", null],
        ["e-2", "會員-2 🎁", null, null, null],
        ["e-3", "m-3", 1, null, ["vip", "new\nline"]]
      ])
    }))

  it.scoped("an insert the server refuses is a ClickhouseError with its message, and no password", () =>
    Effect.gen(function*() {
      const fake = yield* fakeClickhouse
      const clickhouse = yield* make({ url: Redacted.make(fake.url), dataDir: "unused" })
      const error = yield* Effect.flip(clickhouse.insert("no_such_table", [{ id: 1 }]))
      expect(error._tag).toBe("ClickhouseError")
      expect(error.message).toMatch(/^insert into no_such_table failed: .*UNKNOWN_TABLE|does not exist/)
      expect(error.message).not.toContain("pw-1234")
      // The same pool's buffers serve the next insert.
      yield* clickhouse.insert("events", [{ event_id: "after" }])
      expect(fake.received.at(-1)?.body).toBe("[\"after\"]\n")
    }))
})
