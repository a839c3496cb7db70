import { readdir, readFile } from "node:fs/promises"
import * as path from "node:path"
import { Effect, Either, Schema } from "effect"
import type { Channel } from "../../schemas/Program.ts"
import type { SourceIssue } from "../../schemas/ProgramErrors.ts"
import { decodeSource, issueAt, parseYaml, type YamlPath, type YamlSource } from "../program/YamlDocument.ts"
import { checkHandlebars, type CheckedText } from "./Templates/HandlebarsCheck.ts"
import { smsCost } from "./Templates/SmsSegments.ts"

/**
 * Message templates under `<journeys>/templates/` (channels.md): found, parsed and checked, each
 * problem at `file:line:column`.
 * - `email/<name>.hbs`: YAML front matter (`subject`, `from?`, `replyTo?`) between `---` lines, then an HTML body
 * - `sms/<name>.hbs`: plain text (trailing whitespace is not sent)
 * - `wechat/<name>.yaml`: `kind` template|subscribe, `templateId`, `url`/`miniprogram` (template) or
 *   `page` (subscribe), and `data` whose values are Handlebars strings
 */

export const TEMPLATE_CHANNELS: ReadonlyArray<Channel> = ["email", "sms", "wechat"]
const EXTENSION: Record<Channel, string> = { email: ".hbs", sms: ".hbs", wechat: ".yaml" }

/** Where a template lives, relative to the journeys folder. */
export const templatePath = (channel: Channel, name: string): string => path.join("templates", channel, `${name}${EXTENSION[channel]}`)

export const EmailFrontMatter = Schema.Struct({
  subject: Schema.String.pipe(Schema.minLength(1)),
  from: Schema.optional(Schema.String),
  replyTo: Schema.optional(Schema.String)
})

export const WechatTemplateFile = Schema.Struct({
  $schema: Schema.optional(Schema.String),
  kind: Schema.Literal("template", "subscribe"),
  templateId: Schema.String.pipe(Schema.minLength(1)),
  url: Schema.optional(Schema.String),
  page: Schema.optional(Schema.String),
  miniprogram: Schema.optional(Schema.Struct({ appid: Schema.String, pagepath: Schema.String })),
  data: Schema.Record({ key: Schema.String, value: Schema.String })
})

interface TemplateBase {
  readonly name: string
  readonly file: string
  /** the context variables it uses */
  readonly variables: ReadonlyArray<string>
}
export interface EmailTemplate extends TemplateBase {
  readonly channel: "email"
  readonly subject: string
  readonly from?: string
  readonly replyTo?: string
  readonly html: string
}
export interface SmsTemplate extends TemplateBase {
  readonly channel: "sms"
  readonly text: string
}
export interface WechatTemplate extends TemplateBase, Omit<typeof WechatTemplateFile.Type, "$schema"> {
  readonly channel: "wechat"
}
export type Template = EmailTemplate | SmsTemplate | WechatTemplate

export interface Templates {
  readonly email: ReadonlyMap<string, EmailTemplate>
  readonly sms: ReadonlyMap<string, SmsTemplate>
  readonly wechat: ReadonlyMap<string, WechatTemplate>
}

export interface TemplateSource {
  readonly channel: Channel
  readonly name: string
  /** the path issues are labelled with */
  readonly file: string
  readonly text: string
}

export interface Checked<A> {
  readonly value: A | undefined
  readonly errors: ReadonlyArray<SourceIssue>
  readonly warnings: ReadonlyArray<SourceIssue>
}

