import { Effect } from "effect"
import type { RfmCutpoints } from "../member/MemberState.ts"
import { Nats } from "../Nats.ts"
import { subjectOf, Topology } from "../Topology.ts"

/**
 * A pass over every member (the periodic sweep, a cron tick of a `schedule` journey) is itself an
 * event on the stream: one marker, published once by whichever engine claimed the pass. Each engine
 * runs it over the members of the partitions it owns when its reader reaches the marker, with the
 * marker's arrival as `now`. So a pass is ordered with the events around it, and a crash that replays
 * the stream from a checkpoint replays the pass too, instead of losing the changes it made.
 */
export const PASS_EVENT = "memberflow.pass"
/** The member id a marker carries (the envelope needs one); markers are never applied to a member. */
export const PASS_MEMBER = "memberflow"

/** Whether an event is a pass marker the engine published (an upstream event naming that member is not). */
export const isPassMarker = (event: { readonly type: string; readonly memberId: string; readonly source?: string | undefined }): boolean =>
  event.type === PASS_EVENT && event.memberId === PASS_MEMBER && event.source === "memberflow"

export type Pass =
  /** RFM with the cut points given (null: keep the ones in force), time-based re-evaluation, entry timers */
  | { readonly kind: "sweep"; readonly cutpoints: RfmCutpoints | null }
  /** a cron tick of a schedule journey */
  | { readonly kind: "tick"; readonly journeyId: string; readonly tick: number }

export const passOf = (properties: Readonly<Record<string, unknown>>): Pass | null => {
  if (properties["kind"] === "sweep") {
    const cut = properties["cutpoints"]
    return { kind: "sweep", cutpoints: typeof cut === "object" && cut !== null ? (cut as RfmCutpoints) : null }
  }
  if (properties["kind"] === "tick" && typeof properties["journeyId"] === "string" && typeof properties["tick"] === "number") {
    return { kind: "tick", journeyId: properties["journeyId"], tick: properties["tick"] }
  }
  return null
}

/** Publishes a pass marker; `id` is deterministic so that two engines publishing it make one. */
export const publishPass = (id: string, pass: Pass, now: number) =>
  Effect.gen(function* () {
    const { js, use } = yield* Nats
    const topology = yield* Topology
    const event = { id, type: PASS_EVENT, memberId: PASS_MEMBER, occurredAt: new Date(now).toISOString(), properties: pass, source: "memberflow" }
    yield* use("publish pass", () => js.publish(subjectOf(topology, PASS_EVENT), JSON.stringify(event), { msgID: id }))
  })
