import { describe, expect, it } from "@effect/vitest"
import { parseJourney } from "../../../engine/journeys/JourneyFile.ts"
import { parseTemplate } from "../../../engine/journeys/Templates.ts"
import { TEMPLATES, VALID_JOURNEY } from "./fixtures.ts"

/** A seeded generator, so a failure reproduces. */
const random = (seed: number) => () => {
  seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648
  return seed / 2_147_483_648
}

const mutate = (text: string, next: () => number): string => {
  const lines = text.split("\n")
  const pick = (n: number) => Math.floor(next() * n)
  switch (pick(5)) {
    case 0: {
      lines.splice(pick(lines.length), 1)
      return lines.join("\n")
    }
    case 1: {
      const i = pick(text.length - 1)
      return text.slice(0, i) + (text[i + 1] ?? "") + (text[i] ?? "") + text.slice(i + 2)
    }
    case 2: {
      const i = pick(text.length)
      return text.slice(0, i) + text.slice(i + 1)
    }
    case 3: {
      const i = pick(text.length)
      return text.slice(0, i) + ":{}[]-&*!|>'\"#%@`"[pick(18)] + text.slice(i)
    }
    default: {
      const i = pick(lines.length)
      lines.splice(pick(lines.length), 0, lines[i] ?? "")
      return lines.join("\n")
    }
  }
}

const context = {
  dir: "journeys",
  program: undefined,
  templates: {
    present: { email: new Set(["spring-sale", "spring-sale-bold"]), sms: new Set(["spring-sale", "spring-sale-bold"]), wechat: new Set<string>() },
    parsed: { email: new Map(), sms: new Map(), wechat: new Map() }
  }
}

describe("validation never crashes on a damaged file", () => {
  it("random edits of a valid journey (deleted lines, swapped and stray characters) give issues or a journey, never a throw", () => {
    const next = random(20_240_520)
    let refused = 0
    for (let round = 0; round < 400; round++) {
      let text = VALID_JOURNEY
      for (let k = 1 + Math.floor(next() * 3); k > 0; k--) text = mutate(text, next)
      const result = parseJourney({ file: "spring-sale.yaml", text }, context)
      // a result is either a journey with no errors, or errors that each point inside the file
      if (result.errors.length > 0) refused++
      else expect(result.value?.id).toBeDefined()
      for (const issue of result.errors) {
        expect(issue.line).toBeGreaterThanOrEqual(1)
        expect(issue.line).toBeLessThanOrEqual(text.split("\n").length + 1)
        expect(issue.message.length).toBeGreaterThan(0)
      }
    }
    expect(refused).toBeGreaterThan(100)
  })

  it("random edits of templates never throw either", () => {
    const next = random(7)
    for (let round = 0; round < 300; round++) {
      const [file = "", original = ""] = Object.entries(TEMPLATES)[round % Object.keys(TEMPLATES).length] ?? []
      const channel = file.includes("/email/") ? "email" : "sms"
      const result = parseTemplate({ channel, name: "t", file, text: mutate(mutate(original, next), next) })
      for (const issue of [...result.errors, ...result.warnings]) expect(issue.line).toBeGreaterThanOrEqual(1)
    }
  })
})
