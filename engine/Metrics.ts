import { Effect, Metric, MetricBoundaries, MetricLabel, MetricState } from "effect"
import { readFileSync } from "node:fs"
import { constants, type IntervalHistogram, monitorEventLoopDelay, PerformanceObserver } from "node:perf_hooks"

/** The engine's metrics (operations.md, "Observability"); rendered for Prometheus at /metrics. */
export const eventsReceived = Metric.counter("memberflow_events_received_total", { description: "messages of this engine's partitions taken from the event stream", incremental: true })
export const eventsApplied = Metric.counter("memberflow_events_applied_total", { description: "events applied to member state for the first time", incremental: true })
export const eventsDuplicate = Metric.counter("memberflow_events_duplicate_total", { description: "events already applied (replays, re-publishes)", incremental: true })
export const eventsRejected = Metric.counter("memberflow_events_rejected_total", { description: "messages refused and dead-lettered", incremental: true })
export const casConflicts = Metric.counter("memberflow_member_cas_conflicts_total", { description: "checkpoint writes of a member that found it changed by another engine (the partition is given up and replayed)", incremental: true })
export const derivedPublished = Metric.counter("memberflow_derived_events_published_total", { description: "events, timers and message requests the engine published", incremental: true })
export const consumerLag = Metric.gauge("memberflow_consumer_lag", { description: "messages in the event stream after the lowest position this engine has handled (0 when it owns no partition)" })
export const membersUnreadable = Metric.gauge("memberflow_members_unreadable", { description: "members whose stored state in the members bucket cannot be read: their events are dead-lettered with the reason until the key is repaired or deleted" })
export const partitionsOwned = Metric.gauge("memberflow_partitions_owned", { description: "member partitions this engine owns" })
export const batchSeconds = Metric.histogram(
  "memberflow_batch_seconds",
  MetricBoundaries.exponential({ start: 0.005, factor: 2, count: 12 }),
  "time to make one batch durable"
)
export const eventLatencySeconds = Metric.histogram(
  "memberflow_event_latency_seconds",
  MetricBoundaries.fromIterable([0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]),
  "from the event's arrival in JetStream to its effects being durable"
)
export const insertSeconds = Metric.histogram(
  "memberflow_clickhouse_insert_seconds",
  MetricBoundaries.exponential({ start: 0.005, factor: 2, count: 12 }),
  "time one group-commit insert of analyst rows took ClickHouse, by table"
)
export const checkpointSeconds = Metric.histogram(
  "memberflow_checkpoint_seconds",
  MetricBoundaries.exponential({ start: 0.05, factor: 2, count: 10 }),
  "time one partition's checkpoint took, from its barrier to its position committed (one is in flight at a time)"
)
export const memberReads = Metric.counter("memberflow_member_reads_total", {
  description: "members not cached when an event came for them, by where their state came from: kv (read from the members bucket) or listing (their partition's listing says KV has none: a new member, no read)",
  incremental: true
})
/**
 * The ingest loop's waits, with the next batch applied, for an earlier batch's writes (its derived
 * events acknowledged by JetStream, its rows taken by the ClickHouse sink) because `WRITES_IN_FLIGHT`
 * batches (engine/Ingest.ts; one) were being written already. Time the engine's thread had events
 * to go on with and sat idle on NATS or ClickHouse instead.
 */
