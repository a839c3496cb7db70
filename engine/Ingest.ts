import type { KV } from "@nats-io/kv"
import { headers, type Subscription } from "@nats-io/transport-node"
import { Clock, Context, Effect, Fiber, Layer, Metric, Schedule } from "effect"
import { Clickhouse } from "./Clickhouse.ts"
import { type AppliedBatch, BatchBuilder, emptyBatch, eventPayload } from "./ingest/ApplyBatch.ts"
import { nextCheckpoint, phaseAfter } from "./ingest/CheckpointChoice.ts"
import { type Pace, paced, unpaced } from "./ingest/CheckpointPace.ts"
import type { Delivered, DeliveredBatch } from "./ingest/Delivered.ts"
import { EngineId } from "./ingest/EngineIdentity.ts"
import { InOrder } from "./ingest/InOrder.ts"
import { type EventReader, type EventReaders, threadReaders, workerReaders } from "./ingest/EventReader.ts"
import { Leases, partitionCount } from "./ingest/Leases.ts"
import { partitionOf, partitionOfSequence } from "./ingest/Partition.ts"
import { PassPacer } from "./ingest/PassPacer.ts"
import { ReadyWatch } from "./ingest/ReadyWatch.ts"
import { isPassMarker, type Pass, passOf } from "./ingest/Passes.ts"
import { recordBatch, retryForever } from "./ingest/RecordBatch.ts"
import { makeRowSink } from "./ingest/RowSink.ts"
import { type JourneySet, runJourneys } from "./journeys/Apply.ts"
import { JourneyRuntime } from "./JourneyRuntime.ts"
import { type ApplyResult, type MemberContext, type MemberState, refresh } from "./member/MemberState.ts"
import { memberSubject, REPLAYING_HEADER, respondWithState } from "./MemberLookup.ts"
import { MemberStore } from "./MemberStore.ts"
import * as Metrics from "./Metrics.ts"
import { Nats, NatsSettingsConfig, plainSettings } from "./Nats.ts"
import { ProgramRuntime } from "./ProgramRuntime.ts"
import { awaitDrained, drainTimeLeft, interruptWithin } from "./Shutdown.ts"
import { Timers } from "./Timers.ts"
import { migrateLegacyTimers } from "./timers/Legacy.ts"
import { Topology } from "./Topology.ts"
import * as Settings from "./Settings.ts"

export { retryForever } from "./ingest/RecordBatch.ts"

/**
 * Batches whose stage two (publishes acknowledged, rows handed to the sink) may be under way while
 * the next is applied. With one, the loop waits for the previous batch's acknowledgements after
 * applying each batch: after a history import, when nearly every event also publishes a derived
 * event, JetStream took 95–251 ms to acknowledge a batch's, and the loop sat idle 150–665 ms of a
 * second while thousands of events waited (BENCHMARKS.md, 2026-12-07, early morning).
 *
 * Two at once takes that wait away, but has not shown a gain where it counts (BENCHMARKS.md,
 * 2026-12-07, afternoon). On a machine held to 1.4 cores (bench/slow-machine.sh) it had fewer paced
 * events over 1 s in four alternating pairs of five. On this machine at bench:ingest's own paced
 * rate (half the sustained one) it had more: 0–8.9% over 1 s in four runs (p99 under 1 s in two),
 * against 0–0.9% in five runs with one (p99 under 1 s in all). Earlier, with two,
 * test/engine/Timers.test.ts timed out beside PassOrder and Durability in three runs of three (not
 * reproduced since; cause not found). So one.
 */
const WRITES_IN_FLIGHT = 1

/**
 * How long every batch read must have been a full one before the engine counts itself in a backlog
 * and stops pacing its checkpoints (`checkpoint`): longer than the catching up after a pause.
 */
const BACKLOG_MS = 5_000

/** Resumes after the I/O callbacks waiting now have run (`setImmediate`: the loop's check phase, after its poll). */
const yieldToEventLoop = Effect.async<void>((resume) => {
  const handle = setImmediate(() => resume(Effect.void))
  return Effect.sync(() => clearImmediate(handle))
})

/**
 * Ingestion: the event stream into member state, rows and derived events.
 *
 * Members are split into partitions (engine/ingest/Partition.ts), each owned by one engine at a time
 * through a lease (engine/ingest/Leases.ts); engines share the partitions evenly and take over those
 * of an engine that stops. Every engine reads the whole stream in order (an ordered consumer, no
 * per-message acks) from the lowest position of the partitions it owns, and handles only the events
 * of its own members:
 *
 * 1. stage one (engine/ingest/ApplyBatch.ts): decode, apply each event to its member in memory with
 *    the event's arrival as `now`, run the journeys;
 * 2. stage two (engine/ingest/RecordBatch.ts): rows to ClickHouse, derived events, timers and
 *    messages to JetStream, refusals to the dead-letter stream — while stage one takes the next batches (`WRITES_IN_FLIGHT` batches are written at once at most);
 * 3. every `MEMBERFLOW_CHECKPOINT_MS`, per partition: the states changed since the last checkpoint go
 *    to the members bucket (compare-and-set), then the partition's position. That position is this
 *    design's acknowledgement: a restart, or the next owner, reads on from it, and since applying is
 *    deterministic and a state remembers the events it applied, a replay ends where the first run did
 *    and writes only what the first run wrote.
 */

