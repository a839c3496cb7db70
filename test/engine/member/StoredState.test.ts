import { readFileSync } from "node:fs"
import { join } from "node:path"
import { Either } from "effect"
import { describe, expect, it } from "vitest"
import { applyEvents, clearOutbox, emptyState, parseState, parseStoredState } from "../../../engine/member/MemberState.ts"
import { ctx, event, NOW, purchase, refund } from "./fixtures.ts"

const built = () => {
  const result = applyEvents(
    emptyState("m-1"),
    [
      event("member.registered", NOW - 5_000, { name: "One", phone: "+8613800000001", consent: { sms: true } }, { id: "e-reg" }),
      purchase("O-1", 900, NOW - 4_000, "e-p1"),
      purchase("O-2", 1200.5, NOW - 3_000, "e-p2"),
      refund("O-2", 200, NOW - 2_000, "e-r2")
    ],
    ctx,
    NOW
  )
  return clearOutbox(result.state, result.state.outbox.map((e) => e.id))
}

const refusal = (json: string, memberId = "m-1"): string => {
  const read = parseStoredState(json, memberId)
  if (Either.isRight(read)) throw new Error(`read as a state: ${json.slice(0, 200)}`)
  return read.left
}

describe("a member's state read back from the members bucket", () => {
  it("is the state written, for the member it was written for", () => {
    const state = built()
    expect(parseStoredState(JSON.stringify(state), "m-1")).toEqual(Either.right(parseState(JSON.stringify(state))))
    expect(parseStoredState(JSON.stringify(emptyState("新會員 1")), "新會員 1")).toEqual(Either.right(emptyState("新會員 1")))
  })

  it("is read in the current format when an engine of before stored it", () => {
    const former = readFileSync(join(import.meta.dirname, "formerFormat.json"), "utf8")
    const read = Either.getOrThrow(parseStoredState(former, "m-1"))
    expect(read).toEqual(parseState(former))
    expect(typeof read.seen).toBe("string")
  })

  it("is refused with what is wrong when it is not a state of this member", () => {
    const state = JSON.parse(JSON.stringify(built())) as Record<string, unknown>
    const without = (field: string) => JSON.stringify({ ...state, [field]: undefined })
    const withField = (field: string, value: unknown) => JSON.stringify({ ...state, [field]: value })
    expect(refusal('{"memberId":"m-1",')).toMatch(/^not JSON \(/)
    expect(refusal("")).toMatch(/^not JSON \(/)
    expect(refusal("[1,2]")).toBe("not a JSON object")
    expect(refusal("null")).toBe("not a JSON object")
    expect(refusal('"m-1"')).toBe("not a JSON object")
    expect(refusal(JSON.stringify(state), "m-2")).toBe('it holds the state of member "m-1"')
    expect(refusal(JSON.stringify({ version: 1 }))).toBe("it holds the state of member undefined")
    expect(refusal(without("rows"))).toBe("field rows is missing")
    expect(refusal(withField("version", "7"))).toBe("field version is not a number")
    expect(refusal(withField("updatedAt", "yesterday"))).toBe("field updatedAt is not a number or null")
    expect(refusal(withField("attributes", []))).toBe("field attributes is not an object")
    expect(refusal(withField("tier", 3))).toBe("field tier is not an object or null")
    expect(refusal(withField("outbox", {}))).toBe("field outbox is not an array")
    expect(refusal(withField("seenBefore", 12))).toBe("field seenBefore is not a string")
    expect(refusal(withField("orders", { k: "", at: [] }))).toBe("its orders are not whole (k, at, amount or refunded)")
  })

  it("may leave out the fields that are optional, not give them a wrong kind", () => {
    const state = JSON.parse(JSON.stringify(built())) as Record<string, unknown>
    for (const field of ["seenBefore", "sent", "credits", "passed"]) delete state[field]
    expect(Either.isRight(parseStoredState(JSON.stringify(state), "m-1"))).toBe(true)
    expect(refusal(JSON.stringify({ ...state, passed: "12" }))).toBe("field passed is not a number")
  })
})
