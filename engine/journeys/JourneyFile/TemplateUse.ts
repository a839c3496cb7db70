import * as path from "node:path"
import type { Journey, Send } from "../../../schemas/Journey.ts"
import type { Channel } from "../../../schemas/Program.ts"
import type { SourceIssue } from "../../../schemas/ProgramErrors.ts"
import type { YamlPath } from "../../program/YamlDocument.ts"
import { closest } from "../../program/YamlDocument/Suggest.ts"
import { type Templates, templatePath } from "../Templates.ts"
import type { At } from "./StepGraph.ts"

/**
 * Every template a journey can send exists for every channel it can go out on: the step's channel,
 * each fallback channel, and the same again for each variant's template. A `marketing` journey
 * sending a WeChat template message (service notices only, under WeChat's rules) is warned about.
 */

export interface TemplateFiles {
  /** names of the template files present per channel, including those that failed their own checks */
  readonly present: Readonly<Record<Channel, ReadonlySet<string>>>
  readonly parsed: Templates
}

interface Use {
  readonly channel: Channel
  readonly name: string
  /** where to point: the template name, or the fallback channel that needs it */
  readonly path: YamlPath
  readonly viaFallback: boolean
}

const usesOf = (send: Send, base: YamlPath): Array<Use> => {
  const names: Array<readonly [string, YamlPath]> = [
    [send.template, [...base, "template"]],
    ...Object.entries(send.variant ?? {}).map(([variant, o]): readonly [string, YamlPath] => [o.template, [...base, "variant", variant, "template"]])
  ]
  return names.flatMap(([name, path]) => [
    { channel: send.channel, name, path, viaFallback: false },
    ...send.fallback.map((channel, k) => ({ channel, name, path: [...base, "fallback", k], viaFallback: true }))
  ])
}

export const checkTemplateUse = (
  journey: Journey,
  dir: string,
  files: TemplateFiles,
  at: At
): { readonly errors: Array<SourceIssue>; readonly warnings: Array<SourceIssue> } => {
  const errors: Array<SourceIssue> = []
  const warnings: Array<SourceIssue> = []
  const reported = new Set<string>()
  journey.steps.forEach((step, i) => {
    if (!("send" in step)) return
    for (const use of usesOf(step.send, ["steps", i, "send"])) {
      const present = files.present[use.channel]
      const file = path.join(dir, templatePath(use.channel, use.name))
      if (!present.has(use.name)) {
        const key = `${i}|${use.channel}|${use.name}`
        if (reported.has(key)) continue
        reported.add(key)
        const hint = closest(use.name, present)
        const suggestion = hint === undefined ? "" : ` (did you mean "${hint}"?)`
        errors.push(
          at(
            use.path,
            use.viaFallback
              ? `fallback channel ${use.channel} needs template "${use.name}": ${file} does not exist${suggestion}`
              : `template "${use.name}" not found: ${file} does not exist${suggestion}`
          )
        )
        continue
      }
      const wechat = use.channel === "wechat" ? files.parsed.wechat.get(use.name) : undefined
      if (journey.category === "marketing" && wechat?.kind === "template") {
        warnings.push(
          at(
            use.path,
            `"${use.name}" is a WeChat template message, which WeChat allows for service notices only; this journey is marketing: use a subscribe message (kind: subscribe) or make the journey transactional`
          )
        )
      }
    }
  })
  return { errors, warnings }
}