/** Reads every template file; unreadable files and stray extensions are reported, never fatal. */
export const readTemplateSources = (dir: string): Effect.Effect<Checked<ReadonlyArray<TemplateSource>>> =>
  Effect.gen(function* () {
    const sources: Array<TemplateSource> = []
    const errors: Array<SourceIssue> = []
    const warnings: Array<SourceIssue> = []
    for (const channel of TEMPLATE_CHANNELS) {
      const folder = path.join(dir, "templates", channel)
      const entries = yield* Effect.tryPromise(() => readdir(folder, { withFileTypes: true })).pipe(
        Effect.catchAll(({ error }) => {
          // a channel with no folder simply has no templates; anything else is worth saying
          const missing = error instanceof Error && "code" in error && error.code === "ENOENT"
          if (!missing) errors.push({ file: folder, line: 1, column: 1, message: `cannot read the templates: ${String(error)}` })
          return Effect.succeed([])
        })
      )
      for (const entry of entries.filter((e) => e.isFile()).sort((a, b) => a.name.localeCompare(b.name))) {
        const file = path.join(folder, entry.name)
        if (!entry.name.endsWith(EXTENSION[channel])) {
          warnings.push({ file, line: 1, column: 1, message: `ignored: ${channel} templates are named <name>${EXTENSION[channel]}` })
          continue
        }
        const text = yield* Effect.tryPromise(() => readFile(file, "utf8")).pipe(Effect.either)
        if (Either.isLeft(text)) errors.push({ file, line: 1, column: 1, message: `cannot read the template: ${String(text.left.error)}` })
        else sources.push({ channel, name: entry.name.slice(0, -EXTENSION[channel].length), file, text: text.right })
      }
    }
    return { value: sources, errors, warnings }
  })

/** Parses and checks every template; those with errors are left out of the result. */
export const parseTemplates = (sources: ReadonlyArray<TemplateSource>): Checked<Templates> => {
  const email = new Map<string, EmailTemplate>()
  const sms = new Map<string, SmsTemplate>()
  const wechat = new Map<string, WechatTemplate>()
  const errors: Array<SourceIssue> = []
  const warnings: Array<SourceIssue> = []
  for (const source of sources) {
    const checked = parseTemplate(source)
    errors.push(...checked.errors)
    warnings.push(...checked.warnings)
    const template = checked.value
    if (template === undefined || checked.errors.length > 0) continue
    if (template.channel === "email") email.set(template.name, template)
    else if (template.channel === "sms") sms.set(template.name, template)
    else wechat.set(template.name, template)
  }
  return { value: { email, sms, wechat }, errors, warnings }
}

export const parseTemplate = (source: TemplateSource): Checked<Template> => {
  switch (source.channel) {
    case "email":
      return parseEmail(source)
    case "sms":
      return parseSms(source)
    case "wechat":
      return parseWechat(source)
  }
}

/** Reads and parses `<dir>/templates`. */
export const loadTemplates = (dir: string): Effect.Effect<Checked<Templates>> =>
  Effect.map(readTemplateSources(dir), (read) => {
    const parsed = parseTemplates(read.value ?? [])
    return { value: parsed.value, errors: [...read.errors, ...parsed.errors], warnings: [...read.warnings, ...parsed.warnings] }
  })

// ---------------------------------------------------------------------------------------------- kinds

const parseSms = (source: TemplateSource): Checked<SmsTemplate> => {
  const text = source.text.trimEnd()
  const checked = checkHandlebars(text)
  const errors = checked.problems.map((p) => ({ file: source.file, line: p.line, column: p.column, message: p.message }))
  const warnings: Array<SourceIssue> = []
  if (text.length === 0) errors.push({ file: source.file, line: 1, column: 1, message: "an SMS template cannot be empty" })
  else if (errors.length === 0) warnings.push(...segmentWarnings(source.file, checked))
  return { value: { channel: "sms", name: source.name, file: source.file, text, variables: checked.variables }, errors, warnings }
}

const segmentWarnings = (file: string, checked: CheckedText): Array<SourceIssue> => {
  const fixed = smsCost(checked.staticText.trim())
  const typical = smsCost(checked.typicalText.trim())
  const at = (message: string): SourceIssue => ({ file, line: 1, column: 1, message })
  const what = (encoding: string) => (encoding === "UCS-2" ? "UCS-2 (Chinese or other non-GSM text)" : "GSM-7")
  if (fixed.segments > 1) {
    return [at(`the fixed text alone is ${fixed.length} characters of ${what(fixed.encoding)}, over one SMS segment (${fixed.singleLimit}): it will be sent as ${fixed.segments} segments`)]
  }
  if (typical.segments > 1) {
    return [at(`with typical values this SMS is ${typical.length} characters of ${what(typical.encoding)}, over one segment (${typical.singleLimit}): it may be sent as ${typical.segments} segments`)]
  }
  return []
}

