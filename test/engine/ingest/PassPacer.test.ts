import { describe, expect, it } from "vitest"
import { PassPacer } from "../../../engine/ingest/PassPacer.ts"

/** A clock the test moves by hand. */
const manualClock = () => {
  const clock = { now: 1_000_000, tick: (ms: number) => void (clock.now += ms) }
  return clock
}

/**
 * `ms` of batches of 10 ms each, and pass work of `pieceMs` whenever the pacer lets it: the share of
 * the time pass work got.
 */
const shareOver = (pacer: PassPacer, clock: ReturnType<typeof manualClock>, ms: number, pieceMs: number) => {
  const end = clock.now + ms
  let passMs = 0
  while (clock.now < end) {
    if (pacer.wait() === 0) {
      clock.tick(pieceMs)
      passMs += pieceMs
      pacer.spent(pieceMs)
    }
    clock.tick(10)
    pacer.events()
  }
  return passMs / ms
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
    const share = shareOver(pacer, clock, 10_000, 30)
    expect(share).toBeGreaterThan(0.25)
    expect(share).toBeLessThanOrEqual(0.3)
  })

  it("gives pass work only its held share while held (a burst of timers), and its full share again after", () => {
    const clock = manualClock()
    let held = false
    const pacer = new PassPacer(0.3, 200, () => clock.now, { held: () => held })
    const share = (ms: number) => shareOver(pacer, clock, ms, 20)
    expect(share(10_000)).toBeGreaterThan(0.25)
    held = true
    // A tenth of 0.3 unless told otherwise.
    const during = share(10_000)
    expect(during).toBeGreaterThan(0.02)
    expect(during).toBeLessThanOrEqual(0.03)
    held = false
    expect(share(10_000)).toBeGreaterThan(0.25)
    // Held or not, no wait once the events have stopped for the quiet time.
    held = true
    clock.tick(200)
    expect(pacer.wait()).toBe(0)
    // The wait is worked out when asked: a burst that ends shortens the wait already begun.
    pacer.events()
    pacer.spent(30)
    expect(pacer.wait()).toBe(970)
    held = false
    expect(pacer.wait()).toBe(70)
  })

  it("says when pass work begins and stops being held back: once each, not while quiet, not once no pass is under way", () => {
    const clock = manualClock()
    let held = false
    const told: Array<boolean> = []
    const pacer = new PassPacer(0.3, 200, () => clock.now, { held: () => held, onHeld: (now) => told.push(now) })
    shareOver(pacer, clock, 1_000, 20)
    expect(told).toEqual([])
    held = true
    shareOver(pacer, clock, 5_000, 20)
    expect(told).toEqual([true])
    held = false
    shareOver(pacer, clock, 1_000, 20)
    expect(told).toEqual([true, false])
    held = true
    pacer.events()
    pacer.wait()
    expect(told).toEqual([true, false, true])
    // The events stopped: pass work goes at full speed, so it is not held back, timers due or not.
    clock.tick(200)
    expect(pacer.wait()).toBe(0)
    expect(told).toEqual([true, false, true, false])
    pacer.events()
    pacer.wait()
    // The last pass ended while held back.
    pacer.idle()
    pacer.idle()
    expect(told).toEqual([true, false, true, false, true, false])
  })

  it("takes a held share of its own, and refuses one above the share", () => {
    const clock = manualClock()
    const pacer = new PassPacer(0.5, 200, () => clock.now, { held: () => true, heldShare: 0.2 })
    pacer.events()
    pacer.spent(20)
    expect(pacer.wait()).toBe(80)
    expect(() => new PassPacer(0.3, 200, Date.now, { heldShare: 0.5 })).toThrow("the held pass share must be in (0, 0.3], not 0.5")
    expect(() => new PassPacer(0.3, 200, Date.now, { heldShare: 0 })).toThrow("not 0")
  })

  it("sizes pieces of pass work to take about pieceMs at the time per member measured, while events flow", () => {
    const clock = manualClock()
    const pacer = new PassPacer(0.3, 200, () => clock.now, { pieceMs: 25, minItems: 20 })
    // No events: as many as allowed.
    expect(pacer.items(1000)).toBe(1000)
    pacer.events()
    // Events flowing, nothing measured yet: the fewest.
    expect(pacer.items(1000)).toBe(20)
    // 20 members in 10 ms: 0.5 ms each, 50 fit in 25 ms.
    pacer.spent(10, 20)
    expect(pacer.items(1000)).toBe(50)
    // Slower pieces shrink the next ones (smoothed), never below the fewest.
    pacer.spent(50, 50)
    expect(pacer.items(1000)).toBe(Math.floor(25 / (0.7 * 0.5 + 0.3 * 1)))
    for (let i = 0; i < 10; i++) pacer.spent(1000, 10)
    expect(pacer.items(1000)).toBe(20)
    // Fast ones let it grow, up to the most allowed.
    for (let i = 0; i < 40; i++) pacer.spent(1, 100)
    expect(pacer.items(1000)).toBe(1000)
    expect(pacer.items(300)).toBe(300)
    // Time not counted for members (the listing's fetches) leaves the measure as it was.
    pacer.spent(5_000)
    expect(pacer.items(300)).toBe(300)
    // Events stopped for the quiet time: the most again, whatever was measured.
    for (let i = 0; i < 10; i++) pacer.spent(1000, 10)
    clock.tick(200)
    expect(pacer.items(1000)).toBe(1000)
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
