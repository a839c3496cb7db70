/**
 * The Node flags `memberflow run` is started with, wherever memberflow starts it (the demo, the
 * tests, the benchmarks; the Dockerfile and the README spell them out, and test/engine/NodeFlags.test.ts
 * holds them to it; V8 refuses the second in NODE_OPTIONS). BENCHMARKS.md has the measurements:
 * - a larger young generation: the engine makes many short-lived objects per event, and with the
 *   default 16 MB semi-space the scavenges took about a quarter of its time;
 * - a full collection when the heap has doubled since the last one: V8's own rule let it grow to
 *   about four times what was live (1.7 GB of heap for 550 MB live, a peak RSS of 2.4 GB in
 *   bench:ingest; 1.8 GB with the flag, at the same throughput).
 * Two V8 helper threads instead of Node's four (`--v8-pool-size=2`) were tried on 2026-12-07 and taken
 * back: in bench:ingest's live traffic fewer events were late (median 3.4% over 1 s in eleven runs
 * against 4.3% in nine): a lean within the machine's drift, not enough to run production apart
 * from Node's default (a fresh clone's `.ci/run` with it also had two timing-bound tests time out,
 * not shown to be its doing).
 */
export const ENGINE_NODE_FLAGS: ReadonlyArray<string> = ["--max-semi-space-size=64", "--heap-growing-percent=100"]
