import { Clock, Effect, Fiber, Layer, Schedule } from "effect"
import { TIMER_EVENT } from "./journeys/Apply.ts"
import { batcher } from "./ingest/Batcher.ts"
import { derivedId } from "./member/MemberState/Ids.ts"
import { Nats } from "./Nats.ts"
import { awaitDrained, interruptWithin } from "./Shutdown.ts"
import { subjectOf, Topology, TIMERS_CONSUMER } from "./Topology.ts"

interface TimerRequest {
  readonly memberId: string
  readonly properties: { readonly journeyId: string; readonly enrollmentId: string; readonly due: number; readonly kind?: string }
}

/**
 * Durable journey timers on JetStream. A wait publishes a timer request (in the same outbox as the
 * member's other effects); this loop holds each request un-acked, NAKing it with a delay until it is
 * due — JetStream redelivers it then, across restarts and engines — and when due publishes a
 * `journey.timer` event for the member with a deterministic id, then acks. The event goes through
 * ingestion like any other, so the step after the wait runs once, in the member's compare-and-set
 * write, whatever engine or restart fires it.
 */
export const TimersLive = Layer.scopedDiscard(
  Effect.gen(function* () {
    const { js, use } = yield* Nats
    const topology = yield* Topology
    const consumer = yield* use("get timers consumer", () => js.consumers.get(topology.timersStream, TIMERS_CONSUMER))
    const messages = yield* use("consume timers", () => consumer.consume({ max_messages: 2000, expires: 5_000 }))
    const next = batcher(messages, 1000, 10)
    const loop = Effect.gen(function* () {
      for (;;) {
        const batch = yield* use("next timers", next)
        if (batch === null) return
        const now = yield* Clock.currentTimeMillis
        yield* use("fire timers", () =>
          Promise.all(
            batch.map(async (msg) => {
              let request: TimerRequest
              try {
                request = JSON.parse(new TextDecoder().decode(msg.data)) as TimerRequest
              } catch {
                msg.term()
                return
              }
              const { journeyId, enrollmentId, due, kind } = request.properties
              if (due > now + 20) {
                msg.nak(due - now)
                return
              }
              const id = derivedId("timer-fired", enrollmentId, due)
              const event = {
                id,
                type: TIMER_EVENT,
                memberId: request.memberId,
                occurredAt: new Date(Math.min(due, now)).toISOString(),
                properties: { journeyId, enrollmentId, due, ...(kind === undefined ? {} : { kind }) },
                source: "memberflow"
              }
              await js.publish(subjectOf(topology, TIMER_EVENT), JSON.stringify(event), { msgID: id })
              msg.ack()
            })
          )
        )
      }
    })
    const fiber = yield* loop.pipe(
      Effect.tapErrorCause((cause) => Effect.logError("timers stopped", cause)),
      Effect.retry(Schedule.spaced("1 second")),
      Effect.fork
    )
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => messages.stop()).pipe(
        Effect.zipRight(Effect.logInfo("timers draining")),
        Effect.zipRight(awaitDrained(fiber)),
        Effect.zipRight(interruptWithin(fiber))
      )
    )
  })
)
