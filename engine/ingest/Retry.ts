import { Metric, Schedule } from "effect"
import * as Metrics from "../Metrics.ts"

/** Transient store and broker failures are retried until they recover: nothing is lost meanwhile. */
export const retryForever = Schedule.exponential("200 millis", 1.5).pipe(
  Schedule.union(Schedule.spaced("10 seconds")),
  Schedule.jittered,
  Schedule.tapOutput(() => Metric.increment(Metrics.retries))
)
