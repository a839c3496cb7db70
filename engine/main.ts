import { NodeContext, NodeRuntime } from "@effect/platform-node"
import { Effect, Layer, Logger } from "effect"
import { runCli } from "./Cli.ts"

// The NATS client builds an Error (with a captured stack) for every request it completes; capturing
// stacks was the largest single CPU cost of ingestion (BENCHMARKS.md). Effect spans still trace.
Error.stackTraceLimit = 0

runCli(process.argv).pipe(
  // The engine logs JSON lines for machines; the other commands talk to a person.
  Effect.provide(Layer.merge(NodeContext.layer, process.argv[2] === "run" ? Logger.json : Logger.pretty)),
  NodeRuntime.runMain({ disablePrettyLogger: true })
)
