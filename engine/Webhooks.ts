import { HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { Clock, Config, Effect, Either, Option } from "effect"
import { callbackMessageId, decodeTwilioStatusCallback, formParams, verifyTwilioSignature } from "../channels/sms/TwilioWebhook.ts"
import { Clickhouse } from "./Clickhouse.ts"
import { type LedgerEntry, type LedgerStatus, MessageLedger, rowOf, rowTime } from "./Delivery/Ledger.ts"
import { derivedId } from "./member/MemberState/Ids.ts"
import { Nats } from "./Nats.ts"
import { subjectOf, Topology } from "./Topology.ts"

/**
 * Provider status callbacks (channels.md): `POST /webhooks/twilio?messageId=…` moves a message to
 * `sent`, `delivered` or `failed`, only with a valid `X-Twilio-Signature` over the public URL
 * (MEMBERFLOW_PUBLIC_URL + path) and the form. A status is applied once and never goes back: a
 * replay of one already applied changes nothing (200, `changed: false`), a late one that would move
 * the message backwards is refused (409). Each change is also published
 * as `message.delivered` / `message.failed` (events.md) so journeys and engagement see it.
 */

const json = (status: number, body: unknown) => HttpServerResponse.unsafeJson(body, { status })

const RANK: Partial<Record<LedgerStatus, number>> = { attempt: 0, retry: 0, sent: 1, delivered: 2, failed: 2 }

const target = (status: string): "sent" | "delivered" | "failed" | null => {
  switch (status) {
    case "sent":
      return "sent"
    case "delivered":
    case "read":
      return "delivered"
    case "undelivered":
    case "failed":
      return "failed"
    default:
      // queued, accepted, sending, scheduled…: nothing to record yet
      return null
  }
}

export const twilioStatusCallback = Effect.gen(function* () {
  const request = yield* HttpServerRequest.HttpServerRequest
  const authToken = yield* Config.option(Config.redacted("TWILIO_AUTH_TOKEN"))
  const publicUrl = yield* Config.option(Config.string("MEMBERFLOW_PUBLIC_URL"))
  if (Option.isNone(authToken) || Option.isNone(publicUrl)) {
    return json(404, { error: "Twilio status callbacks need TWILIO_AUTH_TOKEN and MEMBERFLOW_PUBLIC_URL" })
  }
  const body = yield* request.text.pipe(Effect.orElseSucceed(() => ""))
  const params = formParams(body)
  const url = `${publicUrl.value.replace(/\/$/, "")}${request.url}`
  if (!verifyTwilioSignature({ authToken: authToken.value, url, params, signature: request.headers["x-twilio-signature"] })) {
    yield* Effect.logWarning("twilio callback refused: bad signature").pipe(Effect.annotateLogs({ path: request.url.split("?")[0] }))
    return json(403, { error: "invalid X-Twilio-Signature" })
  }
  const decoded = decodeTwilioStatusCallback(params)
  if (Either.isLeft(decoded)) return json(400, { error: decoded.left.message })
  const messageId = callbackMessageId(request.url)
  if (Option.isNone(messageId)) return json(400, { error: "the callback URL carries no messageId" })
  const status = target(decoded.right.status)
  if (status === null) return json(200, { changed: false })

  const { js, use } = yield* Nats
  const topology = yield* Topology
  const clickhouse = yield* Clickhouse
  const ledger = yield* MessageLedger
  for (let round = 0; round < 5; round++) {
    const stored = yield* ledger.read(messageId.value)
    const entry = stored.entry
    if (entry === null) return json(404, { error: "no such message" })
    // The same status again (Twilio's own `sent` after the API answered, or a replay) is answered
    // 200 and changes nothing; one that would move the message backwards is refused.
    if (entry.status === status) return json(200, { changed: false, status })
    if ((RANK[entry.status] ?? 3) >= (RANK[status] ?? 0) || entry.status === "suppressed") {
      return json(409, { error: `already ${entry.status}: a late callback changes nothing` })
    }
    const now = yield* Clock.currentTimeMillis
    const code = decoded.right.errorCode
    const next: LedgerEntry = {
      ...entry,
      status,
      // after the row it replaces (the greatest `updated_at` wins), whatever the clocks said
      at: Math.max(now, rowTime(entry) + 1),
      providerMessageId: decoded.right.messageSid,
      ...(status === "failed" ? { reason: `twilio ${decoded.right.status}${code === undefined ? "" : ` ${code}`}` } : {})
    }
    if ((yield* ledger.write(messageId.value, next, stored.revision)) === null) continue
    yield* clickhouse.insert("messages", [rowOf(next)])
    if (status !== "sent") {
      const type = status === "delivered" ? "message.delivered" : "message.failed"
      const id = derivedId("webhook", messageId.value, status)
      const event = {
        id,
        type,
        memberId: entry.row.member_id,
        occurredAt: new Date(now).toISOString(),
        properties: { messageId: messageId.value, channel: "sms", ...(next.reason === undefined || status !== "failed" ? {} : { reason: next.reason }) },
        source: "memberflow"
      }
      yield* use(`publish ${type}`, () => js.publish(subjectOf(topology, type), JSON.stringify(event), { msgID: id }))
    }
    return json(200, { changed: true, status })
  }
  return json(503, { error: "the message is being updated; try again" })
})
