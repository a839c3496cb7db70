import { readFileSync } from "node:fs"
import { join } from "node:path"
import { Either, Schema } from "effect"
import { parse } from "yaml"
import type { MemberEvent } from "../../../../schemas/Event.ts"
import { Journey } from "../../../../schemas/Journey.ts"
import type { Program } from "../../../../schemas/Program.ts"
import type { Member } from "../../../../engine/journeys/Machine.ts"
import { applyEvents, emptyState, type MemberContext } from "../../../../engine/member/MemberState.ts"
import { parseProgram } from "../../../../engine/program/ProgramFile.ts"

const ROOT = join(import.meta.dirname, "../../../..")

/** The shipped program.yaml, decoded the way the engine decodes it. */
export const program: Program = Either.getOrThrow(parseProgram(readFileSync(join(ROOT, "journeys/program.yaml"), "utf8"), "program.yaml"))
export const ctx: MemberContext = { program, cutpoints: null }

export const MINUTE = 60_000
export const HOUR = 3_600_000
export const DAY = 86_400_000
/** Monday 1 June 2026, noon in Shanghai. */
export const NOW = Date.parse("2026-06-01T12:00:00+08:00")

/** A journey from YAML text, decoded by the real schema. */
export const journey = (text: string): Journey => Schema.decodeUnknownSync(Journey)(parse(text))

/** A shipped journey file. */
export const shipped = (id: string): Journey => journey(readFileSync(join(ROOT, `journeys/${id}.yaml`), "utf8"))

let counter = 0
export const event = (memberId: string, type: string, at: number, properties: Record<string, unknown> = {}, id?: string): MemberEvent => ({
  id: id ?? `evt-${type}-${++counter}`,
  type,
  memberId,
  occurredAt: new Date(at).toISOString(),
  at,
  properties,
  source: undefined
})

export const registered = (memberId: string, at: number, attributes: Record<string, unknown> = {}): MemberEvent =>
  event(memberId, "member.registered", at, { consent: { sms: true, email: true, wechat: true }, ...attributes })

export const purchase = (memberId: string, amount: number, at: number): MemberEvent =>
  event(memberId, "purchase", at, { orderId: `o-${++counter}`, amount, currency: "CNY" })

/** A member after `events` (applied at `now`). */
export const member = (memberId: string, events: ReadonlyArray<MemberEvent>, now = NOW): Member => ({
  state: applyEvents(emptyState(memberId), events, ctx, now).state,
  ctx
})

/** The member with more events applied. */
export const withEvents = (m: Member, events: ReadonlyArray<MemberEvent>, now: number): Member => ({
  state: applyEvents(m.state, events, ctx, now).state,
  ctx
})

export const OPTIONS = { version: "v1", globalControl: 0 } as const

/** A minimal journey: `head` is the YAML before `steps:`, `steps` the step list. */
export const journeyWith = (head: string, steps: string): Journey =>
  journey(`id: test-journey
name: test
status: active
category: transactional
${head}
steps:
${steps}`)
