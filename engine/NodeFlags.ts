/**
 * The Node flags `memberflow run` is started with, wherever memberflow starts it (the demo, the
 * tests, the benchmarks; the Dockerfile and the README spell them out, and test/engine/NodeFlags.test.ts
 * holds them to it; V8 refuses the second in NODE_OPTIONS). BENCHMARKS.md has the measurements:
 * - a larger young generation: the engine makes many short-lived objects per event, and with the
 *   default 16 MB semi-space the scavenges took about a quarter of its time;
 * - a full collection when the heap has doubled since the last one: V8's own rule let it grow to
 *   about four times what was live (1.7 GB of heap for 550 MB live, a peak RSS of 2.4 GB in
 *   bench:ingest; 1.8 GB with the flag, at the same throughput);
 * - two helper threads for V8 (Node starts four). V8 gives a full collection's marking about half a
 *   second of wall time and makes the engine's thread do what its helpers have not done by then; on
 *   two cores shared with NATS and chDB, four helpers marking beside that thread left it less of the
 *   CPU. In bench:ingest's live traffic fewer events were late with two (median 3.4% over 1 s in
 *   eleven runs, p99 < 1 s in five of them) than with four (4.3%, one run of nine; 2026-12-07): a
 *   lean within the machine's drift, not a cure, and nothing measured got worse. With more cores
 *   to itself, the engine can take four again.
 */
export const ENGINE_NODE_FLAGS: ReadonlyArray<string> = ["--max-semi-space-size=64", "--heap-growing-percent=100", "--v8-pool-size=2"]
