import { describe, expect, it } from "vitest"
import { paced, unpaced } from "../../../engine/ingest/CheckpointPace.ts"

/** Takes `count` states the way MemberStore's writers do: `writers` loops, each asking for the next one's turn. */
const take = async (pace: ReturnType<typeof paced>, count: number, writers: number, onStart: (index: number) => void) => {
  let next = 0
  const writer = async () => {
    while (next < count) {
      const turn = pace.turn(next)
      if (turn !== undefined) {
        await turn
        continue
      }
      onStart(next++)
      await new Promise((resolve) => setImmediate(resolve))
    }
  }
  await Promise.all(Array.from({ length: writers }, writer))
}

describe("a checkpoint's pace", () => {
  it("lets state i of n start no sooner than i/n of the spread after it began, every state once and in order", async () => {
    const began = Date.now()
    const pace = paced(10, 300)
    const starts: Array<[number, number]> = []
    await take(pace, 10, 4, (index) => starts.push([index, Date.now() - began]))
    expect(starts.map(([index]) => index)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
    // Lower bounds only: a loaded machine makes them later, never sooner (1 ms for the timer's rounding).
    for (const [index, at] of starts) expect(at).toBeGreaterThanOrEqual((index * 300) / 10 - 1)
    expect(starts[9]![1]).toBeGreaterThanOrEqual(269)
  })

  it("has writers that must wait share one wait, and tells those that may go to go at once", () => {
    let now = 1_000
    const pace = paced(100, 10_000, () => now)
    expect(pace.turn(0)).toBeUndefined()
    const first = pace.turn(1)
    expect(first).toBeInstanceOf(Promise)
    expect(pace.turn(1)).toBe(first)
    now += 100
    expect(pace.turn(1)).toBeUndefined()
    pace.hurry()
  })

  it("once hurried, lets the states still waiting and every later one go at once", async () => {
    const pace = paced(50, 600_000)
    const waiting = pace.turn(25)
    expect(waiting).toBeInstanceOf(Promise)
    pace.hurry()
    // Resolves without its ten-minute timer (the test's timeout would fail it otherwise).
    await waiting
    expect(pace.turn(49)).toBeUndefined()
    const starts: Array<number> = []
    await take(pace, 50, 3, (index) => starts.push(index))
    expect(starts).toHaveLength(50)
  })

  it("does not pace one state, no spread, or the unpaced", () => {
    expect(paced(1, 10_000).turn(0)).toBeUndefined()
    expect(paced(100, 0).turn(99)).toBeUndefined()
    expect(unpaced.turn(1_000_000)).toBeUndefined()
  })
})