export const writeWaitSeconds = Metric.counter("memberflow_ingest_write_wait_seconds_total", {
  description: "time the ingest loop waited, with the next batch applied, for an earlier batch's writes (its derived events acknowledged by JetStream, its rows taken by the ClickHouse sink) because as many batches as may be written at once were being written already",
  incremental: true
})
export const rowSinkWaitSeconds = Metric.counter("memberflow_row_sink_wait_seconds_total", {
  description: `time batches waited to hand their rows to the ClickHouse sink because MEMBERFLOW_PENDING_ROWS rows were not written yet`,
  incremental: true
})
export const publishSeconds = Metric.histogram(
  "memberflow_publish_seconds",
  MetricBoundaries.fromIterable([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]),
  "time from a batch's first publish (derived events, timers, messages, dead letters) to JetStream's last acknowledgement of them"
)
export const checkpointStates = Metric.counter("memberflow_checkpoint_states_total", { description: "member states written to KV by checkpoints", incremental: true })
/** Passes (the hourly sweep, a broadcast's tick) started at their marker and not over yet: what bench:ingest tells its seconds apart by. */
export const passesUnderWay = Metric.gauge("memberflow_passes_under_way", { description: "passes over every member (the hourly sweep, a scheduled journey's tick) started at their marker and not over yet" })
/** 1 while this engine puts the RFM recompute off, not caught up with the stream (engine/Maintenance.ts). */
export const sweepPutOff = Metric.gauge("memberflow_sweep_put_off", { description: "1 while this engine puts the RFM recompute (the periodic sweep) off until it has caught up with the stream (MEMBERFLOW_SWEEP_MAX_LAG), else 0" })
/** A pass held back to a tenth of its share by a burst of timers due (engine/ingest/PassPacer.ts): now, and how often it began. */
export const passHeld = Metric.gauge("memberflow_pass_held", { description: "1 while pass work is held back to a tenth of its share because a burst of journey timers is due (MEMBERFLOW_PASS_TIMER_BURST), else 0" })
export const passHeldTotal = Metric.counter("memberflow_pass_held_total", { description: "times pass work began to be held back by a burst of journey timers due", incremental: true })
export const timersPending = Metric.gauge("memberflow_timers_pending", { description: "journey timers this engine keeps for its partitions, not yet due" })
export const timerFireLatenessSeconds = Metric.histogram(
  "memberflow_timer_fire_lateness_seconds",
  MetricBoundaries.fromIterable([0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]),
  "from a timer's due time to its journey.timer event being in the stream"
)
export const journeyEnrollments = Metric.counter("memberflow_journey_enrollments_total", { description: "entries into journeys, by journey and variant", incremental: true })
export const journeyMessages = Metric.counter("memberflow_messages_total", { description: "messages recorded, by channel and status", incremental: true })
export const providerSeconds = Metric.histogram(
  "memberflow_provider_seconds",
  MetricBoundaries.exponential({ start: 0.005, factor: 2, count: 12 }),
  "time a provider took to answer a hand-over, by channel"
)
export const providerRetries = Metric.counter("memberflow_provider_retries_total", { description: "hand-overs a provider refused for now (retried later), by channel", incremental: true })
export const retries = Metric.counter("memberflow_retries_total", { description: "retried store or broker operations", incremental: true })

const labelText = (tags: ReadonlyArray<{ readonly key: string; readonly value: string }>, extra?: string): string => {
  const parts = tags.map((tag) => `${tag.key}="${tag.value.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`)
  if (extra !== undefined) parts.push(extra)
  return parts.length === 0 ? "" : `{${parts.join(",")}}`
}

/**
 * How long the engine's thread kept timers and I/O callbacks waiting (an insert done, a publish
 * acknowledged, a timer due): sampled from the first scrape on, reported and reset at each scrape,
 * as prom-client's `nodejs_eventloop_lag_*` gauges are.
 */
let loopDelay: IntervalHistogram | null = null
const LOOP_SAMPLE_MS = 10

/** One unlabelled sample read at the scrape, not kept in an Effect metric: its HELP, TYPE and value lines. */
const sampleLines = (name: string, type: "gauge" | "counter", help: string, value: number): Array<string> => [
  `# HELP ${name} ${help}`,
  `# TYPE ${name} ${type}`,
  `${name} ${value}`
]

const loopDelayLines = (): Array<string> => {
  if (loopDelay === null) {
    loopDelay = monitorEventLoopDelay({ resolution: LOOP_SAMPLE_MS })
    loopDelay.enable()
  }
  const histogram = loopDelay
  // The histogram holds whole sampling intervals: what is over the interval is the delay.
  const seconds = (ns: number) => (Number.isFinite(ns) && histogram.count > 0 ? Math.max(0, ns - LOOP_SAMPLE_MS * 1e6) / 1e9 : 0)
  const lines = [
    ...sampleLines("nodejs_eventloop_lag_p99_seconds", "gauge", "99th percentile of the event loop's delay since the previous scrape", seconds(histogram.percentile(99))),
    ...sampleLines("nodejs_eventloop_lag_max_seconds", "gauge", "longest event loop delay since the previous scrape", seconds(histogram.max))
  ]
  histogram.reset()
  return lines
}

/**
 * The calling thread's time on a core and time ready to run but waiting for one (seconds), from
 * Linux's /proc/thread-self/schedstat; null where there is none. Called on the engine's thread, it
 * is that thread's own: the process's CPU (`process.cpuUsage`) also counts the event reader's
 * thread, the embedded ClickHouse's and V8's helpers.
 */
