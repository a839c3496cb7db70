import { DeliverPolicy } from "@nats-io/jetstream"
import { Effect } from "effect"
import { partitionOf } from "../ingest/Partition.ts"
import { Nats } from "../Nats.ts"
import { Topology, LEGACY_TIMERS_CONSUMER } from "../Topology.ts"

/**
 * Converts a timers stream of the first timers design to the current one, once, at start.
 *
 * Then, every timer request was a message on `<timersSubject>` held un-acked by the durable consumer
 * `memberflow-timers` and NAKed until due. Now each is a message of its own on
 * `<timersSubject>.<partition>.<timer id>`, held by the partition's owner (engine/Timers.ts). The
 * requests the old consumer had not acknowledged (everything above its ack floor: pending waits,
 * and some that fired) are written again the new way; those that fired already fire once more,
 * with the same event id, and their members, who remember the events they applied, ignore them.
 * Then the old consumer and the old messages go.
 *
 * Stop every engine of the old version before starting this one: an old engine would go on
 * firing from a consumer this removes.
 */
export const migrateLegacyTimers = (partitions: number) =>
  Effect.gen(function* () {
    const { js, jsm, use } = yield* Nats
    const topology = yield* Topology
    const legacy = topology.timersSubject
    const info = yield* use("timers stream info", () => jsm.streams.info(topology.timersStream))
    if (!info.config.subjects.includes(legacy)) return
    const current = `${legacy}.>`
    yield* use("timers stream: add the per-timer subjects", () =>
      jsm.streams.update(topology.timersStream, { ...info.config, subjects: [legacy, current] })
    )
    const floor = yield* use("legacy timers consumer", () => jsm.consumers.info(topology.timersStream, LEGACY_TIMERS_CONSUMER)).pipe(
      Effect.map((consumer) => consumer.ack_floor.stream_seq),
      Effect.orElseSucceed(() => 0)
    )
    const moved = yield* use("move legacy timers", async () => {
      const state = await jsm.streams.info(topology.timersStream, { subjects_filter: legacy })
      const last = state.state.last_seq
      const consumer = await js.consumers.get(topology.timersStream, {
        filter_subjects: legacy,
        deliver_policy: DeliverPolicy.StartSequence,
        opt_start_seq: floor + 1
      })
      if ((await consumer.info(true)).num_pending === 0) return 0
      const messages = await consumer.consume({ max_messages: 2000 })
      let count = 0
      const inFlight: Array<Promise<unknown>> = []
      try {
        for await (const msg of messages) {
          if (msg.seq > floor && msg.seq <= last && msg.subject === legacy) {
            try {
              const request = JSON.parse(msg.string()) as { id?: unknown; memberId?: unknown }
              if (typeof request.id === "string" && typeof request.memberId === "string") {
                inFlight.push(js.publish(`${legacy}.${partitionOf(request.memberId, partitions)}.${request.id}`, msg.data))
                count++
              }
            } catch {
              // not a request the engine wrote: nothing to keep
            }
            if (inFlight.length >= 1000) await Promise.all(inFlight.splice(0))
          }
          if (msg.seq >= last || msg.info.pending === 0) break
        }
        await Promise.all(inFlight)
      } finally {
        messages.stop()
      }
      return count
    })
    yield* use("delete legacy timers consumer", () => jsm.consumers.delete(topology.timersStream, LEGACY_TIMERS_CONSUMER)).pipe(Effect.ignore)
    yield* use("purge legacy timers", () => jsm.streams.purge(topology.timersStream, { filter: legacy }))
    yield* use("timers stream: per-timer subjects only", () =>
      jsm.streams.update(topology.timersStream, { ...info.config, subjects: [current], max_msgs_per_subject: 1 })
    )
    yield* Effect.logInfo("timers converted to the per-partition design").pipe(Effect.annotateLogs({ timers: moved }))
  })
