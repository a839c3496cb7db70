import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { runCli } from "../../support/engine.ts"
import { edit, positionOf, VALID_JOURNEY, validFolder } from "./fixtures.ts"

describe("memberflow validate", () => {
  it("the shipped journeys folder passes: exit 0 and a one-line summary", async () => {
    const result = await runCli(["validate", "journeys"], {})
    expect(result.code).toBe(0)
    expect(result.stdout.trim()).toMatch(/^ok: 0 errors, 0 warnings in \d+ files \(6 valid journeys\)$/)
  })

  it("a broken folder prints every error as file:line:column, then warnings, and exits non-zero", async () => {
    const journey = edit(edit(VALID_JOURNEY, "wait: 2d", "wait: 2dd"), "{ id: bold, weight: 50 }", "{ id: bold, weight: 50 }\n    - { id: loud, weight: 10 }")
    const dir = validFolder({
      "spring-sale.yaml": journey,
      "templates/sms/spring-sale-bold.hbs": `${"好".repeat(80)}\n`
    })
    const result = await runCli(["validate", dir], {})
    expect(result.code).not.toBe(0)
    const file = join(dir, "spring-sale.yaml")
    // The CLI's failure is logged for a person: a "[time] ERROR" line, then the error.
    expect(result.stdout.trim().split("\n").filter((line) => !/^\[[\d:.]+\] ERROR/.test(line))).toEqual([
      `${file}:${positionOf(journey, "2dd")}: "2dd" is not a duration (expected a number and a unit: 30m, 2h, 3d, 2w)`,
      `${join(dir, "templates/sms/spring-sale-bold.hbs")}:1:1: warning: the fixed text alone is 80 characters of UCS-2 (Chinese or other non-GSM text), over one SMS segment (70): it will be sent as 2 segments`,
      "invalid: 1 error, 1 warning in 6 files (0 valid journeys)",
      // the failure itself, as the engine logs it: only a count, the issues are above
      expect.stringContaining("ValidationFailed: 1 error in the journeys folder (listed above)")
    ])
  })

  it("JOURNEYS_DIR names the folder when none is given", async () => {
    const dir = validFolder({ "templates/sms/spring-sale.hbs": null })
    const result = await runCli(["validate"], { JOURNEYS_DIR: dir })
    expect(result.code).not.toBe(0)
    expect(result.stdout).toContain(`${join(dir, "spring-sale.yaml")}:${positionOf(VALID_JOURNEY, "spring-sale", 1)}: template "spring-sale" not found`)
  })
})