export const threadSchedule = (): { readonly cpu: number; readonly waiting: number } | null => {
  try {
    const [cpu, waiting] = readFileSync("/proc/thread-self/schedstat", "latin1").split(" ").map(Number)
    return Number.isFinite(cpu) && Number.isFinite(waiting) ? { cpu: cpu! / 1e9, waiting: waiting! / 1e9 } : null
  } catch {
    return null
  }
}

export const loopHoldSeconds = Metric.counter("memberflow_event_loop_held_seconds_total", {
  description: "time the engine's thread held its callbacks up, counted in holds of 250 ms or more",
  incremental: true
})
export const loopHoldCpuSeconds = Metric.counter("memberflow_event_loop_held_cpu_seconds_total", {
  description: "of those holds, the time the engine's thread was on a core (its work, or the collector's) (Linux)",
  incremental: true
})
export const loopHoldWaitingSeconds = Metric.counter("memberflow_event_loop_held_waiting_seconds_total", {
  description: "of those holds, the time the engine's thread was ready to run and waited for a core the machine's other work had (Linux); the rest it was blocked, as on the collector's helper threads",
  incremental: true
})

/** A hold of the engine's thread (`watchHolds`): its length, and of it the time on a core and the time waiting for one (null off Linux). */
export interface Hold {
  readonly heldMs: number
  readonly cpuMs: number | null
  readonly waitingMs: number | null
}

const HOLD_TICK_MS = 50
/** A tick this much later than due is a hold. */
export const HOLD_MS = 250
let holdWatch: ReturnType<typeof setInterval> | null = null
const holdListeners = new Set<(hold: Hold) => void>()

/**
 * Watches the engine's thread for holds: a 50 ms tick that comes 250 ms late or more. Each is
 * counted (`loopHoldSeconds`) with how the thread spent it — on a core (`loopHoldCpuSeconds`),
 * ready and waiting for one (`loopHoldWaitingSeconds`), or else blocked — and handed to `onHold`
 * until the function returned is called. The loop-delay gauges say that the thread was held; this
 * says why: its own work (or the collector's on it), the machine's other work on the two cores
 * (NATS, the embedded ClickHouse, the event reader), or a wait such as the collector's on its
 * helper threads.
 */
export const watchHolds = (onHold: (hold: Hold) => void): (() => void) => {
  holdListeners.add(onHold)
  if (holdWatch === null) {
    let last = performance.now()
    let lastSchedule = threadSchedule()
    holdWatch = setInterval(() => {
      const now = performance.now()
      const schedule = threadSchedule()
      const late = now - last - HOLD_TICK_MS
      if (late >= HOLD_MS) {
        // What the thread did over the whole interval, the tick's own 50 ms with it, is at most the hold.
        const share = (of: "cpu" | "waiting") =>
          schedule === null || lastSchedule === null ? null : Math.max(0, Math.min(late, (schedule[of] - lastSchedule[of]) * 1000))
        const hold: Hold = { heldMs: late, cpuMs: share("cpu"), waitingMs: share("waiting") }
        loopHoldSeconds.unsafeUpdate(late / 1000, [])
        if (hold.cpuMs !== null) loopHoldCpuSeconds.unsafeUpdate(hold.cpuMs / 1000, [])
        if (hold.waitingMs !== null) loopHoldWaitingSeconds.unsafeUpdate(hold.waitingMs / 1000, [])
        for (const listener of holdListeners) listener(hold)
      }
      last = now
      lastSchedule = schedule
    }, HOLD_TICK_MS)
    holdWatch.unref()
  }
  return () => holdListeners.delete(onHold)
}

/**
 * The collector's pauses of the engine's thread, by kind, as prom-client's `nodejs_gc_duration_seconds`
 * (Node's `gc` performance entries): with a heap of member states, a major collection is the likeliest
 * thing to hold events up, and this tells it from a slow insert or a stalled broker.
 */
