import { Agent, request } from "node:http"
import { afterAll, describe, expect, it } from "vitest"
import { type EngineProcess, startEngine } from "../support/engine.ts"
import { dropTopology, uniqueTopology } from "../support/nats.ts"

describe("SIGTERM while clients keep their connections busy", () => {
  const topology = uniqueTopology("shutdown")
  let engine: EngineProcess | undefined

  afterAll(async () => {
    await engine?.kill("SIGKILL")
    await dropTopology(topology)
  })

  it("exits 0 within 10 s though requests keep arriving on kept-alive connections", { timeout: 90_000 }, async () => {
    engine = await startEngine({ ...topology.env }, "shutdown")
    const port = engine.port
    // Clients keeping kept-alive connections busy, a request always in flight (a provider's status
    // callbacks, a load balancer's health checks); they keep going through the shutdown.
    const agent = new Agent({ keepAlive: true, maxSockets: 4 })
    let polling = true
    const poll = async () => {
      while (polling) {
        await new Promise<void>((resolve) => {
          // a query that takes a second: a request is in flight whenever the routes go
          const req = request({ host: "127.0.0.1", port, path: "/sql", method: "POST", agent, headers: { "content-type": "text/plain" } }, (res) => {
            res.resume()
            res.on("end", resolve)
            res.on("error", resolve)
          })
          req.on("error", () => resolve())
          req.setTimeout(20_000, () => req.destroy())
          req.end("SELECT sum(sleepEachRow(0.1)) FROM numbers(10)")
        })
      }
    }
    const pollers = Array.from({ length: 4 }, poll)
    await new Promise((resolve) => setTimeout(resolve, 1_500))

    const started = Date.now()
    engine.child.kill("SIGTERM")
    const code = await Promise.race([engine.exited, new Promise<"hung">((resolve) => setTimeout(() => resolve("hung"), 20_000))])
    const seconds = (Date.now() - started) / 1000
    polling = false
    agent.destroy()
    await Promise.all(pollers)
    expect(code).toBe(0)
    expect(seconds).toBeLessThanOrEqual(10)
  })
})
