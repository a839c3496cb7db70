/**
 * The Node flags `memberflow run` is started with, wherever memberflow starts it (the demo, the
 * tests, the benchmarks; the Dockerfile spells them out). A larger young generation: the engine
 * makes many short-lived objects per event, and with the default 16 MB semi-space the scavenges took
 * about a quarter of its time (BENCHMARKS.md).
 */
export const ENGINE_NODE_FLAGS: ReadonlyArray<string> = ["--max-semi-space-size=64"]
