import { jetstreamManager } from "@nats-io/jetstream"
import { spawn } from "node:child_process"
import { existsSync, readFileSync, rmSync } from "node:fs"
import { join } from "node:path"
import { describe, expect, it, onTestFinished } from "vitest"
import { freePort, ROOT, runCli, tempDir } from "../support/engine.ts"
import { natsConnect } from "../support/nats.ts"

/**
 * `memberflow demo` as a newcomer runs it: only NATS up, the bin, its printed output. The engine is
 * stopped by the time it exits, so everything is checked in what it printed (and in NATS, which it
 * must leave as it found it).
 */

const SHIPPED = ["birthday-reward", "churn-recall", "points-expiry-reminder", "tier-downgrade-warning", "tier-upgrade-nudge", "welcome-series"]

/** The rows of the text table whose header line starts with `first` and names `columns`. */
const tableAfter = (output: string, columns: ReadonlyArray<string>, from = 0): Array<Array<string>> => {
  const lines = output.split("\n")
  const start = lines.findIndex((line, i) => i >= from && columns.every((c) => line.split(/\s{2,}/).includes(c)) && /^-+(\s+-+)*$/.test(lines[i + 1] ?? ""))
  if (start < 0) return []
  const rows: Array<Array<string>> = []
  for (const line of lines.slice(start + 2)) {
    if (line.trim() === "") break
    rows.push(line.trim().split(/\s{2,}/))
  }
  return rows
}

const count = (text: string | undefined): number => Number((text ?? "").replace(/,/g, ""))

const streamExists = async (name: string): Promise<boolean> => {
  const nc = await natsConnect()
  try {
    const jsm = await jetstreamManager(nc)
    return await jsm.streams.info(name).then(() => true, () => false)
  } finally {
    await nc.close()
  }
}

const streamOf = (stdout: string): string => /stream (MEMBERFLOW_DEMO_[A-Z0-9_]+)/.exec(stdout)?.[1] ?? "none printed"

describe("memberflow demo", () => {
  it("runs the whole product on one machine: every shipped journey enrols members, every channel sends in sandbox, and a lift table comes out", async () => {
    const dir = tempDir("demo")
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }))
    // A journey's day in 0.4 s, not the default 1 s: the churn recall's 30 + 30 days and its goal's 30
    // are the demo's longest stretch (70 s of the 72 at 1 s; 35 s of 39 at 0.4 s).
    const { code, stdout, stderr } = await runCli(["demo", "--members", "1500", "--day-seconds", "0.4", "--dir", dir], {})
    expect(code, `${stdout}\n${stderr}`).toBe(0)

    const enrolled = tableAfter(stdout, ["journey", "arm", "enrolled"])
    for (const journey of SHIPPED) {
      const members = enrolled.filter((row) => row[0] === journey).reduce((sum, row) => sum + count(row[2]), 0)
      expect(members, `${journey} enrolled nobody:\n${stdout}`).toBeGreaterThan(0)
    }

    const messages = tableAfter(stdout, ["channel", "status", "messages"])
    for (const channel of ["sms", "email", "wechat"]) {
      const sent = messages.find((row) => row[0] === channel && row[1] === "sent")
      expect(count(sent?.[2]), `nothing sent by ${channel}:\n${stdout}`).toBeGreaterThan(0)
    }
    const conversions = tableAfter(stdout, ["journey", "conversions", "revenue"])
    expect(conversions.reduce((sum, row) => sum + count(row[1]), 0)).toBeGreaterThan(0)

    // a lift table per journey with an experiment: each arm, control included, with members in it
    for (const journey of ["birthday-reward", "churn-recall"]) {
      const at = stdout.split("\n").findIndex((line) => line.startsWith(`${journey} — conversion to the journey's goal`))
      expect(at, `no lift table for ${journey}:\n${stdout}`).toBeGreaterThanOrEqual(0)
      const arms = tableAfter(stdout, ["arm", "enrolled", "converted", "rate"], at)
      expect(arms.map((row) => row[0]).sort()).toEqual(journey === "churn-recall" ? ["control", "recall"] : ["control", "gift", "points"])
      for (const row of arms) expect(count(row[1])).toBeGreaterThan(0)
      expect(stdout).toMatch(new RegExp(`^(recall|gift|points)( beats control| vs control)`, "m"))
    }
    // the HTML report of each experiment journey, from `memberflow report`
    for (const journey of ["birthday-reward", "churn-recall"]) {
      const file = join(dir, `${journey}-report.html`)
      expect(stdout).toContain(`HTML report: ${file}`)
      expect(readFileSync(file, "utf8")).toContain("<html")
    }
    expect(stdout).toMatch(/Timings: .*journeys settled [\d.]+ s/)

    // progress while it ran: one plain line every few seconds
    const progress = stderr.split("\n").filter((line) => /^\[\s*\d+s\] /.test(line))
    expect(progress.length).toBeGreaterThan(2)
    expect(progress.some((line) => line.includes("enrolled: ") && line.includes("conversions"))).toBe(true)

    // it leaves NATS as it found it, and its files where it said
    const stream = streamOf(stdout)
    expect(stream).not.toBe("none printed")
    expect(await streamExists(stream)).toBe(false)
    expect(existsSync(join(dir, "data"))).toBe(true)
    expect(readFileSync(join(dir, "journeys", "churn-recall.yaml"), "utf8")).toMatch(/^# DEMO-TIMED/)
  }, 900_000)

  it("without a NATS server it says where it looked and how to start one, and exits non-zero", async () => {
    const port = await freePort()
    const dir = tempDir("demo-nonats")
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }))
    const { code, stdout, stderr } = await runCli(["demo", "--members", "200", "--dir", dir], { NATS_URL: `nats://127.0.0.1:${port}` })
    expect(code).not.toBe(0)
    // the CLI's logger prints a failure on stdout
    expect(stdout + stderr).toContain(`DemoFailed: cannot reach NATS at nats://127.0.0.1:${port}`)
    expect(stdout + stderr).toContain("nats-server -js")
  }, 120_000)

  it("a size it cannot run is refused with the range it can", async () => {
    const dir = tempDir("demo-small")
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }))
    const { code, stdout, stderr } = await runCli(["demo", "--members", "10", "--dir", dir], {})
    expect(code).not.toBe(0)
    expect(stdout + stderr).toContain("DemoFailed: --members must be a whole number from 100 to 1,000,000 (got 10)")
  }, 120_000)

  it("when its engine dies it says so with the end of the engine's log, exits non-zero and still cleans up NATS", async () => {
    const dir = tempDir("demo-dies")
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }))
    const child = spawn(process.execPath, [join(ROOT, "bin/memberflow.js"), "demo", "--members", "300", "--dir", dir], {
      cwd: ROOT,
      env: process.env,
      stdio: ["ignore", "pipe", "pipe"]
    })
    let stdout = ""
    let stderr = ""
    let killed: number | null = null
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()))
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString()
      const pid = /memberflow run \(pid (\d+)\)/.exec(stdout)?.[1]
      if (pid !== undefined && killed === null) {
        killed = Number(pid)
        // the demo's own engine, by the id it printed
        process.kill(killed, "SIGKILL")
      }
    })
    const code = await new Promise<number | null>((ok) => child.on("exit", ok))
    expect(killed).not.toBeNull()
    expect(code).not.toBe(0)
    expect(stdout + stderr).toContain(`the engine (memberflow run, pid ${killed}) exited. The end of its log`)
    expect(await streamExists(streamOf(stdout))).toBe(false)
  }, 300_000)
})