export interface IngestStatus {
  readonly engineId: string
  readonly partitions: number
  /** `replaying`: events the partition's states are behind what the stream held when it was taken (0 once caught up). */
  readonly owned: ReadonlyArray<{ readonly partition: number; readonly applied: number; readonly processed: number; readonly committed: number; readonly replaying: number }>
  /** Messages in the stream after the lowest position this engine has handled (0 when it owns nothing, -1 when NATS did not answer). */
  readonly lag: number
}

export class Ingest extends Context.Tag("memberflow/Ingest")<
  Ingest,
  {
    /** Fails when ingestion stops for good, so that the process exits and a supervisor restarts it. */
    readonly done: Effect.Effect<void, unknown>
    readonly status: Effect.Effect<IngestStatus>
  }
>() {}

interface Owned {
  /** Every message through this stream sequence is applied to the partition's states in memory. */
  applied: number
  /** Every message through this stream sequence has its effects written (events published, rows in ClickHouse). */
  processed: number
  /** Through this sequence every member of the partition is in KV (the position in the lease). */
  committed: number
  /**
   * The stream's last sequence when this engine took the partition: until `applied` reaches it, the
   * partition is being replayed, and its states here (or in KV) may be older than what the stream
   * says of them, so a lookup is told to wait instead of answered.
   */
  replayTo: number
  lastCheckpoint: number
  flushing: Fiber.RuntimeFiber<void, unknown> | null
  /** How fast the checkpoint being written goes (engine/ingest/CheckpointPace.ts); hurried by a hand-over, the partition's loss or a backlog. */
  pace: Pace
  releasing: boolean
  subscription: Subscription
}

/** A pass started at its marker and not over yet (engine/Ingest.ts, `startPass`). */
interface PendingPass {
  readonly pass: Pass
  /** The marker's stream sequence: a checkpoint of a partition under the pass commits the position before it. */
  readonly seq: number
  /** The marker's arrival: the pass's `now` for every member. */
  readonly now: number
  readonly ctx: MemberContext
  readonly set: JourneySet
  /** The partitions it is due for; one handed over or lost leaves it. */
  readonly partitions: Set<number>
  readonly started: number
  /** Members passed over (by the slices, or first thing before an event of theirs after the marker). */
  readonly passed: Set<string>
  members: number
  /** Every member to pass over, once listed, partition after partition; `offset` is where the slices are. */
  queue: ReadonlyArray<readonly [string, number]> | null
  offset: number
  /** Where each partition's members end in `queue`, in its order; `next` is the first not yet reached by the slices. */
  ends: ReadonlyArray<{ readonly partition: number; readonly end: number }>
  next: number
  readonly change: (state: MemberState) => ApplyResult
}

type Item =
  | { readonly kind: "event"; readonly item: Delivered; readonly partition: number }
  | { readonly kind: "pass"; readonly seq: number; readonly pass: Pass; readonly arrival: number }

