import { HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { Clock, Effect, Either } from "effect"
import type { Channel } from "../schemas/Program.ts"
import { brandConfig } from "./journeys/Context.ts"
import { derivedId } from "./member/MemberState/Ids.ts"
import { Nats } from "./Nats.ts"
import { escapeHtml } from "./report/Html.ts"
import { subjectOf, Topology } from "./Topology.ts"
import { checkLink, type LinkCheck } from "./UnsubscribeLink.ts"

/**
 * `/unsubscribe`, where members follow the links in their messages (engine/UnsubscribeLink.ts).
 *
 * `GET` shows a page that asks to confirm and changes nothing: mail scanners and link previews
 * fetch links on their own, and would otherwise opt members out. `POST` opts out: the page's button,
 * and a mail client's one-click unsubscribe (RFC 8058, body `List-Unsubscribe=One-Click`). The
 * opt-out is a `consent.updated` event on the stream (events.md): it takes effect before any later
 * send, like one from upstream, and is in the member's history and in `events`.
 *
 * The page that says it is done offers to undo it (a member who clicked by mistake): a button that
 * posts the same signed link to `/resubscribe`, which grants the channel's consent again the same
 * way. Only a POST changes anything there too, and only with a link signed for that member.
 */

const CHANNEL_NAMES: Record<Channel, { readonly zh: string; readonly en: string }> = {
  email: { zh: "電子郵件", en: "emails" },
  sms: { zh: "短信", en: "text messages" },
  wechat: { zh: "微信消息", en: "WeChat messages" }
}

const page = (status: number, title: string, body: string) =>
  HttpServerResponse.text(
    `<!doctype html><html lang="zh-Hant"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><meta name="robots" content="noindex"><title>${escapeHtml(title)}</title></head>` +
      `<body style="font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem;color:#222">${body}</body></html>\n`,
    { status, contentType: "text/html; charset=utf-8", headers: { "cache-control": "no-store", "referrer-policy": "no-referrer" } }
  )

/** The query of the request's URL (path-relative: the host is not needed). */
const queryOf = (url: string): URLSearchParams => new URL(url, "http://unsubscribe.invalid").searchParams

const refused = (check: Extract<LinkCheck, { ok: false }>) => page(check.status, "Unsubscribe", `<p>${escapeHtml(check.reason)}</p>`)

const notConfigured = page(404, "Unsubscribe", "<p>Unsubscribe links are not set up on this server (MEMBERFLOW_UNSUBSCRIBE_KEY).</p>")

/** The request's link, checked: the member, the channel and the brand's name for the page, or the answer that refuses it. */
const linkOf = Effect.gen(function* () {
  const request = yield* HttpServerRequest.HttpServerRequest
  // The brand as messages are rendered with it: its name and the key their links were signed with.
  const brand = yield* brandConfig.pipe(Effect.orElseSucceed(() => null))
  if (brand === null || brand.unsubscribeKey === null) return Either.left(notConfigured)
  const query = queryOf(request.url)
  const check = checkLink(brand.unsubscribeKey, query)
  if (!check.ok) return Either.left(refused(check))
  // The link as checked, for the form that posts it on (the undo): its three parameters only.
  const signed = new URLSearchParams({ member: check.memberId, channel: check.channel, sig: query.get("sig") ?? "" }).toString()
  return Either.right({ memberId: check.memberId, channel: check.channel, signed, brand: escapeHtml(brand.name), names: CHANNEL_NAMES[check.channel] })
})

/** `GET /unsubscribe`: the confirmation page; nothing changes. */
export const unsubscribePage = Effect.gen(function* () {
  const link = yield* linkOf
  if (Either.isLeft(link)) return link.left
  const { brand, names } = link.right
  // The form posts to this same URL (its query carries the signed link).
  return page(
    200,
    "取消訂閱 · Unsubscribe",
    `<h1 style="font-size:1.3rem">取消訂閱 · Unsubscribe</h1>` +
      `<p>不再接收 ${brand} 的${names.zh}？</p><p>Stop receiving ${names.en} from ${brand}?</p>` +
      `<form method="post"><button type="submit" style="font-size:1rem;padding:.5rem 1.2rem">確認取消訂閱 · Unsubscribe</button></form>`
  )
})

/** The member's consent for `channel`, as a `consent.updated` event from memberflow; false when NATS did not take it. */
const publishConsent = (memberId: string, channel: Channel, granted: boolean, via: string) =>
  Effect.gen(function* () {
    const { js, use } = yield* Nats
    const topology = yield* Topology
    const now = yield* Clock.currentTimeMillis
    const type = "consent.updated"
    const id = derivedId(granted ? "resubscribe" : "unsubscribe", memberId, channel, now)
    const event = { id, type, memberId, occurredAt: new Date(now).toISOString(), properties: { channel, granted, via }, source: "memberflow" }
    const published = yield* use(`publish ${type}`, () => js.publish(subjectOf(topology, type), JSON.stringify(event), { msgID: id })).pipe(Effect.either)
    if (published._tag === "Left") {
      yield* Effect.logWarning(granted ? "a resubscribe could not be published" : "an unsubscribe could not be published").pipe(
        Effect.annotateLogs({ error: String(published.left) })
      )
      return false
    }
    yield* Effect.logInfo(granted ? "member resubscribed through a link" : "member unsubscribed through a link").pipe(Effect.annotateLogs({ channel, event: id }))
    return true
  })

const notRecorded = page(503, "Unsubscribe", "<p>We could not record this right now. Please try again in a minute.</p>")

/** `POST /unsubscribe`: the opt-out, published as `consent.updated` (a mail client's one-click or the page's button). */
export const unsubscribe = Effect.gen(function* () {
  const link = yield* linkOf
  if (Either.isLeft(link)) return link.left
  const { memberId, channel, signed, brand, names } = link.right
  if (!(yield* publishConsent(memberId, channel, false, "unsubscribe link"))) return notRecorded
  // The undo posts the same link to /resubscribe, relative to this path (a prefix before it kept).
  return page(
    200,
    "已取消訂閱 · Unsubscribed",
    `<h1 style="font-size:1.3rem">已取消訂閱 · Unsubscribed</h1><p>您將不再收到 ${brand} 的${names.zh}。</p><p>You will no longer receive ${names.en} from ${brand}.</p>` +
      `<p style="margin-top:2rem;color:#555">不小心取消了？ · Unsubscribed by mistake?</p>` +
      `<form method="post" action="resubscribe?${escapeHtml(signed)}"><button type="submit" style="font-size:.9rem;padding:.4rem 1rem">重新訂閱 · Resubscribe</button></form>`
  )
})

/** `POST /resubscribe`: the undo of an unsubscribe, the channel's consent granted again by the member's own signed link. */
export const resubscribe = Effect.gen(function* () {
  const link = yield* linkOf
  if (Either.isLeft(link)) return link.left
  const { memberId, channel, brand, names } = link.right
  if (!(yield* publishConsent(memberId, channel, true, "unsubscribe link, undone"))) return notRecorded
  return page(
    200,
    "已重新訂閱 · Subscribed again",
    `<h1 style="font-size:1.3rem">已重新訂閱 · Subscribed again</h1><p>您將再次收到 ${brand} 的${names.zh}。</p><p>You will receive ${names.en} from ${brand} again.</p>`
  )
})
