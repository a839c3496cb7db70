import { Config, Effect } from "effect"
import { ChannelsModeConfig } from "../channels/Channels.ts"

/**
 * The engine's settings from the environment, each with its range, in one place.
 *
 * `memberflow run` reads all of them (`checkRunSettings`) before it connects to anything: a value
 * out of range, or not a number, stops the start with a message naming the setting and what it
 * accepts, before a stream, a KV bucket or a ClickHouse table is created. Read one at a time by the
 * services that use them, a bad one used to be found only once the services before it had set up
 * NATS and ClickHouse, and some were never checked at all (`MEMBERFLOW_PARTITIONS=0` made every
 * member's partition NaN).
 *
 * Settings that need the server to judge (MEMBERFLOW_KV_VALUE_BYTES against NATS's max_payload),
 * the channels' credentials and the admin token a non-loopback MEMBERFLOW_HTTP_HOST needs are
 * checked where they are used, also at start.
 */

const count = (n: number): string => n.toLocaleString("en-US")

/** A whole number from `min` to `max` (inclusive); `what` names it in the message ("a whole number of …"). */
const whole = (name: string, fallback: number, min: number, max: number, what: string): Config.Config<number> =>
  Config.integer(name).pipe(
    Config.withDefault(fallback),
    Config.validate({
      message: `${name} must be ${what} from ${count(min)} to ${count(max)}`,
      validation: (n) => n >= min && n <= max
    })
  )

/** NATS's rules for names: a KV bucket's letters, digits, "_" and "-"; a stream's no whitespace, ".", "*", ">", "/" or "\\". */
const BUCKET_NAME = /^[A-Za-z0-9_-]+$/
const STREAM_NAME = /^[^\s.*>/\\]+$/
const SUBJECT_TOKEN = /^[^\s.*>]+$/

const named = (setting: string, fallback: string, pattern: RegExp, what: string): Config.Config<string> =>
  Config.string(setting).pipe(Config.withDefault(fallback), Config.validate({ message: `${setting} must be ${what}`, validation: (s) => pattern.test(s) }))

const DAY_MS = 86_400_000

// Ingestion (engine/Ingest.ts)
export const batchSize = whole("MEMBERFLOW_BATCH_SIZE", 4000, 1, 100_000, "a whole number of events")
export const batchWindowMs = whole("MEMBERFLOW_BATCH_WINDOW_MS", 25, 0, 10_000, "a whole number of milliseconds")
export const maxEventBytes = whole("MEMBERFLOW_MAX_EVENT_BYTES", 64 * 1024, 256, 64 * 1024 * 1024, "a whole number of bytes")
export const partitions = whole("MEMBERFLOW_PARTITIONS", 16, 1, 1024, "a whole number of partitions")
export const leaseMs = whole("MEMBERFLOW_LEASE_MS", 10_000, 1_000, DAY_MS, "a whole number of milliseconds")
// A minute: a member changed several times within it is written once. Every 30 s, the checkpoints'
// JSON, KV writes and what they promote made about four times as many of bench:ingest's paced
// events late (medians; BENCHMARKS.md, 2026-12-06 afternoon). A crash replays up to this much.
export const checkpointMs = whole("MEMBERFLOW_CHECKPOINT_MS", 60_000, 100, DAY_MS, "a whole number of milliseconds")
/**
 * The share, in percent, of a partition's turn (the checkpoint interval ÷ partitions) over which its
 * checkpoint's states are spread (engine/ingest/CheckpointPace.ts); 0 writes them as fast as NATS
 * takes them, as before 2026-12-07, midday.
 */
export const checkpointSpread = whole("MEMBERFLOW_CHECKPOINT_SPREAD", 50, 0, 100, "a whole number of percent")
export const checkpointMembers = whole("MEMBERFLOW_CHECKPOINT_MEMBERS", 200_000, 1, 100_000_000, "a whole number of member states")
export const pendingRows = whole("MEMBERFLOW_PENDING_ROWS", 100_000, 1, 100_000_000, "a whole number of rows")
/**
 * The niceness of the process's threads but the engine's own and the event reader's
 * (engine/ThreadPriority.ts); 0 leaves them. At 10, bench:ingest drained its backlog faster in
 * six alternating runs of six (BENCHMARKS.md, 2026-12-07, morning).
 */
export const threadsNice = whole("MEMBERFLOW_THREADS_NICE", 10, 0, 19, "a whole number")
// 0: each group commit starts as soon as the previous one is done. A gap makes fewer, larger inserts
// (an insert costs the embedded ClickHouse 20–30 ms of CPU whatever its size) for up to that much
// more latency; on this machine 200 ms took the embedded ClickHouse from about 0.55 to 0.2 s of CPU
// a second in bench:ingest's live traffic, but did not make fewer events late (BENCHMARKS.md,
// 2026-12-07, morning).
export const groupCommitMs = whole("MEMBERFLOW_GROUP_COMMIT_MS", 0, 0, 60_000, "a whole number of milliseconds")
export const passShare = Config.number("MEMBERFLOW_PASS_SHARE").pipe(
  Config.withDefault(0.3),
  Config.validate({ message: "MEMBERFLOW_PASS_SHARE must be a number above 0 and at most 1", validation: (share) => share > 0 && share <= 1 })
)
export const passTimerBurst = Config.number("MEMBERFLOW_PASS_TIMER_BURST").pipe(
  Config.withDefault(100),
  Config.validate({ message: "MEMBERFLOW_PASS_TIMER_BURST must be a number of timers a second, 0 or more (0: never hold a pass back)", validation: (rate) => rate >= 0 })
)

