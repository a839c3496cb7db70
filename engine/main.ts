import { NodeContext, NodeRuntime } from "@effect/platform-node"
import { Effect, Layer, Logger } from "effect"
import { runCli } from "./Cli.ts"

runCli(process.argv).pipe(
  Effect.provide(Layer.merge(NodeContext.layer, Logger.json)),
  NodeRuntime.runMain({ disablePrettyLogger: true })
)
