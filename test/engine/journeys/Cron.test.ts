import { describe, expect, it } from "@effect/vitest"
import { Either } from "effect"
import { checkCron } from "../../../engine/journeys/JourneyFile/Cron.ts"

describe("schedule trigger cron expressions", () => {
  it("accepts the five standard fields with lists, ranges, steps and names", () => {
    for (const cron of ["0 10 * * 1", "*/15 9-18 * * MON-FRI", "0 0 1,15 * *", "30 8 * JAN,jul 0", "0 12 * * 7", "5-55/10 * * * *"]) {
      expect(Either.isRight(checkCron(cron)), cron).toBe(true)
    }
  })

  it("refuses wrong field counts, out-of-range values, unknown names and zero steps, naming the field", () => {
    expect(checkCron("0 10 * *")).toEqual(Either.left('cron "0 10 * *" has 4 fields; expected 5: minute hour day-of-month month day-of-week (e.g. "0 10 * * 1")'))
    expect(checkCron("60 * * * *")).toEqual(Either.left('cron "60 * * * *": minute 60 is out of range 0-59'))
    expect(checkCron("0 0 0 * *")).toEqual(Either.left('cron "0 0 0 * *": day of month 0 is out of range 1-31'))
    expect(checkCron("0 0 * FOO *")).toEqual(Either.left('cron "0 0 * FOO *": month "FOO" is not a number or a name (JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC)'))
    expect(checkCron("*/0 * * * *")).toEqual(Either.left('cron "*/0 * * * *": minute "*/0": a step of 0 never advances'))
    expect(checkCron("0 18-9 * * *")).toEqual(Either.left('cron "0 18-9 * * *": hour range "18-9" runs backwards'))
  })
})
