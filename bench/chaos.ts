/**
 * npm run chaos — the chaos harness (bench/chaos/Harness.ts) at full size: CHAOS_MEMBERS members
 * (default 5,000), CHAOS_ENGINES engines (default 1; 3 for the scale-out run), CHAOS_KILLS SIGKILLs
 * (default 6), one NATS restart, NATS frozen (SIGSTOP) for CHAOS_NATS_PAUSE_MS (default 8,000), a 30 s provider outage, one SIGTERM while busy (drain, exit 0 in 10 s). Prints the figures; exits 1 on any loss
 * or duplicate.
 */
import { formatReport, runChaos } from "./chaos/Harness.ts"

const env = (name: string, fallback: number) => Number(process.env[name] ?? fallback)

const report = await runChaos({
  members: env("CHAOS_MEMBERS", 5_000),
  purchasesPerMember: env("CHAOS_PURCHASES", 3),
  engines: env("CHAOS_ENGINES", 1),
  kills: env("CHAOS_KILLS", 6),
  restartNats: process.env["CHAOS_NATS_RESTART"] !== "0",
  pauseNatsMs: env("CHAOS_NATS_PAUSE_MS", 8_000),
  providerOutageMs: env("CHAOS_OUTAGE_MS", 30_000),
  busySigterm: process.env["CHAOS_SIGTERM"] !== "0",
  publishSeconds: env("CHAOS_PUBLISH_S", 60),
  log: (line) => process.stderr.write(`${line}\n`)
})
process.stdout.write(`${formatReport(report)}\n`)
process.exitCode = report.ok ? 0 : 1