// Member states (engine/MemberStore.ts)
export const cacheMembers = whole("MEMBERFLOW_CACHE_MEMBERS", 150_000, 0, 100_000_000, "a whole number of member states")
export const unreadableRecheckMs = Config.integer("MEMBERFLOW_UNREADABLE_RECHECK_MS").pipe(
  Config.withDefault(30_000),
  Config.validate({ message: "MEMBERFLOW_UNREADABLE_RECHECK_MS must be a positive number of milliseconds", validation: (n) => n > 0 })
)

// The hourly sweep (engine/Maintenance.ts)
/**
 * How far behind the stream an engine may be and still rank the population: further back, the
 * profiles in ClickHouse are still being written (a history import, a backlog after an outage), and
 * cut points from them would rank everyone against the few members loaded so far. (Until 2026-12-06
 * the first sweep ran 5 s after start, whatever the backlog: in bench:ingest, cut points from the
 * first few thousand purchasers rescored every member and announced some 200,000 `rfm.changed`
 * events that the complete population's cut points then changed again.) Five batches of the
 * default size; the engine's own derived events count.
 */
export const SWEEP_MAX_LAG = 20_000
export const sweepMaxLag = Config.integer("MEMBERFLOW_SWEEP_MAX_LAG").pipe(
  Config.withDefault(SWEEP_MAX_LAG),
  Config.validate({ message: "MEMBERFLOW_SWEEP_MAX_LAG must be a whole number of messages, 0 or more", validation: (lag) => lag >= 0 })
)

// Timers and message requests (engine/Topology.ts, engine/Delivery.ts)
export const ackWaitMs = whole("MEMBERFLOW_ACK_WAIT_MS", 30_000, 1_000, DAY_MS, "a whole number of milliseconds")
/** Provider requests in flight per channel; the sandbox's defaults are higher (nothing leaves the machine). */
export const concurrency = (channel: "sms" | "email" | "wechat", sandbox: boolean): Config.Config<number> =>
  whole(
    `MEMBERFLOW_${channel.toUpperCase()}_CONCURRENCY`,
    // nodemailer's pool keeps 5 connections unless SMTP_URL says `?maxConnections=`
    sandbox ? 64 : channel === "email" ? 5 : 16,
    1,
    10_000,
    "a whole number of requests"
  )

// Journeys (engine/JourneyRuntime.ts, engine/Experiments.ts)
export const journeysPollMs = whole("MEMBERFLOW_JOURNEYS_POLL_MS", 2000, 100, DAY_MS, "a whole number of milliseconds")
export const experimentsCheckMs = whole("MEMBERFLOW_EXPERIMENTS_CHECK_MS", 600_000, 1_000, 7 * DAY_MS, "a whole number of milliseconds")

// The admin API (engine/Http.ts, engine/Cli/EngineQuery.ts): 0 takes any free port.
export const DEFAULT_HTTP_PORT = 8787
export const httpPort = whole("MEMBERFLOW_HTTP_PORT", DEFAULT_HTTP_PORT, 0, 65_535, "a TCP port number")
/** Where the admin API binds: anything but loopback needs MEMBERFLOW_ADMIN_TOKEN (engine/Http.ts). */
export const httpHost = Config.string("MEMBERFLOW_HTTP_HOST").pipe(Config.withDefault("127.0.0.1"))

// Names (engine/Topology.ts): the defaults are events.md's contract.
export const stream = named("MEMBERFLOW_STREAM", "MEMBER_EVENTS", STREAM_NAME, 'a JetStream stream name: no whitespace, ".", "*", ">", "/" or "\\"')
export const kvPrefix = named("MEMBERFLOW_KV_PREFIX", "memberflow", BUCKET_NAME, 'the start of KV bucket names: letters, digits, "_" and "-" only')
/**
 * How the event stream is read (engine/ingest/EventReader.ts): on a worker thread of its own, or on
 * the engine's thread (`thread`, the reader of before).
 */
export type ReaderKind = "worker" | "thread"

export const ReaderKindConfig: Config.Config<ReaderKind> = Config.literal("worker", "thread")("MEMBERFLOW_READER").pipe(Config.withDefault("worker" as const))

export const subjectPrefix = Config.string("MEMBERFLOW_SUBJECT_PREFIX").pipe(
  Config.withDefault("events"),
  Config.validate({
    message: 'MEMBERFLOW_SUBJECT_PREFIX must be NATS subject tokens joined by ".", each without whitespace, "*" or ">"',
    validation: (prefix) => prefix.split(".").every((token) => SUBJECT_TOKEN.test(token))
  })
)

/**
 * Every setting above, read once: the first bad one fails with its message. Concurrency is read
 * for live mode's defaults; only the value's range matters here.
 */
export const checkRunSettings: Effect.Effect<void, import("effect/ConfigError").ConfigError> = Effect.asVoid(
  Config.all([
    batchSize,
    batchWindowMs,
    maxEventBytes,
    partitions,
    leaseMs,
    checkpointMs,
    checkpointSpread,
    checkpointMembers,
    pendingRows,
    groupCommitMs,
    threadsNice,
    passShare,
    passTimerBurst,
    cacheMembers,
    unreadableRecheckMs,
    sweepMaxLag,
    ackWaitMs,
    concurrency("sms", false),
    concurrency("email", false),
    concurrency("wechat", false),
    journeysPollMs,
    experimentsCheckMs,
    httpPort,
    stream,
    kvPrefix,
    subjectPrefix,
    ReaderKindConfig,
    // Defined beside the code that reads it; checked here all the same.
    ChannelsModeConfig
  ])
)
