import { expect } from "vitest"
import { runCli, tempDir } from "./engine.ts"

// Apart from engine.ts, which the benchmarks import too: this one needs vitest's `expect`.

/**
 * `memberflow run` with `setting` at each of `values` in turn: every one is refused at start (a
 * non-zero exit) with output that names the setting.
 */
export const expectRefusedAtStart = async (env: Record<string, string>, setting: string, values: ReadonlyArray<string>, label: string): Promise<void> => {
  // All at once: each start takes 2–4 s before the setting is read, and they do not share anything.
  const results = await Promise.all(values.map((value) => runCli(["run"], { ...env, [setting]: value, MEMBERFLOW_DATA_DIR: tempDir(label), MEMBERFLOW_HTTP_PORT: "0" })))
  for (const [i, result] of results.entries()) {
    expect(result.code, `${setting}=${values[i]}: ${result.stdout}${result.stderr}`).not.toBe(0)
    expect(result.stdout + result.stderr, `${setting}=${values[i]}`).toContain(setting)
    // The engine's last log line says it stopped, the reason in its cause (not an empty message).
    expect(result.stdout, `${setting}=${values[i]}`).toMatch(/^\{"message":"the engine stopped","logLevel":"ERROR".*"cause":".*MEMBERFLOW_/m)
  }
}
