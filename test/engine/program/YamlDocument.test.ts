import { describe, expect, it } from "@effect/vitest"
import { Either, Schema } from "effect"
import { decodeYaml, issueAt, parseYaml } from "../../../engine/program/YamlDocument.ts"
import { closest, editDistance } from "../../../engine/program/YamlDocument/Suggest.ts"
import { Condition } from "../../../schemas/Condition.ts"
import { Duration } from "../../../schemas/Duration.ts"
import { formatIssues } from "../../../schemas/ProgramErrors.ts"

// A journey-like schema: the decoder must work for any file kind, not only program.yaml.
const Step = Schema.Struct({
  id: Schema.String,
  wait: Schema.optional(Duration),
  when: Schema.optional(Condition)
})
const Journey = Schema.Struct({ id: Schema.String, steps: Schema.Array(Step) })

const errorsOf = (text: string): string =>
  Either.match(decodeYaml(Journey, text, "j.yaml"), { onLeft: formatIssues, onRight: () => "decoded" })

describe("YAML files decoded with positions", () => {
  it("a valid file decodes to the schema's type", () => {
    const decoded = decodeYaml(Journey, "id: welcome\nsteps:\n  - { id: pause, wait: 2h }\n", "j.yaml")
    expect(decoded).toEqual(Either.right({ id: "welcome", steps: [{ id: "pause", wait: 7_200_000 }] }))
  })

  it("an unknown key deep in a list points at that key", () => {
    const text = "id: welcome\nsteps:\n  - id: pause\n    wiat: 2h\n"
    expect(errorsOf(text)).toBe('j.yaml:4:5: unknown key "wiat" (did you mean "wait"?)')
  })

  it("an unknown key far from every allowed key gets no hint", () => {
    expect(errorsOf("id: welcome\nsteps: []\ncolour: red\n")).toBe('j.yaml:3:1: unknown key "colour"')
  })

  it("a condition is judged against the form it most resembles", () => {
    const text = [
      "id: welcome",
      "steps:",
      "  - id: check",
      "    when:",
      "      any:",
      "        - { attribute: tier, inn: [gold] }",
      "        - { consent: fax }",
      "        - { event: purchase, within: soon }",
      "        - 42"
    ].join("\n")
    expect(errorsOf(text).split("\n")).toEqual([
      'j.yaml:6:30: unknown key "inn" (did you mean "in"?)',
      'j.yaml:7:22: expected one of "sms", "email", "wechat", "any", got "fax"',
      'j.yaml:8:38: "soon" is not a duration (expected a number and a unit: 30m, 2h, 3d, 2w)',
      "j.yaml:9:11: expected a condition (a mapping with one of the keys all, any, not, attribute, tag, consent, event), got 42"
    ])
  })

  it("a key with no value is reported at the key", () => {
    expect(errorsOf("id:\nsteps: []\n")).toBe("j.yaml:1:1: expected a string, got nothing")
  })

  it("values reached through an alias are decoded and YAML errors keep their position", () => {
    const decoded = decodeYaml(Journey, "id: &name welcome\nsteps:\n  - { id: *name }\n", "j.yaml")
    expect(decoded).toEqual(Either.right({ id: "welcome", steps: [{ id: "welcome" }] }))
    expect(errorsOf("id: welcome\nsteps: [\n")).toMatch(/^j\.yaml:3:1: YAML syntax: /)
  })

  it("checks made after decoding can point at a key, a value or a mapping", () => {
    const source = Either.getOrThrow(parseYaml("id: welcome\nsteps:\n  - { id: a, wait: 1h }\n", "j.yaml"))
    expect(issueAt(source, ["steps", 0, "wait"], "m", "key")).toMatchObject({ line: 3, column: 14 })
    expect(issueAt(source, ["steps", 0, "wait"], "m")).toMatchObject({ line: 3, column: 20 })
    expect(issueAt(source, ["steps", 0], "m", "node")).toMatchObject({ line: 3, column: 5 })
    // a path that is not in the file falls back to the deepest node that is
    expect(issueAt(source, ["steps", 0, "when"], "m")).toMatchObject({ line: 3, column: 5 })
  })
})

describe("did-you-mean hints", () => {
  it("count a swap of neighbouring letters as one typo", () => {
    expect(editDistance("mniSpend", "minSpend")).toBe(1)
    expect(editDistance("minSpnd", "minSpend")).toBe(1)
    expect(editDistance("kitten", "sitting")).toBe(3)
  })

  it("ignore case and refuse far-fetched suggestions", () => {
    expect(closest("MINSPEND", ["minSpend", "keepSpend"])).toBe("minSpend")
    expect(closest("colour", ["id", "steps"])).toBeUndefined()
  })
})

describe("hostile YAML", () => {
  it("an alias bomb is refused with an issue instead of expanding", () => {
    const rows = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for (const [i, name] of ["b", "c", "d", "e", "f"].entries()) {
      const previous = String.fromCharCode("a".charCodeAt(0) + i)
      rows.push(`${name}: &${name} [${Array(10).fill(`*${previous}`).join(", ")}]`)
    }
    expect(errorsOf(rows.join("\n"))).toMatch(/^j\.yaml:1:1: YAML: Excessive alias count/)
  })
})
