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
      return Either.gen(function* () {
        const subject = yield* text(template.subject, false)
        const html = yield* text(template.html, true)
        return {
          ...base,
          channel: "email" as const,
          to: address.to,
          subject: subject.trim(),
          html,
          text: htmlToText(html),
          unsubscribe: context.unsubscribeUrl,
          ...(template.from === undefined ? {} : { from: template.from }),
          ...(template.replyTo === undefined ? {} : { replyTo: template.replyTo })
        }
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
      return Either.gen(function* () {
        const data: Record<string, string> = {}
        for (const [key, value] of Object.entries(template.data)) data[key] = yield* text(value, false)
        const url = template.url === undefined ? undefined : yield* text(template.url, false)
        const page = template.page === undefined ? undefined : yield* text(template.page, false)
        const miniprogram =
          template.miniprogram === undefined ? undefined : { appid: template.miniprogram.appid, pagepath: yield* text(template.miniprogram.pagepath, false) }
        return {
          ...base,
          channel: "wechat" as const,
          kind: template.kind,
          touser: address.to,
          templateId: template.templateId,
          data,
          ...(url === undefined ? {} : { url }),
          ...(page === undefined ? {} : { page }),
          ...(miniprogram === undefined ? {} : { miniprogram })
        }
      })
    }
  }
}

/** The WeChat template a send would use, when it is a subscribe message (it needs a credit). */
export const subscribeTemplateId = (templates: Templates, name: string): string | null => {
  const template = templates.wechat.get(name)
  return template !== undefined && template.kind === "subscribe" ? template.templateId : null
}
