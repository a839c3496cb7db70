import { Config, Effect, Schema } from "effect"
import { Journey } from "../schemas/Journey.ts"
import { shortHash } from "./member/MemberState/Ids.ts"
import type { LoadedJourney } from "./journeys/Apply.ts"
import { loadJourneys } from "./journeys/JourneyFile.ts"

const encodeJourney = Schema.encodeSync(Journey)

/**
 * The journeys the engine runs: every active or paused journey in JOURNEYS_DIR, validated at start
 * (an invalid folder stops the engine with `file:line:column` errors). Draft journeys are ignored.
 */
export class JourneyRuntime extends Effect.Service<JourneyRuntime>()("memberflow/JourneyRuntime", {
  effect: Effect.gen(function* () {
    const dir = yield* Config.string("JOURNEYS_DIR").pipe(Config.withDefault("./journeys"))
    const loaded = yield* loadJourneys(dir)
    const journeys: ReadonlyArray<LoadedJourney> = loaded.journeys
      .filter((journey) => journey.status !== "draft")
      .map((journey) => ({ journey, version: shortHash(JSON.stringify(encodeJourney(journey)), 10) }))
    for (const warning of loaded.warnings) {
      yield* Effect.logWarning(`${warning.file}:${warning.line}:${warning.column}: ${warning.message}`)
    }
    yield* Effect.logInfo("journeys loaded").pipe(
      Effect.annotateLogs({ journeys: journeys.map((j) => `${j.journey.id}@${j.version}`).join(", "), channels: "sandbox" })
    )
    return { journeys } as const
  })
}) {}
