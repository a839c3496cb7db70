import { cpSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { PASS_EVENT, PASS_MEMBER } from "../../engine/ingest/Passes.ts"
import { ROOT, tempDir } from "./engine.ts"
import type { EventInput } from "./nats.ts"

/**
 * A copy of the shipped journeys folder with textual edits to program.yaml (e.g. fixed RFM cut
 * points or a short recompute period), so a test runs the real file with only what it needs changed.
 * `programOnly`: program.yaml alone, no journeys or templates.
 */
export const journeysDir = (edits: ReadonlyArray<readonly [string, string]> = [], options: { readonly programOnly?: boolean } = {}): string => {
  const dir = tempDir("journeys")
  if (options.programOnly === true) cpSync(join(ROOT, "journeys", "program.yaml"), join(dir, "program.yaml"))
  else cpSync(join(ROOT, "journeys"), dir, { recursive: true })
  const file = join(dir, "program.yaml")
  let text = readFileSync(file, "utf8")
  for (const [from, to] of edits) {
    if (!text.includes(from)) throw new Error(`program.yaml has no "${from}" to edit`)
    text = text.replace(from, to)
  }
  writeFileSync(file, text)
  return dir
}

/**
 * The shipped program's quiet hours (21:00–09:00 member-local) hold back marketing SMS for half of
 * every day: a test that expects its marketing messages handed over at once removes them, or it
 * would pass or fail by the time of day it runs at.
 */
export const WITHOUT_QUIET_HOURS: readonly [string, string] = [
  `quietHours: { from: "21:00", to: "09:00", channels: [sms, wechat], then: defer }`,
  `# quietHours: none in this test`
]

/**
 * A broadcast to the English-speaking members on `cron`. By default a cron that never comes due
 * while a test runs: its only ticks are then the markers the test puts on the stream (`tickMarker`).
 */
export const broadcastJourney = (id: string, name: string, cron = "0 0 1 1 *"): string => `id: ${id}
name: ${name}
status: active
category: transactional
trigger: { schedule: { cron: "${cron}", timezone: Asia/Shanghai } }
audience: { attribute: locale, eq: en }
reentry: afterExit
steps:
  - id: announce
    send: { channel: sms, template: welcome }
`

/** A tick's marker for `journeyId`, as the engine that claims a tick puts it on the stream. */
export const tickMarker = (journeyId: string, tick: number): EventInput => ({
  id: `mf-pass-tick-${journeyId}-${tick}`,
  type: PASS_EVENT,
  memberId: PASS_MEMBER,
  occurredAt: new Date(tick).toISOString(),
  properties: { kind: "tick", journeyId, tick },
  source: "memberflow"
})
