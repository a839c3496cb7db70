import type { KV } from "@nats-io/kv"
import { Clock, Config, Effect, Ref, Schedule } from "effect"
import type { Program } from "../schemas/Program.ts"
import { type MemberContext, type RfmCutpoints } from "./member/MemberState.ts"
import { fixedCutpoints } from "./member/Rfm.ts"
import { Nats } from "./Nats.ts"
import { loadProgram } from "./program/ProgramFile.ts"
import { Topology } from "./Topology.ts"

const CUTPOINTS_KEY = "rfm.cutpoints"

/**
 * The membership program (journeys/program.yaml) and the RFM cut points every engine scores with.
 * Quintile cut points are computed by whichever engine runs the recompute and shared through the
 * meta KV bucket, so all engines score alike.
 */
export class ProgramRuntime extends Effect.Service<ProgramRuntime>()("memberflow/ProgramRuntime", {
  scoped: Effect.gen(function* () {
    const dir = yield* Config.string("JOURNEYS_DIR").pipe(Config.withDefault("./journeys"))
    const program: Program = yield* loadProgram(dir)
    const { kvm, use } = yield* Nats
    const topology = yield* Topology
    const meta: KV = yield* use("open meta bucket", () => kvm.create(topology.metaBucket, { history: 5 }))
    const shared = yield* Ref.make<RfmCutpoints | null>(null)

    const readShared = use("kv get cutpoints", () => meta.get(CUTPOINTS_KEY)).pipe(
      Effect.map((entry) =>
        entry === null || entry.operation !== "PUT" ? null : (JSON.parse(new TextDecoder().decode(entry.value)) as RfmCutpoints)
      ),
      Effect.flatMap((cut) => Ref.set(shared, cut))
    )
    yield* readShared
    yield* readShared.pipe(
      Effect.catchAll((error) => Effect.logWarning("could not refresh RFM cut points", error)),
      Effect.repeat(Schedule.spaced("2 seconds")),
      Effect.forkScoped
    )

    const context: Effect.Effect<MemberContext> = Effect.gen(function* () {
      if (program.rfm.scores === "fixed") {
        const now = yield* Clock.currentTimeMillis
        return { program, cutpoints: fixedCutpoints(program, now) }
      }
      return { program, cutpoints: yield* Ref.get(shared) }
    })

    const publishCutpoints = (cutpoints: RfmCutpoints) =>
      use("kv put cutpoints", () => meta.put(CUTPOINTS_KEY, JSON.stringify(cutpoints))).pipe(
        Effect.zipRight(Ref.set(shared, cutpoints))
      )

    /** Claims a one-time lease (e.g. one recompute per period): exactly one engine gets `true`. */
    const claim = (lease: string, owner: string) =>
      use("kv create lease", () => meta.create(`lease.${lease}`, owner)).pipe(
        Effect.as(true),
        Effect.catchAll(() => Effect.succeed(false))
      )

    return { program, dir, context, publishCutpoints, claim } as const
  })
}) {}
