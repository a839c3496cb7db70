import type { JsMsg } from "@nats-io/jetstream"
import { Clock, Effect, Fiber, Layer, MetricLabel, Schedule, Stream } from "effect"
import type { ConsumerMessages } from "@nats-io/jetstream"
import { randomUUID } from "node:crypto"
import type { OutgoingMessage, SendOutcome } from "../channels/Channel.ts"
import { Channels } from "../channels/Channels.ts"
import { intervalOf, makeRateLimiter, type RateLimiter } from "../channels/RateLimit.ts"
import type { Channel } from "../schemas/Program.ts"
import { Clickhouse } from "./Clickhouse.ts"
import { FINAL, type LedgerEntry, MessageLedger, rowBase, rowOf, type Stored } from "./Delivery/Ledger.ts"
import { makeRowWriter } from "./Delivery/RowWriter.ts"
import type { MessageRequest } from "./journeys/Apply.ts"
import { derivedId } from "./member/MemberState/Ids.ts"
import { MemberLookup } from "./MemberLookup.ts"
import * as Metrics from "./Metrics.ts"
import { consumerStream, Nats, type NatsError } from "./Nats.ts"
import { ProgramRuntime } from "./ProgramRuntime.ts"
import { awaitDrained, interruptWithin } from "./Shutdown.ts"
import { messagesConsumer, subjectOf, Topology } from "./Topology.ts"
import * as Settings from "./Settings.ts"

/**
 * Hands each queued message to its provider once (channels.md rules 4–5, operations.md promises).
 * Message requests wait in `<stream>_MESSAGES` (NAKed until quiet hours end or a retry is due);
 * for each one the ledger (Delivery/Ledger.ts) is read (on a redelivery; a first delivery's first
 * write is a create instead), the member's consent read again (an
 * opt-out after scheduling wins), the engine-wide rate limit taken, `attempt` written with
 * compare-and-set, the provider called, and the outcome written before the request is acked.
 *
 * A process killed between `attempt` and the outcome leaves a message whose fate is unknown. The
 * next holder asks the provider where it can (Twilio lists what it took); where it cannot, the
 * message is recorded `failed` ("interrupted") rather than risk sending it twice.
 */

/** Transient failures on one channel before it is given up for the next. */
const MAX_ATTEMPTS = 8

const backoff = (n: number): number => Math.round(Math.min(60_000, 1_000 * 2 ** n) * (0.5 + Math.random() / 2))

type Verdict = { readonly kind: "ack" } | { readonly kind: "nak"; readonly delay: number } | { readonly kind: "term" }

/** How long a hand-over waits when no engine owns the member's partition (its consent unknown for now). */
const UNOWNED_BACKOFF_MS = 2_000

const ack: Verdict = { kind: "ack" }
const unwritten: Stored = { entry: null, revision: 0 }
const nak = (delay: number): Verdict => ({ kind: "nak", delay: Math.max(0, Math.round(delay)) })

