import { jetstreamManager } from "@nats-io/jetstream"
import { connect, type NatsConnection } from "@nats-io/transport-node"
import { randomBytes } from "node:crypto"

export const NATS_URL = "nats://127.0.0.1:4222"

/** Names no other test run uses: streams, subjects, consumer and KV buckets of one test. */
export interface TestTopology {
  readonly stream: string
  readonly subjectPrefix: string
  readonly kvPrefix: string
  readonly env: Record<string, string>
}

export const uniqueTopology = (label: string): TestTopology => {
  const suffix = `${label.replace(/[^a-z0-9]/gi, "").slice(0, 12)}${randomBytes(4).toString("hex")}`.toLowerCase()
  const stream = `MF_T_${suffix.toUpperCase()}`
  const subjectPrefix = `t${suffix}.events`
  const kvPrefix = `mft_${suffix}`
  return {
    stream,
    subjectPrefix,
    kvPrefix,
    env: {
      NATS_URL,
      MEMBERFLOW_STREAM: stream,
      MEMBERFLOW_SUBJECT_PREFIX: subjectPrefix,
      MEMBERFLOW_KV_PREFIX: kvPrefix
    }
  }
}

export const natsConnect = (): Promise<NatsConnection> => connect({ servers: NATS_URL, noAsyncTraces: true })

/** Removes what a test created in NATS (its streams and KV buckets). */
export const dropTopology = async (topology: TestTopology): Promise<void> => {
  const nc = await natsConnect()
  try {
    const jsm = await jetstreamManager(nc)
    for (const name of [topology.stream, `${topology.stream}_DEADLETTER`, `${topology.stream}_TIMERS`, `${topology.stream}_MESSAGES`]) {
      await jsm.streams.delete(name).catch(() => false)
    }
    // A KV bucket is the stream KV_<bucket>.
    for (const bucket of [`${topology.kvPrefix}_members`, `${topology.kvPrefix}_meta`, `${topology.kvPrefix}_messages`]) {
      await jsm.streams.delete(`KV_${bucket}`).catch(() => false)
    }
  } finally {
    await nc.close()
  }
}

export interface EventInput {
  readonly id: string
  readonly type: string
  readonly memberId: string
  readonly occurredAt: string
  readonly properties?: Record<string, unknown>
  readonly source?: string
}

/** Publishes events the way an upstream service should: async, with the id as Nats-Msg-Id. */
export const publishEvents = async (nc: NatsConnection, topology: TestTopology, events: ReadonlyArray<EventInput>): Promise<void> => {
  const { jetstream } = await import("@nats-io/jetstream")
  const js = jetstream(nc)
  const pending: Array<Promise<unknown>> = []
  for (const event of events) {
    pending.push(js.publish(`${topology.subjectPrefix}.${event.type}`, JSON.stringify(event), { msgID: event.id }))
    if (pending.length >= 500) await Promise.all(pending.splice(0))
  }
  await Promise.all(pending)
}

/** Publishes raw bytes on a subject (for hostile input). */
export const publishRaw = async (nc: NatsConnection, subject: string, data: Uint8Array | string): Promise<void> => {
  const { jetstream } = await import("@nats-io/jetstream")
  await jetstream(nc).publish(subject, data)
}
