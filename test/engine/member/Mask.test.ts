import { describe, expect, it } from "@effect/vitest"
import { maskAttributes, maskRaw, maskText } from "../../../engine/member/Mask.ts"

describe("contact points are masked wherever analysts can read them", () => {
  it("attributes: phone, email and openid masked, everything else as it was", () => {
    expect(maskAttributes({ phone: "+8613812345678", email: "lily@example.com", wechatOpenId: "oAbCdEf123", name: "Lily", tier: 3 })).toEqual({
      phone: "138****5678",
      email: "l***@example.com",
      wechatOpenId: "oAbC***",
      name: "Lily",
      tier: 3
    })
  })

  it("masking copies only what it masks: the input is never changed, and comes back itself when it holds no contact point", () => {
    const plain = { orderId: "o-1", amount: 154, items: [{ sku: "A", qty: 1 }], note: null }
    expect(maskAttributes(plain)).toBe(plain)
    const input = { orderId: "o-2", items: [{ sku: "B" }], delivery: { address: "上海", phone: "+8613812345678" }, tags: ["vip"] }
    const before = structuredClone(input)
    const masked = maskAttributes(input)
    expect(input).toEqual(before)
    expect(masked).toEqual({ ...before, delivery: { address: "上海", phone: "138****5678" } })
    // untouched branches are shared, the masked one is new
    expect(masked["items"]).toBe(input.items)
    expect(masked["delivery"]).not.toBe(input.delivery)
    const list = [{ n: 1 }, { email: "lily@example.com" }, { n: 3 }]
    const maskedList = maskAttributes({ list })["list"] as Array<unknown>
    expect(maskedList).toEqual([{ n: 1 }, { email: "l***@example.com" }, { n: 3 }])
    expect(maskedList[0]).toBe(list[0])
    expect(list[1]).toEqual({ email: "lily@example.com" })
  })

  it("a refused JSON message nested deeper than the masks look is masked as text", () => {
    let deep: unknown = { phone: "+8613812345678", mail: "lily@example.com" }
    for (let i = 0; i < 100; i++) deep = { inner: deep }
    const masked = maskRaw(JSON.stringify(deep))
    expect(masked).not.toContain("13812345678")
    expect(masked).not.toContain("lily@example.com")
    expect(masked).toContain("138****5678")
  })

  it("a refused JSON message keeps its bytes when it holds no contact point", () => {
    const raw = '{ "id": "evt-20261123000001", "type": "purchase",  "properties": {"amount": "12"} }'
    expect(maskRaw(raw)).toBe(raw)
  })

  it("a refused JSON message has its contact attributes masked at any depth", () => {
    const raw = JSON.stringify({ id: "e1", type: "member.registered", properties: { phone: "+8613812345678", nested: [{ email: "lily@example.com" }], birthday: 12 } })
    const masked = maskRaw(raw)
    expect(masked).not.toContain("13812345678")
    expect(masked).not.toContain("lily@example.com")
    expect(JSON.parse(masked)).toEqual({ id: "e1", type: "member.registered", properties: { phone: "138****5678", nested: [{ email: "l***@example.com" }], birthday: 12 } })
  })

  it("a refused message that is not JSON has emails and phone-like numbers masked, dates and small numbers kept", () => {
    expect(maskText("call +8613812345678 or mail lily@example.com on 2026-11-23, order 12345")).toBe(
      "call 138****5678 or mail l***@example.com on 2026-11-23, order 12345"
    )
    expect(maskRaw("not json: 13812345678")).toBe("not json: 138****5678")
  })
})