export const DeliveryLive = Layer.scopedDiscard(
  Effect.gen(function* () {
    const { js, use } = yield* Nats
    const topology = yield* Topology
    const channels = yield* Channels
    const clickhouse = yield* Clickhouse
    const lookup = yield* MemberLookup
    const { program } = yield* ProgramRuntime
    const ledger = yield* MessageLedger
    const owner = randomUUID()
    // JetStream redelivers a request whose holder has not said "working" for an ack wait. The holder
    // says it three times per ack wait while a provider answers; an `attempt` is taken for abandoned
    // only after two ack waits, so a holder that is slow (a loaded machine) rather than dead keeps it.
    const ackWaitMs = yield* Settings.ackWaitMs
    const attemptLeaseMs = 2 * ackWaitMs
    const heartbeatMs = Math.max(100, Math.round(ackWaitMs / 3))
    const writer = yield* makeRowWriter(clickhouse)
    const limiters = new Map<Channel, RateLimiter>()
    for (const channel of ["sms", "email", "wechat"] as const) {
      limiters.set(channel, yield* makeRateLimiter(intervalOf(program.policies.rateLimits?.[channel])))
    }
    /** WeChat 45009: the channel takes nothing until its quota resets. */
    const pausedUntil = new Map<Channel, number>()
    const inFlight = new Set<string>()

    const count = (channel: string, status: string) =>
      Effect.sync(() => Metrics.journeyMessages.unsafeUpdate(1, [MetricLabel.make("channel", channel), MetricLabel.make("status", status)]))

    const publishEvent = (type: string, id: string, memberId: string, properties: Record<string, unknown>, at: number) =>
      use(`publish ${type}`, () =>
        js.publish(
          subjectOf(topology, type),
          JSON.stringify({ id, type, memberId, occurredAt: new Date(at).toISOString(), properties, source: "memberflow" }),
          { msgID: id }
        )
      ).pipe(Effect.retry(Schedule.exponential("200 millis").pipe(Schedule.union(Schedule.spaced("5 seconds")))))

    /** Writes a final state: ledger first (the truth), then the analyst row. */
    const finish = (request: MessageRequest, stored: Stored, entry: LedgerEntry) =>
      Effect.gen(function* () {
        const written = yield* ledger.write(request.messageId, entry, stored.revision)
        if (written === null) return nak(200)
        yield* writer.write(rowOf(entry))
        yield* count(entry.channel, entry.status)
        return ack
      })

    /** How long a hand-over waits for a partition `behind` events from caught up: at 5,000 events/s, 2 s to 60 s. */
    const replayBackoff = (behind: number) => Math.min(60_000, Math.max(2_000, Math.round(behind / 5)))

    /**
     * The member's consent now, for marketing messages: an opt-out received after scheduling wins.
     * While the member's partition is being replayed, or no engine owns it (a hand-over, a killed
     * owner's lease running out), the lookup fails at once and the hand-over is postponed: consent
     * read then — from the replaying owner, or from KV's last checkpoint — could be older than an
     * opt-out in the stream. (KV used to answer when no owner did: a member who opted out after the
     * last checkpoint of an owner killed since was sent to as if they had not.)
     */
    const consentNow = (memberId: string, channel: Channel) =>
      Effect.map(lookup.get(memberId, { waitMs: 0, unowned: "fail" }), (state) => state === null || state.consent[channel]?.v === true)

    const handOver = (request: MessageRequest, memberId: string, start: Stored, touch: () => void) =>
      Effect.gen(function* () {
        let stored = start
        let idx = stored.entry?.idx ?? 0
        let n = stored.entry?.status === "retry" ? stored.entry.n : 0
        const base = stored.entry?.row ?? rowBase(request, memberId)
        const reasons: Array<string> = []
        for (; idx < request.messages.length; idx++, n = 0) {
          const message = request.messages[idx] as OutgoingMessage
          const channel = message.channel
          const now = yield* Clock.currentTimeMillis
          const entry = (status: LedgerEntry["status"], extra: Partial<LedgerEntry> = {}): LedgerEntry => ({ status, idx, channel, n, at: now, row: base, ...extra })
          if (request.marketing && !(yield* consentNow(memberId, channel))) {
            reasons.push(`${channel}: opted out`)
            continue
          }
          const sender = channels.sender(channel)
          if (sender === null) {
            reasons.push(`${channel}: not configured`)
            continue
          }
          const paused = pausedUntil.get(channel) ?? 0
          if (paused > now) {
            if (idx + 1 < request.messages.length) {
              reasons.push(`${channel}: paused`)
              continue
            }
            return nak(paused - now)
          }
          // Held while waiting for the rate limit: tell JetStream it is being worked on.
          touch()
          yield* (limiters.get(channel) as RateLimiter).take
          touch()
          const attempt = entry("attempt", { owner, at: yield* Clock.currentTimeMillis })
          const attempted = yield* ledger.write(request.messageId, attempt, stored.revision)
          if (attempted === null) return nak(200)
          stored = { entry: attempt, revision: attempted }
          const started = yield* Clock.currentTimeMillis
          // JetStream hears from us while the provider takes its time: no other engine takes it over.
          const heartbeat = Effect.sync(touch).pipe(Effect.delay(`${heartbeatMs} millis`), Effect.forever)
          const outcome: SendOutcome = yield* Effect.raceFirst(sender.send(message), heartbeat)
          const took = ((yield* Clock.currentTimeMillis) - started) / 1000
          Metrics.providerSeconds.unsafeUpdate(took, [MetricLabel.make("channel", channel)])
          const at = yield* Clock.currentTimeMillis
          switch (outcome._tag) {
            case "Sent":
              return yield* finish(request, stored, { ...entry("sent"), at, providerMessageId: outcome.providerMessageId, reason: reasons.join("; ") })
            case "Transient": {
              Metrics.providerRetries.unsafeUpdate(1, [MetricLabel.make("channel", channel)])
              if (n + 1 < MAX_ATTEMPTS) {
                const delay = Math.max(outcome.retryAfterMs ?? 0, backoff(n))
                const written = yield* ledger.write(request.messageId, { ...entry("retry"), n: n + 1, at, next: at + delay, reason: outcome.reason }, stored.revision)
                return nak(written === null ? 200 : delay)
              }
              reasons.push(`${channel}: gave up after ${MAX_ATTEMPTS} attempts (${outcome.reason})`)
              break
            }
            case "Permanent":
              if (outcome.optOut) {
                // The member said STOP: record it as the member's own opt-out, for every later send.
                yield* publishEvent("consent.updated", derivedId("opt-out", request.messageId), memberId, { channel, granted: false, reason: outcome.reason }, at)
              }
              reasons.push(`${channel}: ${outcome.reason}`)
              if (!outcome.fallback) return yield* finish(request, stored, { ...entry("failed"), at, reason: reasons.join("; ") })
              break
            case "Paused":
              pausedUntil.set(channel, outcome.until)
              reasons.push(`${channel}: ${outcome.reason}`)
              if (idx + 1 >= request.messages.length) {
                const written = yield* ledger.write(request.messageId, { ...entry("retry"), at, next: outcome.until, reason: outcome.reason }, stored.revision)
                return nak(written === null ? 200 : outcome.until - at)
              }
              break
          }
          // on to the next channel: the ledger says which, should this process die now
          if (idx + 1 < request.messages.length) {
            const next = request.messages[idx + 1] as OutgoingMessage
            const moved = { ...entry("retry"), idx: idx + 1, channel: next.channel, n: 0, at, next: at, reason: reasons.join("; ") }
            const revision = yield* ledger.write(request.messageId, moved, stored.revision)
            if (revision === null) return nak(200)
            stored = { entry: moved, revision }
          }
        }
        const last = request.messages[request.messages.length - 1]?.channel ?? "sms"
        const now = yield* Clock.currentTimeMillis
        const allOptedOut = reasons.length > 0 && reasons.every((r) => r.endsWith("opted out"))
        const final: LedgerEntry = {
          status: allOptedOut ? "suppressed" : "failed",
          idx: request.messages.length - 1,
          channel: last,
          n: 0,
          at: now,
          row: base,
          reason: allOptedOut ? `opted_out (${reasons.join("; ")})` : reasons.join("; ")
        }
        return yield* finish(request, stored, final)
      })

    /** A previous holder wrote `attempt` and is gone: ask the provider, or give it up as unknown. */
    const recover = (request: MessageRequest, memberId: string, stored: Stored, entry: LedgerEntry, touch: () => void) =>
      Effect.gen(function* () {
        const message = request.messages[entry.idx]
        const sender = message === undefined ? null : channels.sender(message.channel)
        const now = yield* Clock.currentTimeMillis
        if (message !== undefined && sender !== null && sender.recover !== undefined && (sender.recoverable?.(message) ?? true)) {
          touch()
          const found = yield* sender.recover(message, entry.at - 60_000).pipe(Effect.either)
          if (found._tag === "Left" && found.left.unknowable !== true) return nak(5_000)
          if (found._tag === "Left") {
            const reason = `interrupted: the engine stopped while handing it to ${entry.channel} (${found.left.reason}); not sent again so that it is never sent twice`
            return yield* finish(request, stored, { ...entry, status: "failed", at: now, reason })
          }
          const { owner: _, ...rest } = entry
          if (found.right !== null) return yield* finish(request, stored, { ...rest, status: "sent", at: now, providerMessageId: found.right })
          return yield* handOver(request, memberId, { ...stored, entry: { ...entry, status: "retry", n: entry.n } }, touch)
        }
        const reason = `interrupted: the engine stopped while handing it to ${entry.channel}; not sent again so that it is never sent twice`
        return yield* finish(request, stored, { ...entry, status: "failed", at: now, reason })
      })

    const handle = (msg: JsMsg): Effect.Effect<Verdict, NatsError | import("./MemberStore.ts").MemberStoreError | import("./MemberLookup.ts").MemberReplayingError | import("./MemberLookup.ts").MemberUnownedError | import("./Clickhouse.ts").ClickhouseError> =>
      Effect.gen(function* () {
        let parsed: { memberId: string; properties: MessageRequest }
        try {
          parsed = JSON.parse(new TextDecoder().decode(msg.data)) as { memberId: string; properties: MessageRequest }
        } catch {
          yield* Effect.logError("unreadable message request dropped").pipe(Effect.annotateLogs({ seq: msg.seq }))
          return { kind: "term" } as const
        }
        const request = parsed.properties
        const memberId = parsed.memberId
        const touch = () => msg.working()
        const now = yield* Clock.currentTimeMillis
        if (request.notBefore !== null && request.notBefore > now + 20) return nak(request.notBefore - now)
        if (inFlight.has(request.messageId)) return nak(1_000)
        // On its first delivery a request has no ledger entry, unless the same message was requested
        // again after JetStream's duplicate window: its first write is then a create that fails, and
        // the redelivery reads the entry. One KV read fewer per message.
        const stored = msg.info.deliveryCount === 1 ? unwritten : yield* ledger.read(request.messageId)
        const entry = stored.entry
        if (entry !== null && FINAL.has(entry.status)) {
          // Already decided: the row again (a crash may have come between ledger and row), nothing sent.
          yield* writer.write(rowOf(entry))
          return ack
        }
        if (entry !== null && entry.status === "retry" && (entry.next ?? 0) > now + 20) return nak((entry.next ?? now) - now)
        if (entry !== null && entry.status === "attempt" && entry.owner !== owner && now - entry.at < attemptLeaseMs) {
          return nak(attemptLeaseMs - (now - entry.at))
        }
        // A recovery hands over too: a redelivery while it runs (past the ack wait) must wait for it,
        // or it would find its own fresh `attempt`, ask the provider too early and send a second time.
        inFlight.add(request.messageId)
        const work = entry !== null && entry.status === "attempt" ? recover(request, memberId, stored, entry, touch) : handOver(request, memberId, stored, touch)
        return yield* work.pipe(Effect.ensuring(Effect.sync(() => inFlight.delete(request.messageId))))
      })

    const settle = (msg: JsMsg) => (verdict: Verdict) =>
      Effect.sync(() => {
        if (verdict.kind === "ack") msg.ack()
        else if (verdict.kind === "term") msg.term()
        else msg.nak(verdict.delay)
      })

    // One loop per channel, each with its own bound: as many hand-overs in flight as the provider
    // really takes at once (an `attempt` is then on the wire, not queued inside a client's pool).
    const sandbox = channels.mode === "sandbox"
    const concurrency: Record<Channel, number> = {
      // In sandbox nothing waits on a provider: the bounds only slow a rehearsal down.
      sms: yield* Settings.concurrency("sms", sandbox),
      email: yield* Settings.concurrency("email", sandbox),
      wechat: yield* Settings.concurrency("wechat", sandbox)
    }
    const current = new Set<ConsumerMessages>()
    let stopping = false
    const loopFor = (channel: Channel) =>
      Effect.gen(function* () {
        const consumer = yield* use(`get ${channel} messages consumer`, () => js.consumers.get(topology.messagesStream, messagesConsumer(channel)))
        const messages = yield* use(`consume ${channel} messages`, () => consumer.consume({ max_messages: Math.max(32, concurrency[channel] * 4), expires: 5_000 }))
        current.add(messages)
        // A stop that came while this loop was still getting its consumer has nothing else to stop it.
        if (stopping) messages.stop()
        yield* consumerStream(messages, `consume ${channel} messages`).pipe(
          Stream.mapEffect(
            (msg) =>
              handle(msg).pipe(
                // The member's partition is being replayed: back when it may have caught up, not every
                // 2 s (an engine draining a backlog after a start would be asked again and again for
                // each message waiting: the journeys benchmark's drain makes 40,000 at once).
                Effect.catchTag("MemberReplayingError", (error) => Effect.succeed(nak(replayBackoff(error.behind)))),
                // No owner now: one takes the partition within a lease (10 s by default).
                Effect.catchTag("MemberUnownedError", () => Effect.succeed(nak(UNOWNED_BACKOFF_MS))),
                Effect.catchAll((error) =>
                  Effect.logWarning("message hand-over postponed").pipe(Effect.annotateLogs({ error: error.message }), Effect.as(nak(2_000)))
                ),
                Effect.flatMap(settle(msg))
              ),
            { concurrency: Math.max(1, concurrency[channel]), unordered: true }
          ),
          Stream.runDrain,
          Effect.ensuring(Effect.sync(() => current.delete(messages)))
        )
      }).pipe(
        Effect.tapErrorCause((cause) => Effect.logError(`${channel} delivery stopped; restarting`, cause)),
        Effect.retry(Schedule.spaced("1 second")),
        Effect.repeat({ until: () => stopping })
      )
    const fiber = yield* Effect.all((["sms", "email", "wechat"] as const).map(loopFor), { concurrency: "unbounded", discard: true }).pipe(Effect.fork)
    yield* Effect.logInfo("channels ready").pipe(Effect.annotateLogs({ mode: channels.mode, ...channels.describe }))
    // SIGTERM: stop pulling and let the hand-overs in flight finish (interrupting one between its
    // `attempt` and its outcome would leave the message unknown), bounded; then go.
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        stopping = true
        for (const messages of current) messages.stop()
      }).pipe(
        Effect.zipRight(Effect.logInfo("delivery draining")),
        Effect.zipRight(awaitDrained(fiber)),
        Effect.zipRight(interruptWithin(fiber)),
        Effect.flatMap((stopped) => (stopped ? Effect.void : Effect.logWarning("delivery: hand-overs still in flight at the end of the drain budget")))
      )
    )
  })
)
