import { DeliverPolicy, type JsMsg } from "@nats-io/jetstream"
import { nuid } from "@nats-io/transport-node"
import { Context, Effect, Fiber, Layer, Schedule } from "effect"
import { TIMER_EVENT } from "./journeys/Apply.ts"
import { derivedId } from "./member/MemberState/Ids.ts"
import { timerFireLatenessSeconds, timersPending } from "./Metrics.ts"
import { Nats } from "./Nats.ts"
import { awaitDrained, interruptWithin } from "./Shutdown.ts"
import { subjectOf, Topology } from "./Topology.ts"
import { TimerHeap } from "./timers/TimerHeap.ts"

/** A timer request as it is stored (the body of a `journey.timer.request`). */
export interface TimerRequest {
  readonly memberId: string
  readonly properties: { readonly journeyId: string; readonly enrollmentId: string; readonly due: number; readonly kind?: string }
}

/**
 * A timer on its way to firing. In its heap (engine/timers/TimerHeap.ts) it is a due time, its
 * message's sequence in the timers stream (deleted once it fired) and this payload as bytes: a
 * million members in journeys are millions of timers, and as objects they were what made the full
 * collections of a 1,000,000-member engine long enough to make timers late.
 */
interface Timer {
  readonly due: number
  readonly partition: number
  readonly seq: number
  /** JSON `[memberId, journeyId, enrollmentId, kind]`; enrollmentId null for an entry timer's `entry:<member>:<journey>` (made again when it fires). */
  readonly payload: string
}

/** One read of kept timers, for the partitions taken together (its fiber once forked). */
interface Read {
  fiber: Fiber.RuntimeFiber<void, never> | null
}

const entryEnrollment = (memberId: string, journeyId: string) => `entry:${memberId}:${journeyId}`

const timerOf = (partition: number, seq: number, request: TimerRequest): Timer => {
  const { journeyId, enrollmentId, due, kind } = request.properties
  const entry = kind === "entry"
  const remade = entry && enrollmentId === entryEnrollment(request.memberId, journeyId)
  return { due, partition, seq, payload: JSON.stringify([request.memberId, journeyId, remade ? null : enrollmentId, entry ? "entry" : null]) }
}

export class Timers extends Context.Tag("memberflow/Timers")<
  Timers,
  {
    /** The subject a timer request of this partition is kept on: one message per timer id. */
    readonly subjectFor: (partition: number, timerId: string) => string
    /** This engine now owns the partitions: their kept timers are read in (one read for all) and will fire here. */
    readonly take: (partitions: ReadonlyArray<number>) => Effect.Effect<void>
    /** The partition is handed over or lost: its timers are forgotten here (kept in the stream). */
    readonly drop: (partition: number) => void
    /** A timer request just written (stream sequence `seq`) for a member of an owned partition. */
    readonly schedule: (partition: number, request: TimerRequest, seq: number, duplicate: boolean) => void
    /**
     * How many timers held here are due within the next `ms` (or overdue, not fired yet), counted up
     * to `atMost`: a burst coming or under way (engine/ingest/PassPacer.ts holds pass work back in one).
     */
    readonly dueWithin: (ms: number, atMost: number) => number
    /** Timers held in memory, and partitions whose timers are still being read in. */
    readonly status: () => { readonly pending: number; readonly loading: number }
  }
>() {}

const parse = (msg: JsMsg): TimerRequest | null => {
  try {
    const request = JSON.parse(new TextDecoder().decode(msg.data)) as TimerRequest
    return typeof request?.memberId === "string" && typeof request.properties?.due === "number" && typeof request.properties.enrollmentId === "string"
      ? request
      : null
  } catch {
    return null
  }
}

/**
 * Durable journey timers, kept by the owner of the member's partition.
 *
 * A wait (or a date/inactivity entry check) writes a timer request to the timers stream on
 * `<timersSubject>.<partition>.<timer id>` (one message per timer: the stream keeps one per subject),
 * from the same outbox as the member's other effects. The engine that owns the partition holds the
 * partition's timers in memory, in a heap by due time: it reads them in when it takes the partition
 * (engine/Ingest.ts) and adds each one its own members request. When a timer is due it publishes a
 * `journey.timer` event for the member with a deterministic id — ingestion applies it like any event,
 * in stream order, so a replay decides what the first run decided — and then deletes the request
 * from the stream. A crash between the two fires it again after the restart: same event id, applied
 * once (the member remembers the events it applied).
 *
 * Why not un-acked messages NAKed until due (the first design): NATS then holds every waiting
 * timer as a pending delivery and scans them all on each redelivery; with 1,000,000 timers pending it
 * took 1.25 cores of this 2-core machine to hand out a burst of 100,000 due in one minute
 * (BENCHMARKS.md). A heap in the owner costs a comparison.
 */
