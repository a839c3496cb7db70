/**
 * For looking into a benchmark run: `BENCH_NODE_ARGS="--import <this file's absolute path>"` loads it
 * into each engine, which then samples its main thread's allocations by the function that made them,
 * leaving out what a scavenge collected (V8's sampling heap profiler with
 * `includeObjectsCollectedByMajorGC`). What is left is what outlived the young generation — kept,
 * or promoted and later collected by a full collection — which is what those collections cost.
 * Every 2 s it writes the profile so far to /tmp/promoted.<pid>.<monotonic seconds>.json, on the
 * clock bench:ingest stamps its paced seconds with; `node bench/promoted-diff.mjs <earlier> <later>`
 * tells what was promoted in between, by function (BENCHMARKS.md, "Profiling").
 */
import { writeFileSync } from "node:fs"
import { Session } from "node:inspector"
import { isMainThread } from "node:worker_threads"

if (isMainThread) {
  const session = new Session()
  session.connect()
  const post = (method, params) => new Promise((resolve, reject) => session.post(method, params, (error, result) => (error ? reject(error) : resolve(result))))
  await post("HeapProfiler.enable")
  await post("HeapProfiler.startSampling", { samplingInterval: 64 * 1024, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: false })
  setInterval(() => {
    const at = (Number(process.hrtime.bigint() / 1000n) / 1e6).toFixed(2)
    post("HeapProfiler.getSamplingProfile").then(
      ({ profile }) => writeFileSync(`/tmp/promoted.${process.pid}.${at}.json`, JSON.stringify(profile)),
      () => undefined
    )
  }, 2_000).unref()
}
