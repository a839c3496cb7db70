import { AckPolicy, DeliverPolicy, RetentionPolicy, StorageType } from "@nats-io/jetstream"
import { nanos } from "@nats-io/transport-node"
import { Context, Effect, Layer } from "effect"
import { Nats, type NatsError } from "./Nats.ts"
import * as Settings from "./Settings.ts"

/**
 * Names of everything the engine owns in NATS. Defaults are the contract (events.md); tests and
 * side-by-side deployments override them so that runs never collide.
 */
export interface TopologyShape {
  readonly stream: string
  /** Events arrive on `<subjectPrefix>.<type>`. */
  readonly subjectPrefix: string
  readonly deadletterStream: string
  readonly deadletterSubject: string
  /** Journey timers waiting to come due, one message per timer on `<timersSubject>.<partition>.<id>` (engine/Timers.ts). */
  readonly timersStream: string
  readonly timersSubject: string
  /** Message requests waiting to be handed to a provider (engine/Delivery.ts). */
  readonly messagesStream: string
  readonly messagesSubject: string
  /** NATS KV bucket: what became of each message (the send ledger). */
  readonly ledgerBucket: string
  /** NATS KV bucket holding one member state per key. */
  readonly membersBucket: string
  /** NATS KV bucket for engine-wide state: RFM cut points, sweep leases. */
  readonly metaBucket: string
}

export const subjectOf = (topology: TopologyShape, type: string): string => `${topology.subjectPrefix}.${type}`

export class Topology extends Context.Tag("memberflow/Topology")<Topology, TopologyShape>() {
  static readonly layer = Layer.effect(
    Topology,
    Effect.gen(function* () {
      const stream = yield* Settings.stream
      const subjectPrefix = yield* Settings.subjectPrefix
      const kvPrefix = yield* Settings.kvPrefix
      return {
        stream,
        subjectPrefix,
        deadletterStream: `${stream}_DEADLETTER`,
        deadletterSubject: `deadletter.${subjectPrefix}`,
        timersStream: `${stream}_TIMERS`,
        timersSubject: `timers.${subjectPrefix}`,
        messagesStream: `${stream}_MESSAGES`,
        messagesSubject: `messages.${subjectPrefix}`,
        ledgerBucket: `${kvPrefix}_messages`,
        membersBucket: `${kvPrefix}_members`,
        metaBucket: `${kvPrefix}_meta`
      }
    })
  )

  static readonly make = (overrides: Partial<TopologyShape> & { readonly stream: string; readonly subjectPrefix: string }) =>
    Layer.succeed(Topology, {
      deadletterStream: `${overrides.stream}_DEADLETTER`,
      deadletterSubject: `deadletter.${overrides.subjectPrefix}`,
      timersStream: `${overrides.stream}_TIMERS`,
      timersSubject: `timers.${overrides.subjectPrefix}`,
      messagesStream: `${overrides.stream}_MESSAGES`,
      messagesSubject: `messages.${overrides.subjectPrefix}`,
      ledgerBucket: `${overrides.stream.toLowerCase()}_messages`,
      membersBucket: `${overrides.stream.toLowerCase()}_members`,
      metaBucket: `${overrides.stream.toLowerCase()}_meta`,
      ...overrides
    })
}

/** The durable consumer of the first timers design (un-acked requests NAKed until due); removed on upgrade. */
export const LEGACY_TIMERS_CONSUMER = "memberflow-timers"
/** One consumer per channel (filtered on `<messagesSubject>.<channel>`): a slow provider holds up only its own. */
export const messagesConsumer = (channel: "sms" | "email" | "wechat"): string => `memberflow-messages-${channel}`

const isNotFound = (error: NatsError): boolean =>
  error.cause instanceof Error && /not found/i.test(error.cause.message)

/**
 * Creates the event, dead-letter, timers and messages streams and the durable consumers of
 * messages when missing. Events are read by position (engine/Ingest.ts), not through a durable
 * consumer. Never deletes or purges (events.md). Safe when several engines start at once.
 */
export const ensureTopology = Effect.fn("Topology.ensure")(function* () {
  const { jsm, use } = yield* Nats
  const topology = yield* Topology
  // How long a message pulled by an engine that died stays invisible before another engine gets it.
  const ackWaitMs = yield* Settings.ackWaitMs
  const ensureStream = (name: string, subjects: Array<string>, perSubject = -1) =>
    use(`stream info ${name}`, () => jsm.streams.info(name)).pipe(
      Effect.catchIf(isNotFound, () =>
        use(`create stream ${name}`, () =>
          jsm.streams.add({
            name,
            subjects,
            storage: StorageType.File,
            retention: RetentionPolicy.Limits,
            max_msgs_per_subject: perSubject,
            duplicate_window: nanos(5 * 60_000)
          })
        )
      )
    )
  yield* ensureStream(topology.stream, [`${topology.subjectPrefix}.>`])
  yield* ensureStream(topology.deadletterStream, [topology.deadletterSubject])
  // One message per timer (`<timersSubject>.<partition>.<timer id>`), deleted once it fired
  // (engine/Timers.ts). A stream from before that design is converted by engine/timers/Legacy.ts.
  yield* ensureStream(topology.timersStream, [`${topology.timersSubject}.>`], 1)
  yield* ensureStream(topology.messagesStream, [`${topology.messagesSubject}.*`])
  // Every deferred message holds one un-acked request (NAKed until due).
  const ensureHolding = (stream: string, name: string, ackWait: number, filter?: string) =>
    use(`consumer info ${name}`, () => jsm.consumers.info(stream, name)).pipe(
      Effect.catchIf(isNotFound, () =>
        use(`create consumer ${name}`, () =>
          jsm.consumers.add(stream, {
            durable_name: name,
            ack_policy: AckPolicy.Explicit,
            deliver_policy: DeliverPolicy.All,
            ack_wait: nanos(ackWait),
            ...(filter === undefined ? {} : { filter_subject: filter }),
            max_ack_pending: -1,
            max_deliver: -1
          })
        )
      )
    )
  for (const channel of ["sms", "email", "wechat"] as const) {
    yield* ensureHolding(topology.messagesStream, messagesConsumer(channel), ackWaitMs, `${topology.messagesSubject}.${channel}`)
  }
})
