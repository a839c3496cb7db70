/**
 * For looking into a benchmark run: `BENCH_NODE_ARGS="--import <this file's absolute path>"` loads it
 * into each engine, which then appends every event-loop hold over 300 ms to /tmp/holds.<pid>.txt as
 * "<monotonic seconds> <ms held>". The monotonic clock is the one V8's CPU profiles use, so a hold
 * can be matched to the profile's samples (BENCHMARKS.md, "Profiling").
 */
import { appendFileSync } from "node:fs"

let last = performance.now()
const file = `/tmp/holds.${process.pid}.txt`
setInterval(() => {
  const now = performance.now()
  const late = now - last - 10
  if (late > 300) appendFileSync(file, `${(Number(process.hrtime.bigint() / 1000n) / 1e6).toFixed(3)} ${late.toFixed(0)}\n`)
  last = now
}, 10).unref()
