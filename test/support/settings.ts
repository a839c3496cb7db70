import { expect } from "vitest"
import { runCli, tempDir } from "./engine.ts"

// Apart from engine.ts, which the benchmarks import too: this one needs vitest's `expect`.

/**
 * `memberflow run` with `setting` at each of `values` in turn: every one is refused at start (a
 * non-zero exit) with output that names the setting.
 */
export const expectRefusedAtStart = async (env: Record<string, string>, setting: string, values: ReadonlyArray<string>, label: string): Promise<void> => {
  for (const value of values) {
    const result = await runCli(["run"], { ...env, [setting]: value, MEMBERFLOW_DATA_DIR: tempDir(label), MEMBERFLOW_HTTP_PORT: "0" })
    expect(result.code, result.stdout + result.stderr).not.toBe(0)
    expect(result.stdout + result.stderr).toContain(setting)
  }
}
