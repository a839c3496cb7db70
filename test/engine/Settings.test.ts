import { jetstreamManager } from "@nats-io/jetstream"
import { ConfigProvider, Effect, Either } from "effect"
import { existsSync, readdirSync } from "node:fs"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import * as Settings from "../../engine/Settings.ts"
import { runCli, tempDir } from "../support/engine.ts"
import { natsConnect, uniqueTopology } from "../support/nats.ts"

/** `checkRunSettings` against exactly these variables: the message of its refusal, or null. */
const refusal = (env: Record<string, string>): string | null => {
  const result = Effect.runSync(Effect.either(Settings.checkRunSettings.pipe(Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env)))))))
  return Either.isLeft(result) ? String(result.left) : null
}

describe("the engine's settings", () => {
  it("the defaults pass, and so do the values the tests and the demo run with", () => {
    expect(refusal({})).toBeNull()
    expect(
      refusal({
        MEMBERFLOW_BATCH_SIZE: "50",
        MEMBERFLOW_BATCH_WINDOW_MS: "0",
        MEMBERFLOW_LEASE_MS: "2000",
        MEMBERFLOW_CHECKPOINT_MS: "500",
        MEMBERFLOW_CACHE_MEMBERS: "0",
        MEMBERFLOW_ACK_WAIT_MS: "3000",
        MEMBERFLOW_JOURNEYS_POLL_MS: "300",
        MEMBERFLOW_EXPERIMENTS_CHECK_MS: "1000",
        MEMBERFLOW_HTTP_PORT: "0",
        MEMBERFLOW_STREAM: "MEMBERFLOW_DEMO_AB12",
        MEMBERFLOW_SUBJECT_PREFIX: "demo_ab12.events",
        MEMBERFLOW_KV_PREFIX: "memberflow_demo_ab12",
        MEMBERFLOW_READER: "thread",
        CHANNELS_MODE: "sandbox"
      })
    ).toBeNull()
  })

  it("each value out of range or of the wrong kind is refused, naming the setting and what it takes", () => {
    const cases: ReadonlyArray<readonly [string, string, RegExp]> = [
      ["MEMBERFLOW_PARTITIONS", "0", /MEMBERFLOW_PARTITIONS must be a whole number of partitions from 1 to 1,024/],
      ["MEMBERFLOW_PARTITIONS", "sixteen", /MEMBERFLOW_PARTITIONS/],
      ["MEMBERFLOW_BATCH_SIZE", "0", /MEMBERFLOW_BATCH_SIZE must be a whole number of events from 1 to 100,000/],
      ["MEMBERFLOW_BATCH_SIZE", "2.5", /MEMBERFLOW_BATCH_SIZE/],
      ["MEMBERFLOW_BATCH_WINDOW_MS", "-1", /MEMBERFLOW_BATCH_WINDOW_MS must be a whole number of milliseconds from 0/],
      ["MEMBERFLOW_MAX_EVENT_BYTES", "10", /MEMBERFLOW_MAX_EVENT_BYTES must be a whole number of bytes from 256/],
      ["MEMBERFLOW_LEASE_MS", "50", /MEMBERFLOW_LEASE_MS must be a whole number of milliseconds from 1,000/],
      ["MEMBERFLOW_CHECKPOINT_MS", "0", /MEMBERFLOW_CHECKPOINT_MS must be a whole number of milliseconds from 100/],
      ["MEMBERFLOW_CHECKPOINT_SPREAD", "101", /MEMBERFLOW_CHECKPOINT_SPREAD must be a whole number of percent from 0 to 100/],
      ["MEMBERFLOW_CHECKPOINT_SPREAD", "half", /MEMBERFLOW_CHECKPOINT_SPREAD/],
      ["MEMBERFLOW_CHECKPOINT_MEMBERS", "-5", /MEMBERFLOW_CHECKPOINT_MEMBERS must be a whole number of member states from 1/],
      ["MEMBERFLOW_PENDING_ROWS", "0", /MEMBERFLOW_PENDING_ROWS must be a whole number of rows from 1/],
      ["MEMBERFLOW_GROUP_COMMIT_MS", "-1", /MEMBERFLOW_GROUP_COMMIT_MS must be a whole number of milliseconds from 0 to 60,000/],
      ["MEMBERFLOW_GROUP_COMMIT_MS", "0.5", /MEMBERFLOW_GROUP_COMMIT_MS/],
      ["MEMBERFLOW_THREADS_NICE", "20", /MEMBERFLOW_THREADS_NICE must be a whole number from 0 to 19/],
      ["MEMBERFLOW_THREADS_NICE", "-5", /MEMBERFLOW_THREADS_NICE must be a whole number from 0 to 19/],
      ["MEMBERFLOW_CACHE_MEMBERS", "-1", /MEMBERFLOW_CACHE_MEMBERS must be a whole number of member states from 0/],
      ["MEMBERFLOW_ACK_WAIT_MS", "10", /MEMBERFLOW_ACK_WAIT_MS must be a whole number of milliseconds from 1,000/],
      ["MEMBERFLOW_SMS_CONCURRENCY", "0", /MEMBERFLOW_SMS_CONCURRENCY must be a whole number of requests from 1 to 10,000/],
      ["MEMBERFLOW_EMAIL_CONCURRENCY", "many", /MEMBERFLOW_EMAIL_CONCURRENCY/],
      ["MEMBERFLOW_WECHAT_CONCURRENCY", "-2", /MEMBERFLOW_WECHAT_CONCURRENCY must be a whole number of requests/],
      ["MEMBERFLOW_JOURNEYS_POLL_MS", "0", /MEMBERFLOW_JOURNEYS_POLL_MS must be a whole number of milliseconds from 100/],
      ["MEMBERFLOW_EXPERIMENTS_CHECK_MS", "5", /MEMBERFLOW_EXPERIMENTS_CHECK_MS must be a whole number of milliseconds from 1,000/],
      ["MEMBERFLOW_HTTP_PORT", "70000", /MEMBERFLOW_HTTP_PORT must be a TCP port number from 0 to 65,535/],
      ["MEMBERFLOW_PASS_SHARE", "0", /MEMBERFLOW_PASS_SHARE must be a number above 0 and at most 1/],
      ["MEMBERFLOW_PASS_TIMER_BURST", "-1", /MEMBERFLOW_PASS_TIMER_BURST must be a number of timers a second, 0 or more/],
      ["MEMBERFLOW_SWEEP_MAX_LAG", "-1", /MEMBERFLOW_SWEEP_MAX_LAG must be a whole number of messages, 0 or more/],
      ["MEMBERFLOW_UNREADABLE_RECHECK_MS", "0", /MEMBERFLOW_UNREADABLE_RECHECK_MS must be a positive number of milliseconds/],
      ["MEMBERFLOW_STREAM", "member events", /MEMBERFLOW_STREAM must be a JetStream stream name: no whitespace/],
      ["MEMBERFLOW_STREAM", "MEMBER.EVENTS", /MEMBERFLOW_STREAM must be a JetStream stream name/],
      ["MEMBERFLOW_SUBJECT_PREFIX", "events.>", /MEMBERFLOW_SUBJECT_PREFIX must be NATS subject tokens/],
      ["MEMBERFLOW_SUBJECT_PREFIX", "events..pos", /MEMBERFLOW_SUBJECT_PREFIX must be NATS subject tokens/],
      ["MEMBERFLOW_KV_PREFIX", "member.flow", /MEMBERFLOW_KV_PREFIX must be the start of KV bucket names: letters, digits/],
      ["MEMBERFLOW_READER", "fiber", /MEMBERFLOW_READER/],
      ["CHANNELS_MODE", "dry-run", /CHANNELS_MODE/]
    ]
    const wrong = cases.filter(([setting, value, expected]) => !expected.test(refusal({ [setting]: value }) ?? "accepted"))
    expect(wrong.map(([setting, value]) => `${setting}=${value}: ${refusal({ [setting]: value }) ?? "accepted"}`)).toEqual([])
  })

  it("memberflow run refuses a bad setting before it creates any stream, bucket or table", async () => {
    const topology = uniqueTopology("settings")
    const dataDir = tempDir("settings")
    const result = await runCli(["run"], { ...topology.env, MEMBERFLOW_PARTITIONS: "0", MEMBERFLOW_DATA_DIR: dataDir, MEMBERFLOW_HTTP_PORT: "0" })
    expect(result.code).not.toBe(0)
    expect(result.stdout).toMatch(/^\{"message":"the engine stopped","logLevel":"ERROR".*MEMBERFLOW_PARTITIONS must be a whole number of partitions from 1 to 1,024/m)
    // Nothing made on NATS under the topology's names, nothing in the data folder.
    const nc = await natsConnect()
    try {
      const jsm = await jetstreamManager(nc)
      const made: Array<string> = []
      for await (const name of jsm.streams.names()) if (name.includes(topology.stream) || name.includes(topology.env["MEMBERFLOW_KV_PREFIX"]!)) made.push(name)
      expect(made).toEqual([])
    } finally {
      await nc.close()
    }
    expect(existsSync(dataDir) ? readdirSync(join(dataDir)) : []).toEqual([])
  })
})