export const gcSeconds = Metric.histogram(
  "memberflow_gc_pause_seconds",
  MetricBoundaries.fromIterable([0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1]),
  "time the collector held the engine's thread, by kind (minor, major, incremental, weakcb)"
)
const GC_KINDS: ReadonlyArray<readonly [number, string]> = [
  [constants.NODE_PERFORMANCE_GC_MINOR, "minor"],
  [constants.NODE_PERFORMANCE_GC_MAJOR, "major"],
  [constants.NODE_PERFORMANCE_GC_INCREMENTAL, "incremental"],
  [constants.NODE_PERFORMANCE_GC_WEAKCB, "weakcb"]
]
const gcTags = new Map(GC_KINDS.map(([kind, name]) => [kind, [MetricLabel.make("kind", name)]]))
/** The longest single pause since the previous scrape, reported and reset at each scrape like the loop delay. */
let gcMaxMs = 0
let gcObserver: PerformanceObserver | null = null

/** Starts observing the collector (once; the engine calls it at start). */
export const observeGc = (): void => {
  if (gcObserver !== null) return
  gcObserver = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      const kind = (entry as { readonly detail?: { readonly kind?: number } }).detail?.kind ?? 0
      gcSeconds.unsafeUpdate(entry.duration / 1000, gcTags.get(kind) ?? [MetricLabel.make("kind", "other")])
      if (entry.duration > gcMaxMs) gcMaxMs = entry.duration
    }
  })
  gcObserver.observe({ entryTypes: ["gc"] })
}

const gcMaxLines = (): Array<string> => {
  const lines = sampleLines("nodejs_gc_pause_max_seconds", "gauge", "longest single collector pause since the previous scrape", gcMaxMs / 1000)
  gcMaxMs = 0
  return lines
}

/** Prometheus text exposition format 0.0.4 of every metric the engine has recorded. */
export const renderPrometheus = Effect.map(Metric.snapshot, (pairs) => {
  const lines: Array<string> = []
  const seen = new Set<string>()
  for (const pair of pairs) {
    const name = pair.metricKey.name
    if (!name.startsWith("memberflow_")) continue
    const tags = pair.metricKey.tags
    const state = pair.metricState
    const header = (type: string) => {
      if (seen.has(name)) return
      seen.add(name)
      const help = pair.metricKey.description
      if (help._tag === "Some") lines.push(`# HELP ${name} ${help.value}`)
      lines.push(`# TYPE ${name} ${type}`)
    }
    if (MetricState.isCounterState(state)) {
      header("counter")
      lines.push(`${name}${labelText(tags)} ${Number(state.count)}`)
    } else if (MetricState.isGaugeState(state)) {
      header("gauge")
      lines.push(`${name}${labelText(tags)} ${Number(state.value)}`)
    } else if (MetricState.isHistogramState(state)) {
      header("histogram")
      for (const [bound, count] of state.buckets) {
        lines.push(`${name}_bucket${labelText(tags, `le="${Number.isFinite(bound) ? bound : "+Inf"}"`)} ${count}`)
      }
      if (!state.buckets.some(([bound]) => !Number.isFinite(bound))) {
        lines.push(`${name}_bucket${labelText(tags, 'le="+Inf"')} ${state.count}`)
      }
      lines.push(`${name}_sum${labelText(tags)} ${state.sum}`)
      lines.push(`${name}_count${labelText(tags)} ${state.count}`)
    }
  }
  const memory = process.memoryUsage()
  lines.push(...sampleLines("process_resident_memory_bytes", "gauge", "resident set size of the engine process", memory.rss))
  lines.push(...sampleLines("nodejs_heap_used_bytes", "gauge", "V8 heap in use", memory.heapUsed))
  lines.push(...sampleLines("nodejs_heap_size_total_bytes", "gauge", "V8 heap reserved (in use and free)", memory.heapTotal))
  lines.push(...sampleLines("nodejs_external_memory_bytes", "gauge", "memory outside the V8 heap held by JS objects (buffers, the embedded ClickHouse's results)", memory.external))
  const cpu = process.cpuUsage()
  lines.push(...sampleLines("process_cpu_seconds_total", "counter", "user and system CPU time of the engine process, all its threads", (cpu.user + cpu.system) / 1e6))
  const schedule = threadSchedule()
  if (schedule !== null) {
    lines.push(...sampleLines("memberflow_engine_thread_cpu_seconds_total", "counter", "time the engine's own thread was on a core (Linux); process_cpu_seconds_total counts every thread of the process", schedule.cpu))
    lines.push(...sampleLines("memberflow_engine_thread_waiting_seconds_total", "counter", "time the engine's own thread was ready to run and waited for a core (Linux): the machine's other work had them", schedule.waiting))
  }
  lines.push(...loopDelayLines())
  lines.push(...gcMaxLines())
  return lines.join("\n") + "\n"
})
