import { Either } from "effect"
import type { Templates } from "../engine/journeys/Templates.ts"
import { type RenderOptions, renderTemplate } from "../engine/journeys/Templates/Render.ts"
import type { Channel } from "../schemas/Program.ts"
import type { TemplateContext } from "../schemas/TemplateContext.ts"
import type { OutgoingMessage } from "./Channel.ts"
import { htmlToText } from "./email/HtmlText.ts"

/**
 * Rule 3 of channels.md: a message is rendered whole or not at all. Renders one channel's template
 * for a member into the message its provider takes; Left names the template and the variable.
 */

export interface Addressing {
  readonly messageId: string
  readonly memberId: string
  /** the member's contact point on this channel */
  readonly to: string
}

type Render = Omit<RenderOptions, "escape">

const failed = (channel: Channel, name: string, error: string) => `template ${channel}/${name}: ${error}`

export const compose = (
  templates: Templates,
  channel: Channel,
  name: string,
  context: TemplateContext,
  options: Render,
  address: Addressing
): Either.Either<OutgoingMessage, string> => {
  const text = (source: string, escape: boolean) =>
    Either.mapLeft(renderTemplate(source, context, { ...options, escape }), (error) => failed(channel, name, error))
  const base = { messageId: address.messageId, memberId: address.memberId }
  switch (channel) {
    case "email": {
      const template = templates.email.get(name)
      if (template === undefined) return Either.left(failed(channel, name, "no such template"))
      // The subject is a header, not HTML: rendered as written; the body is HTML-escaped.
      // (Plain checks, not Either.gen: a generator per message was a noticeable share of sending.)
      const subject = text(template.subject, false)
      if (Either.isLeft(subject)) return Either.left(subject.left)
      const html = text(template.html, true)
      if (Either.isLeft(html)) return Either.left(html.left)
      return Either.right({
        ...base,
        channel: "email" as const,
        to: address.to,
        subject: subject.right.trim(),
        html: html.right,
        text: htmlToText(html.right),
        unsubscribe: context.unsubscribeUrl,
        ...(template.from === undefined ? {} : { from: template.from }),
        ...(template.replyTo === undefined ? {} : { replyTo: template.replyTo })
      })
    }
    case "sms": {
      const template = templates.sms.get(name)
      if (template === undefined) return Either.left(failed(channel, name, "no such template"))
      return Either.map(text(template.text, false), (body) => ({ ...base, channel: "sms" as const, to: address.to, body: body.trim() }))
    }
    case "wechat": {
      const template = templates.wechat.get(name)
      if (template === undefined) return Either.left(failed(channel, name, "no such template"))
      // Rendered in this order, the first failure named (as Either.gen did).
      const data: Record<string, string> = {}
      for (const [key, value] of Object.entries(template.data)) {
        const rendered = text(value, false)
        if (Either.isLeft(rendered)) return Either.left(rendered.left)
        data[key] = rendered.right
      }
      const url = template.url === undefined ? undefined : text(template.url, false)
      if (url !== undefined && Either.isLeft(url)) return Either.left(url.left)
      const page = template.page === undefined ? undefined : text(template.page, false)
      if (page !== undefined && Either.isLeft(page)) return Either.left(page.left)
      const pagepath = template.miniprogram === undefined ? undefined : text(template.miniprogram.pagepath, false)
      if (pagepath !== undefined && Either.isLeft(pagepath)) return Either.left(pagepath.left)
      const miniprogram = template.miniprogram === undefined || pagepath === undefined ? undefined : { appid: template.miniprogram.appid, pagepath: pagepath.right }
      return Either.right({
        ...base,
        channel: "wechat" as const,
        kind: template.kind,
        touser: address.to,
        templateId: template.templateId,
        data,
        ...(url === undefined ? {} : { url: url.right }),
        ...(page === undefined ? {} : { page: page.right }),
        ...(miniprogram === undefined ? {} : { miniprogram })
      })
    }
  }
}

/** The WeChat template a send would use, when it is a subscribe message (it needs a credit). */
export const subscribeTemplateId = (templates: Templates, name: string): string | null => {
  const template = templates.wechat.get(name)
  return template !== undefined && template.kind === "subscribe" ? template.templateId : null
}
