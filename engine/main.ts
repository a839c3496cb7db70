import { NodeContext, NodeRuntime } from "@effect/platform-node"
import { Cause, Effect, Layer, Logger } from "effect"
import { runCli } from "./Cli.ts"

// The NATS client builds an Error (with a captured stack) for every request it completes; capturing
// stacks was the largest single CPU cost of ingestion (BENCHMARKS.md). Effect spans still trace.
Error.stackTraceLimit = 0

// The engine drains on SIGTERM / SIGINT within 10 s (operations.md). Each part of the drain is
// bounded (engine/Shutdown.ts); should one still hang, the process goes anyway, saying so, with exit
// code 1: what was not handed over is replayed from the last checkpoint.
const DRAIN_DEADLINE_MS = 9_500
if (process.argv[2] === "run") {
  const line = (logLevel: string, message: string) =>
    process.stdout.write(`${JSON.stringify({ message, logLevel, timestamp: new Date().toISOString() })}\n`)
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    process.once(signal, () => {
      line("INFO", `${signal}: draining`)
      setTimeout(() => {
        line("ERROR", `the drain did not finish within ${DRAIN_DEADLINE_MS / 1000} s: exiting`)
        process.exit(1)
      }, DRAIN_DEADLINE_MS).unref()
    })
  }
}

const engine = process.argv[2] === "run"
runCli(process.argv).pipe(
  // The engine's last line says that it stopped and why, as a message of its own: reported by the
  // runtime, its JSON line had an empty message and the reason (a setting refused, say) only in `cause`.
  engine ? Effect.tapErrorCause((cause) => (Cause.isInterruptedOnly(cause) ? Effect.void : Effect.logError("the engine stopped", cause))) : (self) => self,
  // The engine logs JSON lines for machines; the other commands talk to a person.
  Effect.provide(Layer.merge(NodeContext.layer, engine ? Logger.json : Logger.pretty)),
  NodeRuntime.runMain({ disablePrettyLogger: true, disableErrorReporting: engine })
)
