import { describe, expect, it } from "@effect/vitest"
import { type ChaosReport, formatReport, runChaos } from "../../bench/chaos/Harness.ts"

/**
 * The reduced chaos runs (the full ones: `npm run chaos`, figures in RELIABILITY.md). The harness
 * runs its own NATS server, so restarting it here touches no other test.
 */

const expectNoLossNoDuplicate = (report: ChaosReport) => {
  expect(report.profileMismatches).toBe(0)
  expect(report.missing).toBe(0)
  expect(report.duplicated).toBe(0)
  expect(report.otherDuplicated).toBe(0)
  // every message expected was either received once or recorded as interrupted (not resent)
  expect(report.receivedOnce + report.interrupted).toBe(report.expectedMessages)
  expect(report.waitsFiredTwice).toBe(0)
  expect(report.waitsFiredOnce).toBe(report.waitsExpected)
  expect(report.sigtermExitCodes.every((code) => code === 0)).toBe(true)
  expect(report.sigtermSeconds).toBeLessThanOrEqual(10)
  // no engine gave up on its own (a NATS request timing out used to end ingestion, and the engine)
  expect(report.unexpectedExits).toBe(0)
  expect(report.ok).toBe(true)
}

describe("chaos: crashes, a broker restart and a provider outage lose nothing and send nothing twice", () => {
  it("one engine, SIGKILLed twice and SIGTERMed once while busy, NATS frozen for 8 s and restarted once, providers failing for 6 s", { timeout: 300_000 }, async () => {
    const lines: Array<string> = []
    const report = await runChaos({
      members: 60,
      purchasesPerMember: 2,
      engines: 1,
      kills: 2,
      restartNats: true,
      pauseNatsMs: 8_000,
      providerOutageMs: 6_000,
      busySigterm: true,
      publishSeconds: 8,
      log: (line) => lines.push(line)
    })
    // the figures first, so that a failure shows them
    console.log(formatReport(report))
    expect(report.kills).toBe(2)
    expect(report.natsRestarts).toBe(1)
    expect(report.natsPauses).toBe(1)
    // SIGTERM during the run: drained, exit 0 within 10 s, and (below) nothing lost
    expect(report.busySigterm?.code).toBe(0)
    expect(report.busySigterm?.seconds).toBeLessThanOrEqual(10)
    expectNoLossNoDuplicate(report)
  })

  it("three engines on one stream, one of them SIGKILLed mid-run", { timeout: 300_000 }, async () => {
    const lines: Array<string> = []
    const report = await runChaos({
      members: 60,
      purchasesPerMember: 2,
      engines: 3,
      kills: 1,
      restartNats: false,
      providerOutageMs: 0,
      publishSeconds: 8,
      log: (line) => lines.push(line)
    })
    console.log(formatReport(report))
    if (!report.ok) console.log(lines.join("\n"))
    expect(report.kills).toBe(1)
    expectNoLossNoDuplicate(report)
  })
})
