import { NodeContext, NodeRuntime } from "@effect/platform-node"
import { Effect, Layer, Logger } from "effect"
import { runCli } from "./Cli.ts"

// The NATS client builds an Error (with a captured stack) for every request it completes; capturing
// stacks was the largest single CPU cost of ingestion (BENCHMARKS.md). Effect spans still trace.
Error.stackTraceLimit = 0

runCli(process.argv).pipe(
  Effect.provide(Layer.merge(NodeContext.layer, Logger.json)),
  NodeRuntime.runMain({ disablePrettyLogger: true })
)