const FRONT_MATTER = /^---[ \t]*\r?\n([\s\S]*?)\r?\n---[ \t]*(?:\r?\n|$)/

const parseEmail = (source: TemplateSource): Checked<EmailTemplate> => {
  const { file } = source
  const match = FRONT_MATTER.exec(source.text)
  if (match === null) {
    const message = 'an email template starts with front matter: a line "---", "subject: …", then "---" and the HTML body'
    return { value: undefined, errors: [{ file, line: 1, column: 1, message }], warnings: [] }
  }
  const frontText = match[1] ?? ""
  const html = source.text.slice(match[0].length)
  const bodyLine = match[0].split("\n").length - (match[0].endsWith("\n") ? 1 : 0) + 1
  // the front matter starts on line 2: shift its positions by the opening "---"
  const shift = (issue: SourceIssue): SourceIssue => ({ ...issue, line: issue.line + 1 })
  const front = Either.flatMap(parseYaml(frontText, file), (yaml) => Either.map(decodeSource(EmailFrontMatter, yaml), (value) => ({ yaml, value })))
  if (Either.isLeft(front)) return { value: undefined, errors: front.left.map(shift), warnings: [] }
  const { yaml, value } = front.right
  const subject = checkField(yaml, ["subject"], value.subject)
  const body = checkHandlebars(html)
  const errors = [
    ...subject.errors.map(shift),
    ...body.problems.map((p) => ({ file, line: p.line + bodyLine - 1, column: p.column, message: p.message }))
  ]
  if (html.trim().length === 0) errors.push({ file, line: bodyLine, column: 1, message: "the email has no body after its front matter" })
  const template: EmailTemplate = {
    channel: "email",
    name: source.name,
    file,
    subject: value.subject,
    ...(value.from === undefined ? {} : { from: value.from }),
    ...(value.replyTo === undefined ? {} : { replyTo: value.replyTo }),
    html,
    variables: [...new Set([...subject.variables, ...body.variables])]
  }
  return { value: template, errors, warnings: [] }
}

const parseWechat = (source: TemplateSource): Checked<WechatTemplate> => {
  const decoded = Either.flatMap(parseYaml(source.text, source.file), (yaml) =>
    Either.map(decodeSource(WechatTemplateFile, yaml), (value) => ({ yaml, value }))
  )
  if (Either.isLeft(decoded)) return { value: undefined, errors: decoded.left, warnings: [] }
  const { yaml, value } = decoded.right
  const errors: Array<SourceIssue> = []
  const variables: Array<string> = []
  const field = (at: YamlPath, text: string | undefined) => {
    if (text === undefined) return
    const checked = checkField(yaml, at, text)
    errors.push(...checked.errors)
    variables.push(...checked.variables)
  }
  if (value.kind === "subscribe") {
    if (value.url !== undefined) errors.push(issueAt(yaml, ["url"], "a subscribe message opens a mini-program page: use page, not url", "key"))
    if (value.miniprogram !== undefined) errors.push(issueAt(yaml, ["miniprogram"], "a subscribe message opens a mini-program page: use page, not miniprogram", "key"))
  } else if (value.page !== undefined) {
    errors.push(issueAt(yaml, ["page"], "a template message links with url or miniprogram: { appid, pagepath }, not page", "key"))
  }
  if (Object.keys(value.data).length === 0) errors.push(issueAt(yaml, ["data"], "data needs at least one field, e.g. thing1: \"{{member.name}}\""))
  field(["url"], value.url)
  field(["page"], value.page)
  field(["miniprogram", "pagepath"], value.miniprogram?.pagepath)
  for (const [key, text] of Object.entries(value.data)) field(["data", key], text)
  const { $schema: _, ...fields } = value
  return { value: { ...fields, channel: "wechat", name: source.name, file: source.file, variables: [...new Set(variables)] }, errors, warnings: [] }
}

/** A Handlebars string held in a YAML value: its problems point at the value. */
const checkField = (yaml: YamlSource, at: YamlPath, text: string): { errors: Array<SourceIssue>; variables: ReadonlyArray<string> } => {
  const checked = checkHandlebars(text)
  return { errors: checked.problems.map((p) => issueAt(yaml, at, p.message)), variables: checked.variables }
}
