import { copyFileSync, mkdirSync, writeFileSync } from "node:fs"
import { dirname, join } from "node:path"
import { ROOT, tempDir } from "../../support/engine.ts"

/** A small journey that validates cleanly with TEMPLATES; tests break one thing at a time. */
export const VALID_JOURNEY = `id: spring-sale
name: 春季特賣
status: active
category: marketing
trigger:
  schedule: { cron: "0 10 * * 1", timezone: Asia/Shanghai }
audience:
  all:
    - { attribute: tier, in: [gold, diamond] }
    - { consent: any }
experiment:
  control: 10
  variants:
    - { id: plain, weight: 50 }
    - { id: bold, weight: 50 }
steps:
  - id: announce
    send:
      channel: sms
      template: spring-sale
      fallback: [email]
      variant: { bold: { template: spring-sale-bold } }
  - { id: pause, wait: 2d }
  - id: check
    branch:
      - { when: { event: purchase, since: entry }, goto: done }
      - { else: true, goto: remind }
  - id: remind
    send: { channel: email, template: spring-sale }
  - { id: done, exit: true }
`

const email = (subject: string, body: string) => `---\nsubject: "${subject}"\n---\n<p>${body}</p>\n`

export const TEMPLATES: Readonly<Record<string, string>> = {
  "templates/sms/spring-sale.hbs": "【{{brand.name}}】{{member.name}}，春季特賣開始了。回T退訂\n",
  "templates/sms/spring-sale-bold.hbs": "【{{brand.name}}】{{member.name}}，全場8折，只限本週！回T退訂\n",
  "templates/email/spring-sale.hbs": email("春季特賣 {{member.tierName}}", "{{member.name}}，春季特賣開始了。<a href=\"{{unsubscribeUrl}}\">退訂</a>"),
  "templates/email/spring-sale-bold.hbs": email("全場8折", "{{member.name}}，全場8折。")
}

/**
 * A journeys folder in a fresh temp dir: the shipped program.yaml plus `files` (paths relative to
 * the folder; a `null` content leaves the file out). Returns the folder.
 */
export const journeysFolder = (files: Readonly<Record<string, string | null>>): string => {
  const dir = tempDir("journeys-check")
  copyFileSync(join(ROOT, "journeys/program.yaml"), join(dir, "program.yaml"))
  for (const [file, text] of Object.entries(files)) {
    if (text === null) continue
    mkdirSync(dirname(join(dir, file)), { recursive: true })
    writeFileSync(join(dir, file), text)
  }
  return dir
}

/** The valid journey and its templates, with some files replaced or removed. */
export const validFolder = (changes: Readonly<Record<string, string | null>> = {}): string =>
  journeysFolder({ "spring-sale.yaml": VALID_JOURNEY, ...TEMPLATES, ...changes })

/** 1-based `line:column` of the nth (0-based) occurrence of `needle` in `text`. */
export const positionOf = (text: string, needle: string, occurrence = 0): string => {
  let offset = -1
  for (let i = 0; i <= occurrence; i++) {
    offset = text.indexOf(needle, offset + 1)
    if (offset < 0) throw new Error(`"${needle}" not found`)
  }
  const before = text.slice(0, offset).split("\n")
  return `${before.length}:${(before[before.length - 1]?.length ?? 0) + 1}`
}

/** Replaces exactly one occurrence, failing loudly when the fixture no longer has it. */
export const edit = (text: string, from: string, to: string): string => {
  if (!text.includes(from)) throw new Error(`fixture has no "${from}"`)
  return text.replace(from, to)
}
