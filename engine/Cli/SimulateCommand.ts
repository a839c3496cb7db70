import { Args, Command, Options } from "@effect/cli"
import { Clock, Config, Console, Data, Effect, Either, Layer, Option } from "effect"
import { readFile } from "node:fs/promises"
import type { MemberEvent } from "../../schemas/Event.ts"
import { decodeEvent } from "../ingest/Decode.ts"
import { loadJourneys } from "../journeys/JourneyFile.ts"
import { brandConfig } from "../journeys/Context.ts"
import { simulate } from "../journeys/Simulate.ts"
import { fixedCutpoints } from "../member/Rfm.ts"
import { applyEvents, emptyState, type MemberContext } from "../member/MemberState.ts"
import { journeyVersion } from "../JourneyRuntime.ts"
import { MemberLookup } from "../MemberLookup.ts"
import { Nats } from "../Nats.ts"
import { didYouMean } from "../program/YamlDocument/Suggest.ts"
import { Topology } from "../Topology.ts"

export class SimulateFailed extends Data.TaggedError("SimulateFailed")<{ readonly message: string }> {}


/** The member as the engine has them (its owner, else KV), when NATS is reachable and knows them. */
const storedState = (memberId: string) =>
  Effect.flatMap(MemberLookup, (lookup) => lookup.get(memberId)).pipe(
    Effect.provide(MemberLookup.Default.pipe(Layer.provide(Layer.merge(Nats.layer, Topology.layer)))),
    Effect.either
  )

/**
 * `memberflow simulate <journey> --member <id> [--events file.jsonl]`: the path the member would take
 * through the journey, every message rendered, time fast-forwarded through waits. Sends nothing.
 */
export const simulateCommand = Command.make(
  "simulate",
  {
    journeyId: Args.text({ name: "journey" }),
    member: Options.text("member"),
    events: Options.file("events", { exists: "yes" }).pipe(Options.optional)
  },
  ({ journeyId, member, events }) =>
    Effect.gen(function* () {
      const dir = yield* Config.string("JOURNEYS_DIR").pipe(Config.withDefault("journeys"))
      const brand = yield* brandConfig
      const loaded = yield* loadJourneys(dir)
      const journey = loaded.journeys.find((j) => j.id === journeyId)
      if (journey === undefined) {
        return yield* new SimulateFailed({ message: `no journey "${journeyId}" in ${dir}${didYouMean(journeyId, loaded.journeys.map((j) => j.id))}` })
      }
      const now = yield* Clock.currentTimeMillis
      const ctx: MemberContext = { program: loaded.program, cutpoints: fixedCutpoints(loaded.program, now) }

      const stored = yield* storedState(member)
      let state = Either.isRight(stored) && stored.right !== null ? stored.right : emptyState(member)
      if (Either.isLeft(stored)) yield* Console.error(`(the engine's state is not reachable: ${stored.left.message}; starting from an empty member)`)
      let trigger: MemberEvent | undefined
      if (Option.isSome(events)) {
        const history: Array<MemberEvent> = []
        const lines = (yield* Effect.promise(() => readFile(events.value, "utf8"))).split("\n")
        for (const [i, line] of lines.entries()) {
          if (line.trim() === "") continue
          const type = (/"type"\s*:\s*"([^"]+)"/.exec(line) ?? [])[1] ?? "unparsed"
          const decoded = decodeEvent(`events.${type}`, new TextEncoder().encode(line), { subjectPrefix: "events", now, maxBytes: 1 << 20 })
          if (Either.isLeft(decoded)) return yield* new SimulateFailed({ message: `${events.value}:${i + 1}: ${decoded.left}` })
          if (decoded.right.memberId === member) history.push(decoded.right)
        }
        history.sort((a, b) => a.at - b.at)
        state = applyEvents(state, history, ctx, now).state
        if ("event" in journey.trigger) {
          const type = journey.trigger.event.type
          trigger = history.filter((e) => e.type === type).at(-1)
        }
      }
      if (state.lastSeenAt === null) {
        return yield* new SimulateFailed({ message: `no member "${member}": the engine has no events for them; pass --events <file.jsonl> with their history` })
      }
      const version = journeyVersion(journey)
      const result = simulate(journey, version, state, ctx, loaded.templates, trigger, brand, now)
      for (const line of result.lines) yield* Console.log(line)
      const sends = result.messages.filter((m) => m.status === "would send").length
      yield* Console.log(`simulation: ${result.entered ? `${sends} message(s) rendered` : "no entry"}; nothing was sent or stored`)
    })
).pipe(Command.withDescription("dry run: the path a member would take through a journey and each rendered message, sending nothing"))