export const TimersLive = Layer.scoped(
  Timers,
  Effect.gen(function* () {
    const { connection, js, jsm, publisher, use } = yield* Nats
    const topology = yield* Topology
    const heaps = new Map<number, TimerHeap>()
    /** Per partition whose timers are being read in: its read (one for the partitions taken together). */
    const loading = new Map<number, Read>()
    /** Per owned partition: the timers stream's last sequence when it was taken (read in through it). */
    const readThrough = new Map<number, number>()
    let wakeUp: (() => void) | null = null
    const wake = () => {
      const w = wakeUp
      wakeUp = null
      w?.()
    }
    let stopping = false
    const heapOf = (partition: number) => {
      let heap = heaps.get(partition)
      if (heap === undefined) heaps.set(partition, (heap = new TimerHeap()))
      return heap
    }
    const deleteSubject = `$JS.API.STREAM.MSG.DELETE.${topology.timersStream}`
    // Where the deletes' answers go: one subscription that reads none of them.
    const deleteReplies = `_INBOX.${nuid.next()}`
    const answers = connection.subscribe(deleteReplies, { callback: () => undefined })
    yield* Effect.addFinalizer(() => Effect.sync(() => answers.unsubscribe()))
    const subjectFor = (partition: number, timerId: string) => `${topology.timersSubject}.${partition}.${timerId}`

    const add = (timer: Timer) => {
      const heap = heaps.get(timer.partition)
      if (heap === undefined) return
      const earliest = heap.peekDue()
      heap.push(timer.due, timer.seq, timer.payload)
      if (timer.due < earliest) wake()
    }

    /** The partition of a timer request's subject (`subjectFor`'s form); -1 for another subject. */
    const requestPrefix = `${topology.timersSubject}.`
    const partitionOfSubject = (subject: string): number => {
      const dot = subject.indexOf(".", requestPrefix.length)
      if (!subject.startsWith(requestPrefix) || dot === -1) return -1
      const partition = Number(subject.slice(requestPrefix.length, dot))
      return Number.isInteger(partition) ? partition : -1
    }

    /**
     * Reads the kept timers of the partitions taken together (`read` is their entry in `loading`),
     * through stream sequence `last`.
     *
     * One partition is read through a consumer filtered on its subjects. Several are read in one pass
     * over the whole stream, unfiltered: the NATS server (2.9) makes a filtered consumer by counting
     * its messages in the whole stream, and answers no publish of any stream meanwhile. With
     * 1,800,000 timers kept, each of sixteen partitions read so took 1.1–2.3 s and held every publish
     * up for 460–860 ms, 21 s in all at a start; one unfiltered read took 8.5 s and held no publish
     * up for more than 50 ms (`npm run bench:nats`, BENCHMARKS.md).
     */
    const load = (partitions: ReadonlyArray<number>, last: number, read: Read) =>
      use("read timers", async () => {
        const counts = new Map(partitions.map((partition) => [partition, 0]))
        if (last === 0) return counts
        const ours = (partition: number) => counts.has(partition) && heaps.has(partition) && loading.get(partition) === read
        const consumer = await js.consumers.get(topology.timersStream, {
          ...(partitions.length === 1 ? { filter_subjects: subjectFor(partitions[0]!, ">") } : {}),
          deliver_policy: DeliverPolicy.All
        })
        if ((await consumer.info(true)).num_pending === 0) return counts
        const messages = await consumer.consume({ max_messages: 5000 })
        try {
          for await (const msg of messages) {
            if (!partitions.some(ours)) break
            const partition = partitionOfSubject(msg.subject)
            if (msg.seq <= last && ours(partition)) {
              const request = parse(msg)
              if (request !== null) {
                add(timerOf(partition, msg.seq, request))
                counts.set(partition, counts.get(partition)! + 1)
              }
            }
            if (msg.seq >= last || msg.info.pending === 0) break
          }
        } finally {
          messages.stop()
        }
        return counts
      }).pipe(
        Effect.tap((counts) => Effect.forEach(counts, ([partition, timers]) => Effect.logInfo("timers read").pipe(Effect.annotateLogs({ partition, timers })), { discard: true })),
        Effect.tapError((error) => Effect.logWarning("reading timers failed, retrying").pipe(Effect.annotateLogs({ partitions: partitions.join(","), error: error.message }))),
        Effect.retry(Schedule.exponential("200 millis").pipe(Schedule.union(Schedule.spaced("5 seconds")))),
        Effect.asVoid,
        Effect.orDie
      )

    const take = (partitions: ReadonlyArray<number>) =>
      Effect.gen(function* () {
        const taken = partitions.filter((partition) => !heaps.has(partition))
        if (taken.length === 0) return
        for (const partition of taken) heapOf(partition)
        // What is in the stream now is read in; what comes later is scheduled as it is written.
        const last = yield* use("timers stream info", () => jsm.streams.info(topology.timersStream)).pipe(
          Effect.map((info) => info.state.last_seq),
          Effect.retry(Schedule.exponential("100 millis").pipe(Schedule.union(Schedule.spaced("2 seconds")))),
          Effect.orDie
        )
        for (const partition of taken) readThrough.set(partition, last)
        const read: Read = { fiber: null }
        for (const partition of taken) loading.set(partition, read)
        read.fiber = yield* load(taken, last, read).pipe(
          Effect.ensuring(
            Effect.sync(() => {
              for (const partition of taken) if (loading.get(partition) === read) loading.delete(partition)
            })
          ),
          Effect.forkDaemon
        )
      })

    const drop = (partition: number) => {
      heaps.delete(partition)
      readThrough.delete(partition)
      const read = loading.get(partition)
      loading.delete(partition)
      // A read stops once none of its partitions is left (it checks as it goes); interrupted now when
      // it was this partition's alone.
      if (read?.fiber != null && ![...loading.values()].includes(read)) Effect.runFork(Fiber.interrupt(read.fiber))
    }

    /**
     * A request written again (a replay after a restart or a takeover) that was in the stream when
     * the partition was taken is in the heap already, or fired and was deleted: not again.
     */
    const schedule = (partition: number, request: TimerRequest, seq: number, duplicate: boolean) => {
      if (duplicate && seq <= (readThrough.get(partition) ?? 0)) return
      add(timerOf(partition, seq, request))
    }

    /** Publishes the `journey.timer` event of a due timer, then deletes its request. */
    const fire = async ({ due, seq, payload }: Timer, now: number) => {
      const [memberId, journeyId, kept, kind] = JSON.parse(payload) as [string, string, string | null, "entry" | null]
      const enrollmentId = kept ?? entryEnrollment(memberId, journeyId)
      const id = derivedId("timer-fired", enrollmentId, due)
      const event = {
        id,
        type: TIMER_EVENT,
        memberId,
        occurredAt: new Date(Math.min(due, now)).toISOString(),
        properties: { journeyId, enrollmentId, due, ...(kind === null ? {} : { kind }) },
        source: "memberflow"
      }
      await publisher.publish(subjectOf(topology, TIMER_EVENT), JSON.stringify(event), { msgID: id })
      timerFireLatenessSeconds.unsafeUpdate(Math.max(0, Date.now() - due) / 1000, [])
      // The request goes: sent without waiting for the answer (a request of its own cost the engine's
      // thread as much as the firing). A delete that did not happen leaves the request to fire again
      // after a restart, and its member ignores what it already applied.
      connection.publish(deleteSubject, `{"seq":${seq},"no_erase":true}`, { reply: deleteReplies })
    }

    const loop = Effect.gen(function* () {
      while (!stopping) {
        const now = Date.now()
        const due: Array<Timer> = []
        let next = Infinity
        for (const [partition, heap] of heaps) {
          // 20 ms early at most: ingestion applies a fired timer no earlier than its due time.
          while (due.length < 2000 && heap.peekDue() <= now + 20) {
            const { due: at, seq, payload } = heap.pop()!
            due.push({ due: at, partition, seq, payload })
          }
          next = Math.min(next, heap.peekDue())
        }
        timersPending.unsafeUpdate(pendingCount(), [])
        if (due.length === 0) {
          // At most 100 rounds a second: timers due within 10 ms of each other fire together.
          const ms = Math.max(10, Math.min(1000, next - now - 20))
          yield* Effect.promise(() => new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, ms)
            wakeUp = () => {
              clearTimeout(timer)
              resolve()
            }
          }))
          continue
        }
        yield* use("fire timers", () => Promise.all(due.map((timer) => fire(timer, now)))).pipe(
          Effect.tapError((error) =>
            Effect.sync(() => {
              // Not published: back into their heaps (if still ours), tried again on the next round.
              for (const timer of due) add(timer)
            }).pipe(Effect.zipRight(Effect.logWarning("firing timers failed, retrying").pipe(Effect.annotateLogs({ error: error.message }))))
          ),
          Effect.catchAll(() => Effect.sleep("500 millis"))
        )
      }
    })

    const pendingCount = () => {
      let n = 0
      for (const heap of heaps.values()) n += heap.size
      return n
    }

    const fiber = yield* loop.pipe(
      Effect.tapErrorCause((cause) => Effect.logError("timers stopped", cause)),
      Effect.retry(Schedule.spaced("1 second")),
      Effect.forkDaemon
    )
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        stopping = true
        wake()
      }).pipe(
        Effect.zipRight(Effect.logInfo("timers draining")),
        Effect.zipRight(awaitDrained(fiber)),
        Effect.zipRight(interruptWithin(fiber)),
        Effect.zipRight(Effect.sync(() => [...loading.keys()].forEach(drop)))
      )
    )
    const dueWithin = (ms: number, atMost: number) => {
      const by = Date.now() + ms
      let counted = 0
      for (const heap of heaps.values()) {
        if (counted >= atMost) break
        counted += heap.countDueBy(by, atMost - counted)
      }
      return counted
    }

    return { subjectFor, take, drop, schedule, dueWithin, status: () => ({ pending: pendingCount(), loading: loading.size }) }
  })
)
