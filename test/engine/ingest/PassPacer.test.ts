import { describe, expect, it } from "vitest"
import { PassPacer } from "../../../engine/ingest/PassPacer.ts"

/** A clock the test moves by hand. */
const manualClock = () => {
  const clock = { now: 1_000_000, tick: (ms: number) => void (clock.now += ms) }
  return clock
}

describe("pacing a pass over every member against the events", () => {
  it("lets pass work go at full speed while no event has come for the quiet time", () => {
    const clock = manualClock()
    const pacer = new PassPacer(0.3, 200, () => clock.now)
    expect(pacer.wait()).toBe(0)
    pacer.spent(100)
    expect(pacer.wait()).toBe(0)
    pacer.events()
    clock.tick(200)
    expect(pacer.wait()).toBe(0)
  })

  it("gives the events the rest of the thread after each piece of pass work while they flow", () => {
    const clock = manualClock()
    const pacer = new PassPacer(0.25, 200, () => clock.now)
    pacer.events()
    pacer.spent(40)
    // 40 ms of pass work at a share of 1/4: 120 ms for the events before the next.
    expect(pacer.wait()).toBe(120)
    clock.tick(50)
    pacer.events()
    expect(pacer.wait()).toBe(70)
    clock.tick(70)
    expect(pacer.wait()).toBe(0)
    // Events that stop for the quiet time release the pass at once.
    pacer.spent(400)
    expect(pacer.wait()).toBe(1200)
    clock.tick(200)
    expect(pacer.wait()).toBe(0)
  })

  it("holds pass work to its share of the time over a stretch of steady events", () => {
    const clock = manualClock()
    const pacer = new PassPacer(0.3, 200, () => clock.now)
    const end = clock.now + 10_000
    let passMs = 0
    // 10 s of batches of 10 ms each, and pass work of 30 ms whenever the pacer lets it.
    while (clock.now < end) {
      if (pacer.wait() === 0) {
        clock.tick(30)
        passMs += 30
        pacer.spent(30)
      }
      clock.tick(10)
      pacer.events()
    }
    expect(passMs / 10_000).toBeGreaterThan(0.25)
    expect(passMs / 10_000).toBeLessThanOrEqual(0.3)
  })

  it("runs work through paced and counts the time it took", async () => {
    const pacer = new PassPacer(0.5, 200)
    pacer.events()
    const started = Date.now()
    const first = await pacer.paced(async () => {
      await new Promise((resolve) => setTimeout(resolve, 60))
      return "first"
    })
    pacer.events()
    const second = await pacer.paced(async () => Date.now())
    expect(first).toBe("first")
    // At a share of 1/2 the second waited about as long as the first took (timers may fire a ms early).
    expect(second - started).toBeGreaterThanOrEqual(115)
  })

  it("refuses a share outside (0, 1]", () => {
    expect(() => new PassPacer(0)).toThrow("the pass share must be in (0, 1], not 0")
    expect(() => new PassPacer(1.5)).toThrow("not 1.5")
    expect(() => new PassPacer(Number.NaN)).toThrow("not NaN")
  })
})
