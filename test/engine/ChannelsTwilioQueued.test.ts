import type { NatsConnection } from "@nats-io/transport-node"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type EngineProcess, eventually, startEngine, tempDir } from "../support/engine.ts"
import {
  callbackMessageId,
  type CallbackProxy,
  journeysFolder,
  type LedgerView,
  ledgerEntries,
  messageRows,
  type Providers,
  startCallbackProxy,
  startProviders
} from "../support/liveChannels.ts"
import { dropTopology, natsConnect, publishEvents, type TestTopology, uniqueTopology } from "../support/nats.ts"

/**
 * Twilio takes a message (201, status `queued`) and sends it later: behind a number's throughput
 * or a Messaging Service's queue, `date_sent` stays empty for seconds to minutes. An engine killed
 * after Twilio took a message but before it heard back must still recognise it as taken.
 */

const FILES: Record<string, string> = {
  "templates/sms/t-code.hbs": "{{brand.name}} code for {{event.marker}}\n",
  "code.yaml": `id: code
name: one SMS (test)
status: active
category: transactional
trigger: { event: { type: code.test } }
steps:
  - { id: code, send: { channel: sms, template: t-code } }
`
}

describe("an SMS Twilio has taken but not yet sent when the engine dies", () => {
  let topology: TestTopology
  let nc: NatsConnection
  let providers: Providers
  let proxy: CallbackProxy
  let dir: string
  let dataDir: string
  const engines: Array<EngineProcess> = []

  const start = async () => {
    const engine = await startEngine(
      { ...topology.env, ...providers.env, JOURNEYS_DIR: dir, MEMBERFLOW_DATA_DIR: dataDir, MEMBERFLOW_PUBLIC_URL: proxy.url, MEMBERFLOW_ACK_WAIT_MS: "3000" },
      "twilio-queued"
    )
    engines.push(engine)
    proxy.target(engine)
    return engine
  }

  beforeAll(async () => {
    topology = uniqueTopology("twqueued")
    nc = await natsConnect()
    // Each message stays `queued` (no date_sent) for 30 s after Twilio took it.
    providers = await startProviders({ twilioStatusDelayMs: 30_000 })
    proxy = await startCallbackProxy()
    dir = journeysFolder("policies:\n  globalControl: 0\n", FILES)
    dataDir = tempDir("twilio-queued")
    await start()
  })

  afterAll(async () => {
    await Promise.all(engines.map((e) => e.kill("SIGKILL")))
    await proxy?.close()
    await providers?.close()
    await nc?.close()
    if (topology) await dropTopology(topology)
  })

  it("is recovered as sent after the restart, not sent a second time", { timeout: 90_000 }, async () => {
    const { twilio } = providers
    const ids = ["t1", "t2", "t3", "t4"]
    const now = new Date().toISOString()
    await publishEvents(nc, topology, ids.map((memberId, i) => ({
      id: `reg-${memberId}`,
      type: "member.registered",
      memberId,
      occurredAt: now,
      properties: { phone: `+861360000000${i}` }
    })))
    // Twilio answers slowly: the engine dies while waiting, Twilio takes each message all the same.
    twilio.slow(3_000)
    await publishEvents(nc, topology, ids.map((memberId) => ({ id: `code-${memberId}`, type: "code.test", memberId, occurredAt: now, properties: { marker: memberId } })))
    let inFlight: Array<LedgerView> = []
    await eventually(async () => {
      inFlight = (await ledgerEntries(nc, topology, "code")).filter((e) => e.status === "attempt")
      return inFlight.length >= 2
    }, 20_000, "hand-overs in flight")
    // recorded `attempt` a moment ago: by now the requests are on the wire, held by Twilio
    await new Promise((resolve) => setTimeout(resolve, 300))
    const killedAt = Date.now()
    expect(await engines[0]!.kill("SIGKILL")).toBeNull()
    twilio.slow(0)
    const engine = await start()
    await eventually(async () => {
      const rows = await messageRows(engine, "journey_id = 'code'")
      return rows.length === 4 && rows.every((row) => row.status !== "queued")
    }, 30_000, "every message decided after the restart")

    const rows = await messageRows(engine, "journey_id = 'code'")
    for (const row of rows) {
      const taken = twilio.received.filter((sms) => callbackMessageId(sms.statusCallback) === row.message_id)
      expect({ member: row.member_id, status: row.status, received: taken.length }).toEqual({ member: row.member_id, status: "sent", received: 1 })
      expect(row.provider_message_id).toBe(taken[0]?.sid)
    }
    // the scenario held: what was in flight at the kill reached Twilio from the dead engine (held
    // 3 s, then taken) and has not been sent on yet
    for (const e of inFlight) {
      const taken = twilio.received.filter((sms) => callbackMessageId(sms.statusCallback) === e.messageId)
      expect(taken[0]?.createdAt).toBeLessThan(killedAt + 3_500)
      expect(taken[0]?.sentAt).toBeNull()
    }
  })
})