export const IngestLive = Layer.scoped(
  Ingest,
  Effect.gen(function* () {
    const { js, jsm, kvm, connection, use } = yield* Nats
    const topology = yield* Topology
    const store = yield* MemberStore
    const runtime = yield* ProgramRuntime
    const journeys = yield* JourneyRuntime
    const batchSize = yield* Settings.batchSize
    const batchWindow = yield* Settings.batchWindowMs
    const maxBytes = yield* Settings.maxEventBytes
    const wanted = yield* Settings.partitions
    const leaseMs = yield* Settings.leaseMs
    const checkpointMs = yield* Settings.checkpointMs
    const checkpointDirty = yield* Settings.checkpointMembers
    const checkpointSpread = yield* Settings.checkpointSpread
    const sinkRows = yield* Settings.pendingRows
    const passShare = yield* Settings.passShare
    const timerBurst = yield* Settings.passTimerBurst
    const meta: KV = yield* use("open meta bucket", () => kvm.create(topology.metaBucket, { history: 5 }))
    const count = yield* use("partition count", () => partitionCount(meta, wanted))
    const engineId = yield* EngineId
    const leases = new Leases(meta, engineId, count, leaseMs)
    const timers = yield* Timers
    // A burst of timers is `timerBurst` a second due over the next two seconds (or overdue): pass
    // work gets a tenth of its share meanwhile (engine/ingest/PassPacer.ts).
    const burstCount = Math.ceil(timerBurst * 2)
    const pacer = new PassPacer(passShare, 200, Date.now, {
      held: () => burstCount > 0 && timers.dueWithin(2000, burstCount) >= burstCount,
      onHeld: (held) => {
        Metrics.passHeld.unsafeUpdate(held ? 1 : 0, [])
        if (held) Metrics.passHeldTotal.unsafeUpdate(1, [])
      }
    })
    // In /metrics from the start, as 0.
    Metrics.passHeld.unsafeUpdate(0, [])
    Metrics.passHeldTotal.unsafeUpdate(0, [])
    yield* migrateLegacyTimers(count)
    const context = yield* Effect.context<Nats | Topology | Clickhouse | Timers>()
    const sink = yield* makeRowSink(yield* Clickhouse, sinkRows, yield* Settings.groupCommitMs)
    const readerOptions = { stream: topology.stream, subjectPrefix: topology.subjectPrefix, maxBytes, batchSize, batchWindow }
    const readers: EventReaders = (yield* Settings.ReaderKindConfig) === "thread"
      ? threadReaders(js, readerOptions)
      : yield* workerReaders({ ...readerOptions, nats: plainSettings(yield* NatsSettingsConfig) })
    /** Every member of the partitions (MemberStore `membersOf`), its listing paced as pass work. */
    const membersOf = (partitions: Iterable<number>) =>
      store.membersOf(new Set(partitions), (memberId) => partitionOf(memberId, count), (work) => pacer.paced(work))

    const owned = new Map<number, Owned>()
    /** The passes under way (markers reached), oldest first, worked through between batches; see `startPass`. */
    const pending: Array<PendingPass> = []
    /** Passes whose rows are all written, with how long they took, to be logged. */
    const passesOver: Array<{ readonly passing: PendingPass; readonly ms: number }> = []
    /**
     * The position a checkpoint of the partition may commit: what it has applied, or, with a pass
     * under way for it, the position just before the oldest such pass's marker. Its states are
     * written all the same; those passed over say so (`MemberState.passed`), and a replay from that
     * position meets the marker again and passes over only the members that do not.
     */
    const committable = (partition: number, part: Owned): number => {
      let position = part.applied
      for (const passing of pending) if (passing.partitions.has(partition)) position = Math.min(position, passing.seq - 1)
      return position
    }
    const control = { gained: [] as Array<{ partition: number; position: number }>, lost: [] as Array<number>, surplus: [] as Array<number> }
    let wakeUp: (() => void) | null = null
    const wake = () => {
      const w = wakeUp
      wakeUp = null
      w?.()
    }
    let stopping = false
    let reader: EventReader | null = null
    /** The next sequence the reader delivers. */
    let readerNext = 1
    let restart = false
    /** Stage two of the batches whose effects are being written, oldest first (at most WRITES_IN_FLIGHT). */
    let writing: Array<Fiber.RuntimeFiber<void, unknown>> = []
    /** Each batch's `written` (and a pass slice's `over`) in the order the batches were applied. */
    const inOrder = new InOrder()
    let lastRound = Date.now()
    /** When the last checkpoint started (engine/ingest/CheckpointChoice.ts, `minGapMs`). */
    let lastCheckpointStart = Number.NEGATIVE_INFINITY
    /** Since when every batch read was a full one (`MEMBERFLOW_BATCH_SIZE` messages), or null. */
    let fullSince: number | null = null
    /** Full reads for `BACKLOG_MS` or longer: a backlog, worked through with no checkpoint paced. */
    let catchingUp = false

    /** The event stream's last sequence now. */
    const streamEnd = use("stream info", () => jsm.streams.info(topology.stream)).pipe(Effect.map((info) => info.state.last_seq))
    /** Events a partition's states are still behind what the stream held when this engine took it (0 once caught up). */
    const replayBehind = (part: Owned): number => Math.max(0, part.replayTo - part.applied)

    // Another process asks for a member's current state (engine/MemberLookup.ts).
    // While the partition is replayed (taken after a crash, or handed over before a pass's marker),
    // the answer says how far behind it is, and the asker waits (MemberLookup): what the states say
    // meanwhile is older than the stream, and a consent check or an operator would act on it.
    const subscribe = (partition: number) =>
      connection.subscribe(memberSubject(topology, partition), {
        callback: (error, msg) => {
          if (error !== null) return
          const part = owned.get(partition)
          const behind = part === undefined ? 0 : replayBehind(part)
          if (behind > 0) {
            const replaying = headers()
            replaying.set(REPLAYING_HEADER, String(behind))
            msg.respond("", { headers: replaying })
            return
          }
          respondWithState(msg, store.answer(msg.string()), store.partBytes)
        }
      })

    /** Waits for every batch whose effects are being written: a barrier before anything positional. */
    const joinPrevious = Effect.suspend(() => {
      const fibers = writing
      writing = []
      return Effect.forEach(fibers, Fiber.join, { discard: true })
    })

    /**
     * A checkpoint's barrier, between two batches (the previous one joined): the partition's dirty
     * states as they are now, the position it may commit (`committable`: before the marker of a pass
     * under way), and a mark in the row sink behind every row offered so far — what the states hold
     * includes the batches through the position, and, under a pass, its slices and events after its
     * marker too.
     */
    const barrier = (partition: number, part: Owned) =>
      Effect.gen(function* () {
        const snap = store.snapshot(partition)
        const position = committable(partition, part)
        const rowsWritten = yield* sink.mark
        return { snap, position, rowsWritten }
      })
    type Barrier = Effect.Effect.Success<ReturnType<typeof barrier>>

    const flushAndCommit = (partition: number, part: Owned, { snap, position, rowsWritten }: Barrier, pace: Pace = unpaced) =>
      Effect.gen(function* () {
        // The rows of everything the states hold go in before the states: a state in KV says its
        // events are applied, and a replay after a crash skips them, rows and all. (States written
        // first lost the rows of the last batches when the engine died between the two.) Waited for
        // by the mark, not for the sink to be empty: under a steady flow that waited until a lull —
        // tens of seconds in the 1,000,000-event benchmark, with the checkpoint's states held
        // meanwhile and the partition's replay growing.
        yield* rowsWritten
        const conflicts = yield* store.flush(snap, pace)
        if (conflicts > 0) {
          yield* Effect.logWarning("another engine wrote members of this partition: giving it up").pipe(Effect.annotateLogs({ partition, conflicts }))
          control.lost.push(partition)
          wake()
          return false
        }
        const kept = yield* use("commit position", () => leases.commit(partition, position)).pipe(Effect.retry(retryForever))
        if (!kept) {
          control.lost.push(partition)
          wake()
          return false
        }
        part.committed = Math.max(part.committed, position)
        return true
      })

    /**
     * Starts a checkpoint of one partition: its `barrier` now, written in the background, its states
     * spread over `MEMBERFLOW_CHECKPOINT_SPREAD` of the partition's turn, unless it is pressed (too
     * many changed states waiting) or the engine is working through a backlog. Spreading is for the
     * live events' latency; in a backlog they are late already, and four runs of bench:ingest
     * drained it 5–7% slower with every checkpoint paced (BENCHMARKS.md, 2026-12-07, midday).
     */
    const checkpoint = (partition: number, part: Owned, pressed: boolean) =>
      Effect.gen(function* () {
        const at = yield* barrier(partition, part)
        const started = Date.now()
        const pace = pressed || catchingUp ? unpaced : paced(at.snap.states.length, (checkpointMs / count) * (checkpointSpread / 100))
        part.pace = pace
        part.flushing = yield* flushAndCommit(partition, part, at, pace).pipe(
          Effect.tap((done) =>
            Effect.sync(() => {
              if (!done) return
              Metrics.checkpointSeconds.unsafeUpdate((Date.now() - started) / 1000, [])
              Metrics.checkpointStates.unsafeUpdate(at.snap.states.length, [])
            })
          ),
          Effect.asVoid,
          Effect.ensuring(Effect.sync(() => (part.flushing = null))),
          Effect.forkDaemon
        )
      })

    const forget = (partition: number) => {
      const part = owned.get(partition)
      if (part === undefined) return
      owned.delete(partition)
      // A spread checkpoint of it still under way ends at once: lost, the partition may soon have
      // another owner, whose compare-and-sets a late write of ours would only get in the way of.
      part.pace.hurry()
      // Its events need not be handed on any more.
      reader?.keep(new Set(owned.keys()))
      for (const passing of pending) passing.partitions.delete(partition)
      part.subscription.unsubscribe()
      store.dropPartition(partition)
      timers.drop(partition)
    }

    /** Hands a partition over: everything of it written and committed, then the lease let go. */
    const release = (partition: number, part: Owned) =>
      Effect.gen(function* () {
        part.releasing = true
        yield* joinPrevious
        part.pace.hurry()
        if (part.flushing !== null) yield* Fiber.await(part.flushing)
        if (!owned.has(partition)) return
        // As a checkpoint. With a pass under way, the position is before its marker (`committable`):
        // the next owner replays the marker and what followed it, and passes over only the members
        // whose states do not say they are past it.
        const at = yield* barrier(partition, part)
        const done = yield* flushAndCommit(partition, part, at)
        if (done) yield* use("release partition", () => leases.release(partition, at.position)).pipe(Effect.ignore)
        forget(partition)
        yield* Effect.logInfo(at.position < part.applied ? "partition handed over before the marker of a pass under way" : "partition handed over").pipe(
          Effect.annotateLogs({ partition, position: at.position })
        )
      })

    /** Between batches: take in what the lease rounds decided, and start the checkpoints due. */
    const between = Effect.gen(function* () {
      for (const { passing, ms } of passesOver.splice(0)) {
        const { pass } = passing
        yield* Effect.logInfo(pass.kind === "sweep" ? "sweep done" : "broadcast done").pipe(
          Effect.annotateLogs({ members: passing.members, ms, ...(pass.kind === "tick" ? { journey: pass.journeyId, tick: new Date(pass.tick).toISOString() } : {}) })
        )
      }
      for (const partition of control.lost.splice(0)) {
        if (!owned.has(partition)) continue
        yield* joinPrevious
        leases.forget(partition)
        forget(partition)
        yield* Effect.logWarning("partition lost to another engine").pipe(Effect.annotateLogs({ partition }))
      }
      for (const partition of control.surplus.splice(0)) {
        const part = owned.get(partition)
        if (part !== undefined && !part.releasing) yield* release(partition, part)
      }
      const gained = control.gained.splice(0).filter(({ partition }) => !owned.has(partition))
      // What the stream holds now is what the states of the partitions taken must catch up with
      // before their lookups are answered: read once for all of them.
      const end = gained.length === 0 ? null : yield* streamEnd.pipe(
        Effect.tapError((error) => Effect.logWarning("reading the stream's end for the partitions taken failed: their lookups are answered at once").pipe(Effect.annotateLogs({ error: error.message }))),
        Effect.orElseSucceed(() => null)
      )
      for (const { partition, position } of gained) {
        if (owned.has(partition)) continue
        const now = yield* Clock.currentTimeMillis
        // Checkpoints staggered over the interval by partition: one partition's states at a time,
        // not every member of the engine at once every interval (a pause that made events late).
        const stagger = Math.round((checkpointMs * partition) / count)
        const replayTo = end ?? position
        owned.set(partition, { applied: position, processed: position, committed: position, replayTo, lastCheckpoint: now - stagger, flushing: null, pace: unpaced, releasing: false, subscription: subscribe(partition) })
        // The reader hands on only the owned partitions' events (engine/ingest/Delivered.ts): this
        // one's may have been left out already, so it reads again from the lowest position.
        restart = true
        yield* Effect.logInfo("partition taken").pipe(Effect.annotateLogs({ partition, position, replayTo }))
      }
      // Their timers in one read (engine/Timers.ts): before any event of theirs is applied.
      if (gained.length > 0) yield* timers.take(gained.map(({ partition }) => partition))
      // Their members listed now, in the background and paced, so that the passes to come find them
      // indexed (MemberStore `membersOf`): a sweep then goes straight to its slices.
      if (gained.length > 0) {
        yield* membersOf(gained.map(({ partition }) => partition)).pipe(
          Effect.tapError((error) => Effect.logWarning("listing the members of the partitions taken failed: the next pass lists them").pipe(Effect.annotateLogs({ error: error.message }))),
          Effect.ignore,
          Effect.forkDaemon
        )
      }
      // One checkpoint in flight at a time, the partition waiting longest first (engine/ingest/CheckpointChoice.ts).
      const now = yield* Clock.currentTimeMillis
      const candidates = [...owned].map(([partition, part]) => ({
        partition,
        flushing: part.flushing !== null,
        releasing: part.releasing,
        dirty: store.dirtyCount(partition),
        behind: committable(partition, part) > part.committed,
        lastCheckpoint: part.lastCheckpoint
      }))
      const next = nextCheckpoint(candidates, now, { intervalMs: checkpointMs, dirtyPerPartition: checkpointDirty / count, minGapMs: checkpointMs / count / 2 }, lastCheckpointStart)
      const part = next === null ? undefined : owned.get(next.partition)
      if (next !== null && part !== undefined) {
        lastCheckpointStart = now
        part.lastCheckpoint = phaseAfter(part.lastCheckpoint, now, checkpointMs)
        yield* joinPrevious
        yield* checkpoint(next.partition, part, next.dirty >= checkpointDirty / count)
      }
    })

    const eligible = () => {
      const parts = new Map<number, Owned>()
      for (const [partition, part] of owned) if (!part.releasing) parts.set(partition, part)
      return parts
    }

    /** Once a batch's effects are all written: its positions move, and it counts. */
    const written = (work: AppliedBatch, parts: ReadonlyMap<number, Owned>, through: number, started: number) => () => {
      for (const part of parts.values()) part.processed = Math.max(part.processed, through)
      const done = Date.now()
      for (const arrival of work.arrivals) Metrics.eventLatencySeconds.unsafeUpdate((done - arrival) / 1000, [])
      Metrics.eventsReceived.unsafeUpdate(work.arrivals.length, [])
      Metrics.eventsApplied.unsafeUpdate(work.applied, [])
      Metrics.eventsDuplicate.unsafeUpdate(work.duplicates, [])
      Metrics.eventsRejected.unsafeUpdate(work.rejected.length, [])
      Metrics.derivedPublished.unsafeUpdate(work.outgoing.length, [])
      Metrics.batchSeconds.unsafeUpdate((done - started) / 1000, [])
    }

    /** Stage two: publishes, and rows handed to the sink. */
    const record = (work: AppliedBatch, parts: ReadonlyMap<number, Owned>, through: number, started: number) =>
      recordBatch(work, sink, inOrder.after(written(work, parts, through, started)), count).pipe(Effect.provide(context))

    /**
     * A pass over every member of the owned partitions (a marker reached in the stream), worked
     * through without holding up the events behind it.
     *
     * It used to run at the marker, all of it before the next event: with 1,000,000 members that
     * was about a minute every hour in which no event was applied (BENCHMARKS.md). Now the marker
     * starts it: its members are listed in the background, and between batches the loop passes over
     * 1,000 of them at a time; while events flow, the listing and the slices get at most
     * `MEMBERFLOW_PASS_SHARE` of the thread (engine/ingest/PassPacer.ts). Each member still sees
     * exactly what it saw before — its events before the marker, then the pass with the marker's
     * arrival as `now`, then its events after — because
     * an event after the marker for a member not passed over yet passes over that member first
     * (`apply`). So a replay decides what the first run decided. While a pass is under way for a
     * partition its checkpoints go on, but commit the position before the marker, and the states
     * written say which members are past it (`committable`, `MemberState.passed`); a partition
     * handed over meanwhile is handed over the same way (`release`). The slices go partition
     * after partition, and a partition leaves the pass once its own members are passed over
     * (`passSlice`): its checkpoints do not wait for the rest of the pass.
     */
    const startPass = (pass: Pass, seq: number, now: number, parts: ReadonlyMap<number, Owned>) =>
      Effect.gen(function* () {
        const set = yield* journeys.current
        const ctx0 = yield* runtime.context
        const ctx = pass.kind === "sweep" && pass.cutpoints !== null && ctx0.program.rfm.scores === "quintiles" ? { ...ctx0, cutpoints: pass.cutpoints } : ctx0
        const partitions = new Set([...parts].filter(([, part]) => seq > part.applied).map(([partition]) => partition))
        if (partitions.size === 0) return
        const passing: PendingPass = {
          pass,
          seq,
          now,
          ctx,
          set,
          partitions,
          started: Date.now(),
          passed: new Set(),
          members: 0,
          queue: null,
          offset: 0,
          ends: [],
          next: 0,
          // A member whose written state says it was passed over at this marker (a replay of it) is left as it is.
          change: (state) =>
            (state.passed ?? 0) >= seq
              ? { state, changed: false, applied: [], duplicates: [], derived: [] }
              : pass.kind === "sweep"
              ? runJourneys(refresh(state, ctx, now, { owned: true }), set, ctx, now, { owned: true })
              : runJourneys({ state, changed: false, applied: [], duplicates: [], derived: [] }, set, ctx, now, { owned: true }, [
                  { journeyId: pass.journeyId, tick: pass.tick }
                ])
        }
        pending.push(passing)
        Metrics.passesUnderWay.unsafeUpdate(pending.length, [])
        // Listed as of now: every member in KV, and every one in the cache (changed, not written yet).
        yield* membersOf(partitions).pipe(
          Effect.tapError((error) => Effect.logWarning("listing the members for a pass failed, retrying").pipe(Effect.annotateLogs({ error: error.message }))),
          Effect.retry(retryForever),
          Effect.tap((byPartition) =>
            Effect.sync(() => {
              const queue: Array<readonly [string, number]> = []
              const ends: Array<{ partition: number; end: number }> = []
              for (const [partition, ids] of byPartition) {
                for (const memberId of ids) queue.push([memberId, partition])
                ends.push({ partition, end: queue.length })
              }
              passing.queue = queue
              passing.ends = ends
              wake()
            }).pipe(
              Effect.zipRight(
                Effect.suspend(() =>
                  Effect.logInfo("pass under way").pipe(
                    Effect.annotateLogs({ kind: pass.kind, members: passing.queue?.length ?? 0, listedMs: Date.now() - passing.started })
                  )
                )
              )
            )
          ),
          Effect.forkDaemon
        )
      })

    /**
     * Passes over one member (in `builder`, before anything else of it there): a member existed
     * before the marker when its state is more than the empty one, and only then is it changed.
     */
    const passOver = (builder: BatchBuilder, passing: PendingPass, memberId: string, partition: number) => {
      passing.passed.add(memberId)
      if (!store.known(memberId)) return
      builder.change(memberId, partition, passing.now, passing.change)
      builder.stamp(memberId, partition, passing.now, passing.seq)
    }

    /** Every member of the pass is passed over (or in the last slice, being written). */
    const passedEveryone = (passing: PendingPass) => passing.queue !== null && passing.offset >= passing.queue.length

    /**
     * The pass the slices work on: the oldest with members to go. A later pass waits for the
     * earlier ones to have passed over every member, so that each member sees them in the stream's order.
     */
    const slicing = () => pending.find((passing) => !passedEveryone(passing)) ?? null

    /**
     * Passes over the next members of the oldest pass under way, or ends it: 1,000 of them while no
     * events flow, and while they do as many as the pacer says take about 25 ms. Gives how many it took.
     */
    const passSlice = Effect.gen(function* () {
      const passing = slicing()
      if (passing === null || passing.queue === null) return 0
      const slice: Array<readonly [string, number]> = []
      // 1,000 members while no events flow; while they do, as many as take about 25 ms (engine/ingest/PassPacer.ts).
      const size = pacer.items(1000)
      while (slice.length < size && passing.offset < passing.queue.length) {
        const item = passing.queue[passing.offset++]!
        if (passing.partitions.has(item[1]) && !passing.passed.has(item[0])) slice.push(item)
      }
      // The partitions whose last member this slice reached: every member of theirs is passed over
      // once its rows are written (`over` below).
      const finished: Array<number> = []
      while (passing.next < passing.ends.length && passing.ends[passing.next]!.end <= passing.offset) finished.push(passing.ends[passing.next++]!.partition)
      // An empty slice only at the end (every member left was passed over already): written all the
      // same, to end the pass.
      let work: AppliedBatch = { ...emptyBatch }
      if (slice.length > 0) {
        const readIn = yield* store.load(slice).pipe(Effect.retry(retryForever))
        const builder = new BatchBuilder(store, passing.ctx, passing.set, topology.stream)
        for (const [memberId, partition] of slice) passOver(builder, passing, memberId, partition)
        passing.members += slice.length
        work = builder.finish()
        // What the pass read and left as it was goes again: the cache keeps the members events come for.
        store.forget(readIn)
      }
      // Written like a batch: while the next one is applied. The pass is over once the rows of its
      // last slice are written (the sink writes in order, so every slice's are): until then no
      // checkpoint may say its states are applied, or a crash would replay from past the marker
      // and its rows would be lost.
      //
      // A partition leaves the pass as soon as its own members are all passed over and their rows
      // written, not at the end of the pass: from then on one position is true of all its members
      // again, so its checkpoints go on and its changed states no longer pile up. (Held until the end
      // of the pass, the sixteen partitions' checkpoints went back to back after it — seconds of the
      // thread in the 1,000,000-event benchmark, with events late meanwhile.)
      const everyone = passedEveryone(passing)
      const over = () => {
        // What the slice's members made (an `rfm.changed` each when the cut points moved) is published by now.
        Metrics.derivedPublished.unsafeUpdate(work.outgoing.length, [])
        for (const partition of finished) passing.partitions.delete(partition)
        if (everyone) {
          const at = pending.indexOf(passing)
          if (at !== -1) pending.splice(at, 1)
          Metrics.passesUnderWay.unsafeUpdate(pending.length, [])
          if (pending.length === 0) pacer.idle()
          passesOver.push({ passing, ms: Date.now() - passing.started })
        }
        if (everyone || finished.length > 0) wake()
      }
      yield* joinPrevious
      writing.push(yield* Effect.forkDaemon(recordBatch(work, sink, inOrder.after(over), count).pipe(Effect.provide(context))))
      return slice.length
    })

    /** One batch from the reader: routed to the owned partitions, applied, recorded. */
    const handle = (batch: DeliveredBatch) =>
      Effect.gen(function* () {
        const started = yield* Clock.currentTimeMillis
        const parts = eligible()
        const through = batch.through
        // Route: what is ours and not handled yet, in stream order; pass markers apart.
        const segments: Array<{ items: Array<Item>; load: Array<readonly [string, number]> }> = [{ items: [], load: [] }]
        for (const item of batch.items) {
          const event = item.event
          if (event !== null && isPassMarker(event)) {
            const pass = passOf(event.properties)
            if (pass !== null) segments.push({ items: [{ kind: "pass", seq: item.seq, pass, arrival: item.arrival }], load: [] }, { items: [], load: [] })
            continue
          }
          const partition = event === null ? partitionOfSequence(item.seq, count) : partitionOf(event.memberId, count)
          const part = parts.get(partition)
          if (part === undefined || item.seq <= part.applied) continue
          const segment = segments[segments.length - 1]!
          segment.items.push({ kind: "event", item, partition })
          if (event !== null) segment.load.push([event.memberId, partition])
        }
        const set = yield* journeys.current
        const ctx = yield* runtime.context
        const apply = (segment: (typeof segments)[number]) =>
          Effect.gen(function* () {
            yield* store.load(segment.load).pipe(Effect.retry(retryForever))
            const builder = new BatchBuilder(store, ctx, set, topology.stream)
            const passes = [...pending]
            for (const routed of segment.items) {
              if (routed.kind !== "event") continue
              const { item, partition } = routed
              const event = item.event
              if (event === null) {
                builder.reject(item, item.reason ?? "refused")
                continue
              }
              // Its member's stored state cannot be read: the event is kept in the dead-letter stream
              // with the reason, and the others flow on (MemberStore `unreadable`).
              const unreadable = store.unreadable(event.memberId)
              if (unreadable !== null) {
                builder.reject({ ...item, subject: `${topology.subjectPrefix}.${event.type}`, data: eventPayload(event) }, unreadable)
                continue
              }
              // The passes under way come first, oldest first, for a member they have not reached: as at their markers.
              // The state written from here on says the member is past their markers (`BatchBuilder.stamp`).
              for (const passing of passes) {
                if (!passing.partitions.has(partition)) continue
                if (!passing.passed.has(event.memberId)) passOver(builder, passing, event.memberId, partition)
                builder.stamp(event.memberId, partition, passing.now, passing.seq)
              }
              builder.event(event, partition, item.arrival, item.row)
            }
            return builder.finish()
          })
        if (segments.length === 1) {
          // The common case: apply now, write while the next batch (or batches: WRITES_IN_FLIGHT) is applied.
          const work = yield* apply(segments[0]!)
          for (const part of parts.values()) part.applied = Math.max(part.applied, through)
          const waiting = performance.now()
          while (writing.length >= WRITES_IN_FLIGHT) yield* Fiber.join(writing.shift()!)
          Metrics.writeWaitSeconds.unsafeUpdate((performance.now() - waiting) / 1000, [])
          writing.push(yield* Effect.forkDaemon(record(work, parts, through, started)))
          return
        }
        // A pass inside the batch: everything in order, nothing overlapped.
        yield* joinPrevious
        for (const segment of segments) {
          const first = segment.items[0]
          if (first?.kind === "pass") {
            yield* startPass(first.pass, first.seq, first.arrival, parts)
            continue
          }
          const work = yield* apply(segment)
          yield* record(work, new Map(), through, started)
        }
        for (const part of parts.values()) part.applied = Math.max(part.applied, through)
        yield* recordBatch({ ...emptyBatch }, sink, inOrder.after(written(emptyBatch, parts, through, started)), count).pipe(Effect.provide(context))
      })

    /** Hands on the events of the partitions owned now; one gained later opens it anew, one lost is told to it (`forget`). */
    const openReader = (from: number) => use("open reader", () => readers.open(from, { count, owned: new Set(owned.keys()) }))

    const closeReader = Effect.sync(() => {
      reader?.stop()
      reader = null
    })

    /** Resolves true when a message is ready, false on a wake-up or after `ms` (engine/ingest/ReadyWatch.ts). */
    const readyWatch = new ReadyWatch()
    const ready = (current: EventReader, ms: number) =>
      use("wait for events", () => {
        const waiting = readyWatch.wait(current, ms)
        wakeUp = () => readyWatch.cancel()
        return waiting
      })

    const loop = Effect.gen(function* () {
      while (!stopping) {
        // The I/O waiting meanwhile first (inserts done, publishes acknowledged, messages read,
        // lookups): an Effect fiber yields through microtasks, and with messages already buffered
        // the loop went from batch to batch without letting the thread's other callbacks run — the
        // event loop held up to 1.3 s in the 1,000,000-event benchmark, every event of those
        // batches written that much later (BENCHMARKS.md).
        yield* yieldToEventLoop
        yield* between
        if (stopping) break
        if (owned.size === 0) {
          yield* closeReader
          yield* use("idle", () => new Promise<void>((resolve) => ((wakeUp = resolve), setTimeout(resolve, 500))))
          continue
        }
        if (reader === null || restart) {
          yield* joinPrevious
          yield* closeReader
          restart = false
          readerNext = Math.min(...[...owned.values()].map((part) => part.applied)) + 1
          reader = yield* openReader(readerNext).pipe(
            Effect.tapError((error) => Effect.logWarning("opening the event reader failed, retrying").pipe(Effect.annotateLogs({ error: error.message }))),
            Effect.retry(retryForever)
          )
        }
        // Pass work gets its share of the thread while events flow (engine/ingest/PassPacer.ts).
        if (pending.length > 0) {
          if (pacer.wait() === 0) {
            const sliceStarted = Date.now()
            const members = yield* passSlice
            pacer.spent(Date.now() - sliceStarted, members)
          }
        }
        const current = reader
        const slices = slicing()?.queue != null
        if (!(yield* ready(current, slices ? pacer.wait() : 500))) continue
        // A read that fails (NATS slow or away) opens the reader again where the owned partitions
        // stand; it used to stop ingestion, and with it the engine.
        const batch = yield* use("next batch", current.next).pipe(
          Effect.catchAll((error) =>
            Effect.logWarning("reading events failed, reopening the reader").pipe(
              Effect.annotateLogs({ error: error.message }),
              Effect.zipRight(closeReader),
              Effect.zipRight(Effect.sleep("200 millis")),
              Effect.as(null)
            )
          )
        )
        if (batch === null) {
          reader = null
          continue
        }
        // Full reads for BACKLOG_MS on end are a backlog: no checkpoint is paced then (`checkpoint`).
        // Not one full read: after a pause (a full collection) the engine catches up in full reads
        // for a second or two, and a checkpoint at full speed then would make it later still.
        if (batch.through - readerNext + 1 < batchSize) fullSince = null
        else fullSince ??= Date.now()
        const backlog = fullSince !== null && Date.now() - fullSince >= BACKLOG_MS
        if (backlog && !catchingUp) for (const part of owned.values()) part.pace.hurry()
        catchingUp = backlog
        readerNext = batch.through + 1
        pacer.events()
        // A batch in flight finishes before shutdown takes effect: SIGTERM drains.
        yield* Effect.uninterruptible(handle(batch))
        // Events were being handled until now: a batch that took the quiet time or longer (a full
        // collection) is not a pause in the events, and pass work at full speed then, 1,000 members
        // at once, held up the events behind it for up to 900 ms in a burst of timers.
        pacer.events()
      }
      yield* joinPrevious
    })

    const round = Effect.gen(function* () {
      if (stopping) return
      const decision = yield* use("lease round", () => leases.round())
      lastRound = Date.now()
      control.gained.push(...decision.gained)
      control.lost.push(...decision.lost)
      control.surplus.push(...decision.surplus)
      if (decision.gained.length + decision.lost.length + decision.surplus.length > 0) wake()
    }).pipe(
      Effect.catchAll((error) =>
        Effect.gen(function* () {
          yield* Effect.logWarning("lease round failed").pipe(Effect.annotateLogs({ error: error.message }))
          // Unable to renew for half a lease: another engine may take over soon; stop writing first.
          if (Date.now() - lastRound > leaseMs / 2 && owned.size > 0) {
            for (const partition of owned.keys()) leases.forget(partition)
            control.lost.push(...owned.keys())
            wake()
          }
        })
      )
    )
    yield* round.pipe(Effect.repeat(Schedule.spaced(`${Math.max(200, Math.round(leaseMs / 5))} millis`)), Effect.forkScoped)

    const fiber = yield* loop.pipe(
      Effect.tapErrorCause((cause) => Effect.logError("ingest stopped", cause)),
      Effect.forkDaemon
    )
    const done = Fiber.join(fiber).pipe(Effect.zipRight(Effect.fail(new Error("ingestion ended"))))

    // Shutdown: the batch in flight finishes, every owned partition is written and handed over at
    // once (no lease to wait out), within the drain budget; what does not fit is replayed by the next owner.
    yield* Effect.addFinalizer(() =>
      Effect.gen(function* () {
        stopping = true
        wake()
        // No partition taken from now on: a lease round under way would take back the ones handed
        // over below as they come free (`Leases.stopTaking`; `leave` hands back what it took).
        leases.stopTaking()
        yield* Effect.logInfo("ingest draining")
        yield* awaitDrained(fiber)
        if (!(yield* interruptWithin(fiber))) {
          // A batch still being applied or written: handing its partitions over now could record a
          // position past what is written. They are left to this engine's restart or to expire;
          // the next owner replays from the last checkpoint.
          yield* closeReader
          yield* Effect.logWarning("ingest: a batch still in flight at the end of the drain budget; partitions left to expire")
          return
        }
        yield* sink.flushed.pipe(Effect.interruptible, Effect.timeout(yield* drainTimeLeft), Effect.ignore)
        const left = yield* drainTimeLeft
        yield* Effect.forEach(
          [...owned].filter(([, part]) => !part.releasing),
          ([partition, part]) => release(partition, part),
          { discard: true }
        ).pipe(Effect.interruptible, Effect.timeout(left), Effect.ignore)
        yield* closeReader
        yield* use("leave", () => leases.leave((partition) => owned.has(partition))).pipe(Effect.interruptible, Effect.timeout(Math.max(500, yield* drainTimeLeft)), Effect.ignore)
        yield* Effect.logInfo("ingest drained").pipe(Effect.annotateLogs({ partitions: owned.size === 0 ? "all handed over" : `${owned.size} left to expire` }))
      })
    )

    /** Messages in the stream after the lowest position handled; asks the stream now. */
    const lag = streamEnd.pipe(
      Effect.map((last) => {
        const positions = [...owned.values()].map((part) => part.processed)
        return positions.length === 0 ? 0 : Math.max(0, last - Math.min(...positions))
      })
    )
    const status = Effect.gen(function* () {
      const behind = yield* lag.pipe(Effect.orElseSucceed(() => -1))
      return {
        engineId,
        partitions: count,
        owned: [...owned].map(([partition, part]) => ({ partition, applied: part.applied, processed: part.processed, committed: part.committed, replaying: replayBehind(part) })),
        lag: behind
      } satisfies IngestStatus
    })
    yield* lag.pipe(
      Effect.flatMap((behind) => Metric.set(Metrics.consumerLag, behind)),
      Effect.zipRight(Effect.suspend(() => Metric.set(Metrics.partitionsOwned, owned.size))),
      Effect.catchAll(() => Effect.void),
      Effect.repeat(Schedule.spaced("2 seconds")),
      Effect.forkScoped
    )
    yield* Effect.logInfo("ingest started").pipe(Effect.annotateLogs({ stream: topology.stream, engine: engineId, partitions: count }))
    return { done, status }
  })
)
