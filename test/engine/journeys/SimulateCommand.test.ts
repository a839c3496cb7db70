import { writeFileSync } from "node:fs"
import { join } from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { runCli, tempDir } from "../../support/engine.ts"
import { dropTopology, uniqueTopology } from "../../support/nats.ts"

const history = [
  { id: "s1", type: "member.registered", memberId: "lin", occurredAt: "2026-01-05T10:00:00+08:00", properties: { name: "林小姐", phone: "+8613812345678", email: "lin@example.com", birthday: "1990-05-17", consent: { sms: true, email: true } } },
  { id: "s2", type: "purchase", memberId: "lin", occurredAt: "2026-03-01T10:00:00+08:00", properties: { orderId: "o1", amount: 26000, currency: "CNY" } },
  { id: "x1", type: "member.registered", memberId: "someone-else", occurredAt: "2026-01-05T10:00:00+08:00", properties: { name: "Other" } }
]

describe("memberflow simulate", () => {
  const topology = uniqueTopology("simulate")
  const env = { ...topology.env, MEMBERFLOW_BRAND_NAME: "MAISON" }
  // simulate reads members from KV: its buckets are made on the way, and left behind without this.
  afterAll(() => dropTopology(topology))
  const file = join(tempDir("simulate"), "history.jsonl")
  writeFileSync(file, history.map((e) => JSON.stringify(e)).join("\n") + "\n")

  it("shows the path a member would take and each message rendered, fast-forwarding the waits, sending nothing", async () => {
    const { code, stdout } = await runCli(["simulate", "birthday-reward", "--member", "lin", "--events", file], env)
    expect(code).toBe(0)
    expect(stdout).toContain("next entry due")
    // Variants are a hash of journey and member: lin is always in `points`.
    expect(stdout).toMatch(/enters birthday-reward \(version \w+\) as variant points/)
    expect(stdout).toContain("greet: would send sms/birthday-greeting")
    expect(stdout).toContain("【MAISON】林小姐")
    expect(stdout).toContain("remind: would send sms/birthday-reminder")
    expect(stdout).toMatch(/waits until \d{4}-05-\d\dT/)
    expect(stdout).toContain("leaves birthday-reward: completed")
    expect(stdout).toContain("nothing was sent or stored")
  })

  it("says why a member would not enter, and refuses an unknown journey or member clearly", async () => {
    const audience = await runCli(["simulate", "birthday-reward", "--member", "someone-else", "--events", file], env)
    expect(audience.code).toBe(0)
    expect(audience.stdout).toContain("someone-else would not enter birthday-reward")

    const typo = await runCli(["simulate", "birthday-rewrd", "--member", "lin", "--events", file], env)
    expect(typo.code).toBe(1)
    expect(typo.stdout + typo.stderr).toContain('no journey "birthday-rewrd" in journeys (did you mean "birthday-reward"?)')

    const nobody = await runCli(["simulate", "welcome-series", "--member", "nobody"], env)
    expect(nobody.code).toBe(1)
    expect(nobody.stdout + nobody.stderr).toContain('no member "nobody"')
  })
})
