import { describe, expect, it, layer } from "@effect/vitest"
import type { NatsConnection } from "@nats-io/transport-node"
import { Effect } from "effect"
import { cpSync, mkdirSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { afterAll, beforeAll } from "vitest"
import { type LiftRow as ReportRow, report } from "../../engine/Cli/LiftCommand.ts"
import { Clickhouse } from "../../engine/Clickhouse.ts"
import { inGlobalControl } from "../../engine/journeys/Machine.ts"
import { tempClickhouseLayer } from "../support/clickhouse.ts"
import { type EngineProcess, eventually, ROOT, runCli, startEngine, tempDir } from "../support/engine.ts"
import { dropTopology, type EventInput, natsConnect, publishEvents, type TestTopology, uniqueTopology } from "../support/nats.ts"

// ------------------------------------------------------------------------------------------------
// The statistics, computed here from first principles and independently of the view's SQL.

/** erfc to ~1e-15 relative: 1 − the all-positive erf series below 1.5, the continued fraction above. */
const erfc = (x: number): number => {
  if (x < 0) return 2 - erfc(-x)
  if (x < 1.5) {
    // erf(x) = 2/√π · e^(−x²) · Σ 2ⁿ x^(2n+1) / (1·3·…·(2n+1))
    let term = x
    let sum = x
    for (let n = 1; n < 500 && term > sum * 1e-18; n++) {
      term *= (2 * x * x) / (2 * n + 1)
      sum += term
    }
    return 1 - (2 / Math.sqrt(Math.PI)) * Math.exp(-x * x) * sum
  }
  // erfc(x) = e^(−x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + …)))), evaluated from the tail
  let t = x
  for (let k = 300; k >= 1; k--) t = x + k / 2 / t
  return Math.exp(-x * x) / Math.sqrt(Math.PI) / t
}

interface Comparison {
  readonly lift: number | null
  readonly ciLow: number | null
  readonly ciHigh: number | null
  readonly p: number | null
}

/** Risk ratio of x_v/n_v over x_c/n_c, its log-scale 95% interval, and the pooled two-proportion z-test. */
const compare = (xv: number, nv: number, xc: number, nc: number): Comparison => {
  const pv = xv / nv
  const pc = xc / nc
  const rr = pv / pc
  const se = xv > 0 && xc > 0 ? Math.sqrt(1 / xv - 1 / nv + 1 / xc - 1 / nc) : null
  const pooled = (xv + xc) / (nv + nc)
  const z = pooled > 0 && pooled < 1 ? (pv - pc) / Math.sqrt(pooled * (1 - pooled) * (1 / nv + 1 / nc)) : null
  return {
    lift: xc > 0 ? rr - 1 : null,
    ciLow: se === null ? null : Math.exp(Math.log(rr) - 1.96 * se) - 1,
    ciHigh: se === null ? null : Math.exp(Math.log(rr) + 1.96 * se) - 1,
    p: z === null ? null : erfc(Math.abs(z) / Math.SQRT2)
  }
}

/** Holm's step-down adjustment of a family of p-values, in their original order. */
const holm = (ps: ReadonlyArray<number>): ReadonlyArray<number> => {
  const order = ps.map((p, i) => ({ p, i })).sort((a, b) => a.p - b.p)
  const adjusted = new Array<number>(ps.length)
  let running = 0
  order.forEach(({ p, i }, k) => {
    running = Math.max(running, (ps.length - k) * p)
    adjusted[i] = Math.min(1, running)
  })
  return adjusted
}

/** Chi-squared (1 df) of an arm's count against its planned share of all entrants. */
const srmP = (observed: number, total: number, share: number): number => {
  const expected = total * share
  const chi2 = (observed - expected) ** 2 / (expected * (1 - share))
  return erfc(Math.sqrt(chi2 / 2))
}

const close = (actual: unknown, expected: number | null, what: string) => {
  if (expected === null) return expect(actual, what).toBeNull()
  expect(typeof actual, what).toBe("number")
  const a = actual as number
  expect(Math.abs(a - expected), `${what}: ${a} vs ${expected}`).toBeLessThanOrEqual(1e-9 * Math.abs(expected) + 1e-15)
}

describe("the independent statistics", () => {
  it("erfc matches published values to 1e-14 relative", () => {
    const known: ReadonlyArray<readonly [number, number]> = [
      [0.5, 0.4795001221869534623],
      [1, 0.1572992070502851307],
      [1.5, 0.033894853524689273],
      [2, 0.004677734981047265838],
      [2.5, 0.0004069520174449589],
      [3, 2.209049699858544137e-5],
      [5, 1.537459794428034850e-12],
      [8, 1.122429717298292707e-29]
    ]
    for (const [x, value] of known) expect(Math.abs(erfc(x) - value) / value, `erfc(${x})`).toBeLessThan(1e-14)
  })
})

interface LiftRow {
  readonly journey_id: string
  readonly variant: string
  readonly enrolled: number
  readonly converted: number
  readonly conversion_rate: number | null
  readonly revenue: number
  readonly revenue_per_member: number | null
  readonly lift: number | null
  readonly lift_ci_low: number | null
  readonly lift_ci_high: number | null
  readonly p_value: number | null
  readonly p_value_raw: number | null
  readonly srm_p_value: number | null
  readonly srm_flag: number
}

// ------------------------------------------------------------------------------------------------
// (a) and (c): the real pipeline, from events to the view and the `memberflow lift` report.

const JOURNEY_ID = "lift-offer"
const JOURNEY = `id: ${JOURNEY_ID}
name: welcome offer (lift test)
status: active
category: marketing
trigger: { event: { type: member.registered } }
goal: { event: purchase, within: 2m }
experiment:
  control: 30
  variants:
    - { id: gift, weight: 50 }
    - { id: points, weight: 50 }
steps:
  - id: offer
    send: { channel: email, template: welcome, variant: { gift: { template: welcome-first-order } } }
`
const PLANNED: Record<string, number> = { control: 0.3, gift: 0.35, points: 0.35 }
/** The designed conversion rates: gift clearly better, points barely different from control. */
const RATES: Record<string, number> = { control: 0.08, gift: 0.12, points: 0.085 }
/** Amounts in cents, different per arm, so revenue checks exact sums. */
const amountCents = (variant: string, i: number): number =>
  variant === "control" ? 8000 + (i % 5) * 1000 : variant === "gift" ? 12000 + (i % 7) * 550 : 9500 + (i % 3) * 1225
const MEMBERS = 20_000
const WINDOW_MS = 120_000

const byId = (a: { readonly member_id: string }, b: { readonly member_id: string }) => (a.member_id < b.member_id ? -1 : 1)

describe("campaign lift through the real pipeline", () => {
  let topology: TestTopology
  let nc: NatsConnection
  let engine: EngineProcess
  let env: Record<string, string>

  beforeAll(async () => {
    topology = uniqueTopology("lift")
    nc = await natsConnect()
    // program.yaml and the templates of the shipped folder, and only the test journey
    const dir = tempDir("lift-journeys")
    cpSync(join(ROOT, "journeys/program.yaml"), join(dir, "program.yaml"))
    mkdirSync(join(dir, "templates"))
    cpSync(join(ROOT, "journeys/templates"), join(dir, "templates"), { recursive: true })
    writeFileSync(join(dir, `${JOURNEY_ID}.yaml`), JOURNEY)
    env = { ...topology.env, JOURNEYS_DIR: dir, MEMBERFLOW_DATA_DIR: tempDir("lift") }
    engine = await startEngine(env, "lift")
    env = { ...env, MEMBERFLOW_HTTP_PORT: String(engine.port) }
  })

  afterAll(async () => {
    await engine?.kill("SIGKILL")
    await nc?.close()
    if (topology) await dropTopology(topology)
  })

  it("records each journey version's planned arms, with goal and category", async () => {
    const rows = await engine.sql<{ variant: string; weight_percent: number; category: string; goal_event: string; goal_within_seconds: number }>(
      `SELECT variant, weight_percent, category, goal_event, goal_within_seconds FROM journey_variants FINAL WHERE journey_id = '${JOURNEY_ID}' ORDER BY variant`
    )
    expect(rows).toEqual([
      { variant: "control", weight_percent: 30, category: "marketing", goal_event: "purchase", goal_within_seconds: 120 },
      { variant: "gift", weight_percent: 35, category: "marketing", goal_event: "purchase", goal_within_seconds: 120 },
      { variant: "points", weight_percent: 35, category: "marketing", goal_event: "purchase", goal_within_seconds: 120 }
    ])
  })

  it("reports enrolled, converted, revenue, lift, CI, Holm-adjusted p and SRM per arm as computed independently", async () => {
    const members = Array.from({ length: MEMBERS }, (_, i) => `lm${String(i).padStart(5, "0")}`)
    const registered = new Date().toISOString()
    await publishEvents(nc, topology, members.map((memberId) => ({ id: `reg-${memberId}`, type: "member.registered", memberId, occurredAt: registered })))
    // the program's global control group (5%) never enters a marketing journey
    const held = members.filter((memberId) => inGlobalControl(memberId, 5))
    const entering = members.length - held.length
    await eventually(async () => {
      const [row] = await engine.sql<{ n: number }>(`SELECT count() AS n FROM journey_enrollments FINAL WHERE journey_id = '${JOURNEY_ID}'`)
      return row?.n === entering
    }, 240_000, "every member outside the global control enrolled")

    const enrollments = await engine.sql<{ member_id: string; variant: string; at: number }>(
      `SELECT member_id, variant, toUnixTimestamp64Milli(entered_at) AS at FROM journey_enrollments FINAL WHERE journey_id = '${JOURNEY_ID}'`
    )
    expect(new Set(enrollments.map((e) => e.member_id)).size).toBe(entering)
    const heldSet = new Set(held)
    expect(enrollments.some((e) => heldSet.has(e.member_id))).toBe(false)

    // Per arm, in member order: the first RATES[arm] convert inside the window (one purchase each);
    // the next 3% buy only before entering and the 3% after them only after the window closed:
    // neither converts. Some held-out members buy too, and belong to no arm.
    const purchases: Array<EventInput> = []
    const purchase = (memberId: string, at: number, cents: number, tag: string): EventInput => ({
      id: `buy-${tag}-${memberId}`,
      type: "purchase",
      memberId,
      occurredAt: new Date(at).toISOString(),
      properties: { orderId: `o-${tag}-${memberId}`, amount: cents / 100, currency: "CNY" }
    })
    const expected = new Map<string, { n: number; x: number; cents: number }>()
    for (const variant of ["control", "gift", "points"]) {
      const arm = enrollments.filter((e) => e.variant === variant).sort(byId)
      const converters = Math.round((RATES[variant] ?? 0) * arm.length)
      const noise = Math.round(0.03 * arm.length)
      let cents = 0
      arm.forEach((e, i) => {
        if (i < converters) {
          const amount = amountCents(variant, i)
          cents += amount
          purchases.push(purchase(e.member_id, e.at + 1_000 + (i % 60) * 1_000, amount, "in"))
        } else if (i < converters + noise) {
          purchases.push(purchase(e.member_id, e.at - 30_000, 5_000, "before"))
        } else if (i < converters + 2 * noise) {
          purchases.push(purchase(e.member_id, e.at + WINDOW_MS + 20_000, 5_000, "after"))
        }
      })
      expected.set(variant, { n: arm.length, x: converters, cents })
    }
    for (const memberId of held.slice(0, 100)) purchases.push(purchase(memberId, Date.now(), 7_000, "held"))
    await publishEvents(nc, topology, purchases)
    const totalConverters = [...expected.values()].reduce((sum, arm) => sum + arm.x, 0)
    await eventually(async () => {
      const [events] = await engine.sql<{ n: number }>("SELECT count() AS n FROM events FINAL WHERE type = 'purchase'")
      const [conversions] = await engine.sql<{ n: number }>(`SELECT count() AS n FROM conversions FINAL WHERE journey_id = '${JOURNEY_ID}'`)
      return events?.n === purchases.length && (conversions?.n ?? 0) >= totalConverters
    }, 120_000, "every purchase recorded")
    // a batch's conversion rows are inserted alongside its event rows: let the last insert land
    await new Promise((r) => setTimeout(r, 1_000))

    const rows = await engine.sql<LiftRow>(`SELECT * FROM campaign_lift WHERE journey_id = '${JOURNEY_ID}'`)
    expect(rows.map((r) => r.variant)).toEqual(["control", "gift", "points"])
    const control = expected.get("control") ?? { n: 0, x: 0, cents: 0 }
    const comparisons = new Map(["gift", "points"].map((v) => {
      const arm = expected.get(v) ?? { n: 0, x: 0, cents: 0 }
      return [v, compare(arm.x, arm.n, control.x, control.n)] as const
    }))
    const rawPs = ["gift", "points"].map((v) => comparisons.get(v)?.p ?? 1)
    const adjusted = new Map(["gift", "points"].map((v, i) => [v, holm(rawPs)[i] ?? null]))
    for (const row of rows) {
      const arm = expected.get(row.variant) ?? { n: 0, x: 0, cents: 0 }
      const what = (column: string) => `${row.variant}.${column}`
      expect(row.enrolled, what("enrolled")).toBe(arm.n)
      expect(row.converted, what("converted")).toBe(arm.x)
      close(row.conversion_rate, arm.x / arm.n, what("conversion_rate"))
      expect(Math.round(row.revenue * 100), what("revenue")).toBe(arm.cents)
      close(row.revenue_per_member, arm.cents / 100 / arm.n, what("revenue_per_member"))
      close(row.srm_p_value, srmP(arm.n, entering, PLANNED[row.variant] ?? 0), what("srm_p_value"))
      expect(row.srm_flag, what("srm_flag")).toBe(srmP(arm.n, entering, PLANNED[row.variant] ?? 0) < 0.001 ? 1 : 0)
      const c = comparisons.get(row.variant)
      close(row.lift, c?.lift ?? null, what("lift"))
      close(row.lift_ci_low, c?.ciLow ?? null, what("lift_ci_low"))
      close(row.lift_ci_high, c?.ciHigh ?? null, what("lift_ci_high"))
      close(row.p_value_raw, c?.p ?? null, what("p_value_raw"))
      close(row.p_value, adjusted.get(row.variant) ?? null, what("p_value"))
    }
    // the designed effect is visible: gift wins clearly, points does not
    expect(rows[1]?.p_value ?? 1).toBeLessThan(0.001)
    expect(rows[2]?.p_value ?? 0).toBeGreaterThan(0.05)
  }, 400_000)

  it("memberflow lift prints the table and a verdict per variant in words", async () => {
    const result = await runCli(["lift", JOURNEY_ID], env)
    expect(result.code, result.stderr).toBe(0)
    expect(result.stdout).toMatch(/^arm\s+enrolled\s+converted\s+rate\s+lift \(95% CI\)\s+p\s+revenue\/member\s+SRM$/m)
    expect(result.stdout).toMatch(/^gift beats control: \+\d+% conversion, 95% CI \+\d+% to \+\d+%, p < 0\.001$/m)
    expect(result.stdout).toMatch(/^points vs control: no clear difference \(\+\d+\.\d% conversion, 95% CI -\d+(\.\d)?% to \+\d+(\.\d)?%, p = 0\.\d+\)$/m)
    expect(result.stdout).not.toMatch(/sample ratio mismatch/)
  })

  it("memberflow lift refuses an unknown journey with a clear message and a non-zero exit", async () => {
    const typo = await runCli(["lift", "lift-ofer"], env)
    expect(typo.code).not.toBe(0)
    expect(typo.stdout + typo.stderr).toContain(`no journey "lift-ofer" in the engine's ClickHouse (did you mean "${JOURNEY_ID}"?)`)
    const hostile = await runCli(["lift", "x' OR 1=1 --"], env)
    expect(hostile.code).not.toBe(0)
    expect(hostile.stdout + hostile.stderr).toContain(`"x' OR 1=1 --" is not a journey id`)
  })
})

// ------------------------------------------------------------------------------------------------
// (b): the view's own logic on rows written directly: sample-ratio check, versions, zero conversions.

const enrollmentRows = (journey: string, version: string, variant: string, count: number) =>
  Array.from({ length: count }, (_, i) => ({
    enrollment_id: `${journey}-${version}-${variant}-${i}`,
    journey_id: journey,
    journey_version: version,
    member_id: `${journey}-${version}-${variant}-${i}`,
    variant,
    entered_at: "2026-03-01 10:00:00.000",
    trigger_event_id: "",
    status: "completed",
    exited_at: null,
    exit_reason: "",
    version: 1
  }))

const planRows = (journey: string, version: string, weights: Record<string, number>) =>
  Object.entries(weights).map(([variant, weight]) => ({
    journey_id: journey,
    journey_version: version,
    variant,
    weight_percent: weight,
    category: "marketing",
    goal_event: "purchase",
    goal_within_seconds: 86_400,
    loaded_at: "2026-03-01 09:00:00.000"
  }))

const conversionRows = (journey: string, variant: string, count: number, value: number) =>
  Array.from({ length: count }, (_, i) => ({
    journey_id: journey,
    enrollment_id: `${journey}-v1-${variant}-${i}`,
    variant,
    member_id: `${journey}-v1-${variant}-${i}`,
    event_id: `buy-${journey}-${variant}-${i}`,
    converted_at: "2026-03-01 11:00:00.000",
    value
  }))

const liftOf = (journey: string) =>
  Effect.flatMap(Clickhouse, (clickhouse) => clickhouse.query<LiftRow>("SELECT * FROM campaign_lift WHERE journey_id = {journey:String}", { journey }))

describe("campaign_lift on rows written directly", () => {
  layer(tempClickhouseLayer())((it) => {
    it.effect("an arm whose size strays from its planned weight is flagged, a balanced one is not", () =>
      Effect.gen(function* () {
        const clickhouse = yield* Clickhouse
        yield* clickhouse.insert("journey_variants", [
          ...planRows("skewed", "v1", { control: 50, treat: 50 }),
          ...planRows("balanced", "v1", { control: 50, treat: 50 })
        ])
        yield* clickhouse.insert("journey_enrollments", [
          ...enrollmentRows("skewed", "v1", "control", 5000),
          ...enrollmentRows("skewed", "v1", "treat", 5400),
          ...enrollmentRows("balanced", "v1", "control", 5000),
          ...enrollmentRows("balanced", "v1", "treat", 5050)
        ])
        const skewed = yield* liftOf("skewed")
        expect(skewed.map((r) => [r.variant, r.srm_flag])).toEqual([["control", 1], ["treat", 1]])
        for (const row of skewed) close(row.srm_p_value, srmP(row.enrolled, 10_400, 0.5), `skewed ${row.variant}`)
        expect(skewed[0]?.srm_p_value ?? 1).toBeLessThan(0.001)
        const balanced = yield* liftOf("balanced")
        expect(balanced.map((r) => [r.variant, r.srm_flag])).toEqual([["control", 0], ["treat", 0]])
        for (const row of balanced) close(row.srm_p_value, srmP(row.enrolled, 10_050, 0.5), `balanced ${row.variant}`)
      }))

    it.effect("versions with different splits are pooled against the split each member entered under", () =>
      Effect.gen(function* () {
        const clickhouse = yield* Clickhouse
        yield* clickhouse.insert("journey_variants", [
          ...planRows("resplit", "v1", { control: 50, treat: 50 }),
          ...planRows("resplit", "v2", { control: 10, treat: 90 })
        ])
        yield* clickhouse.insert("journey_enrollments", [
          ...enrollmentRows("resplit", "v1", "control", 2000),
          ...enrollmentRows("resplit", "v1", "treat", 2000),
          ...enrollmentRows("resplit", "v2", "control", 1000),
          ...enrollmentRows("resplit", "v2", "treat", 9000)
        ])
        // 3,000 of 14,000 in control is what the two splits predict (against v2's 10% alone it would be far off)
        const rows = yield* liftOf("resplit")
        expect(rows.map((r) => [r.variant, r.enrolled, r.srm_p_value, r.srm_flag])).toEqual([["control", 3000, 1, 0], ["treat", 11000, 1, 0]])
      }))

    it.effect("a planned arm nobody entered is a mismatch; an arm of a version with no recorded plan is not judged", () =>
      Effect.gen(function* () {
        const clickhouse = yield* Clickhouse
        yield* clickhouse.insert("journey_variants", planRows("empty-arm", "v1", { control: 20, a: 40, b: 40 }))
        yield* clickhouse.insert("journey_enrollments", [
          ...enrollmentRows("empty-arm", "v1", "control", 2000),
          ...enrollmentRows("empty-arm", "v1", "a", 4000),
          ...enrollmentRows("unplanned", "v9", "control", 100),
          ...enrollmentRows("unplanned", "v9", "a", 300)
        ])
        const rows = yield* liftOf("empty-arm")
        expect(rows.map((r) => [r.variant, r.enrolled, r.srm_flag])).toEqual([["control", 2000, 1], ["a", 4000, 1], ["b", 0, 1]])
        expect(rows[2]?.conversion_rate).toBeNull()
        const unplanned = yield* liftOf("unplanned")
        expect(unplanned.map((r) => [r.variant, r.srm_p_value, r.srm_flag])).toEqual([["control", null, 0], ["a", null, 0]])
      }))

    it.effect("zero conversions give zero rates and no lift instead of a division by zero", () =>
      Effect.gen(function* () {
        const clickhouse = yield* Clickhouse
        yield* clickhouse.insert("journey_variants", [
          ...planRows("none", "v1", { control: 50, a: 50 }),
          ...planRows("no-control-conv", "v1", { control: 50, a: 25, b: 25 })
        ])
        yield* clickhouse.insert("journey_enrollments", [
          ...enrollmentRows("none", "v1", "control", 500),
          ...enrollmentRows("none", "v1", "a", 500),
          ...enrollmentRows("no-control-conv", "v1", "control", 400),
          ...enrollmentRows("no-control-conv", "v1", "a", 200),
          ...enrollmentRows("no-control-conv", "v1", "b", 200)
        ])
        yield* clickhouse.insert("conversions", conversionRows("no-control-conv", "a", 10, 20))
        const none = yield* liftOf("none")
        expect(none.map((r) => [r.variant, r.converted, r.conversion_rate, r.revenue, r.revenue_per_member, r.lift, r.lift_ci_low, r.p_value])).toEqual([
          ["control", 0, 0, 0, 0, null, null, null],
          ["a", 0, 0, 0, 0, null, null, null]
        ])
        // control converted nobody: no ratio, but the z-test still compares 10/200 and 0/200 with 0/400
        const noControl = yield* liftOf("no-control-conv")
        const a = noControl.find((r) => r.variant === "a")
        const b = noControl.find((r) => r.variant === "b")
        expect([a?.lift, a?.lift_ci_low, a?.lift_ci_high]).toEqual([null, null, null])
        const pA = compare(10, 200, 0, 400).p ?? 0
        close(a?.p_value_raw, pA, "a p_value_raw")
        expect([b?.lift, b?.lift_ci_low, b?.p_value_raw]).toEqual([null, null, null])
        close(a?.p_value, Math.min(1, pA), "a p_value (the only test in the family)")
      }))

    it.effect("a purchase that converts two enrollments of one member counts once in converted and revenue", () =>
      Effect.gen(function* () {
        const clickhouse = yield* Clickhouse
        yield* clickhouse.insert("journey_enrollments", [
          ...enrollmentRows("twice", "v1", "control", 100),
          ...enrollmentRows("twice", "v1", "a", 100),
          { ...enrollmentRows("twice", "v1", "a", 1)[0], enrollment_id: "twice-again" }
        ])
        yield* clickhouse.insert("conversions", [
          ...conversionRows("twice", "control", 5, 10),
          ...conversionRows("twice", "a", 8, 25),
          { ...conversionRows("twice", "a", 1, 25)[0], enrollment_id: "twice-again" }
        ])
        const rows = yield* liftOf("twice")
        expect(rows.map((r) => [r.variant, r.enrolled, r.converted, r.revenue])).toEqual([["control", 100, 5, 50], ["a", 100, 8, 200]])
        const c = compare(8, 100, 5, 100)
        const a = rows[1]
        close(a?.lift ?? null, c.lift, "lift")
        close(a?.lift_ci_low ?? null, c.ciLow, "lift_ci_low")
        close(a?.lift_ci_high ?? null, c.ciHigh, "lift_ci_high")
        close(a?.p_value ?? null, c.p, "p_value")
      }))

    it.effect("the view gives the same answer whatever the server's join_use_nulls", () =>
      Effect.gen(function* () {
        const clickhouse = yield* Clickhouse
        const plain = yield* clickhouse.query("SELECT * FROM campaign_lift")
        const withNulls = yield* clickhouse.query("SELECT * FROM campaign_lift SETTINGS join_use_nulls = 1")
        expect(plain.length).toBeGreaterThan(0)
        expect(withNulls).toEqual(plain)
      }))
  })
})

describe("the lift report's words", () => {
  const row = (variant: string, enrolled: number, converted: number, extra: Partial<ReportRow> = {}): ReportRow => ({
    journey_id: "j",
    variant,
    enrolled,
    converted,
    conversion_rate: converted / enrolled,
    revenue: 0,
    revenue_per_member: 0,
    lift: null,
    lift_ci_low: null,
    lift_ci_high: null,
    p_value: null,
    planned_percent: 50,
    observed_percent: 50,
    srm_p_value: 0.5,
    srm_flag: 0,
    ...extra
  })

  it("says control wins when a variant converts significantly less, and names a mismatched split", () => {
    const lines = report("j", [
      row("control", 1000, 120),
      row("offer", 1400, 70, { lift: -0.5833, lift_ci_low: -0.69, lift_ci_high: -0.44, p_value: 0.00002, observed_percent: 58.3, srm_p_value: 0.00001, srm_flag: 1 })
    ])
    expect(lines).toContain("offer vs control: control wins (-58% conversion, 95% CI -69% to -44%, p < 0.001)")
    expect(lines.some((line) => line.startsWith("warning: sample ratio mismatch in arm offer: 50.0% of entrants planned, 58.3% enrolled (1,400 members; p < 0.001)"))).toBe(true)
    expect(lines.join("\n")).toMatch(/^offer +1,400 +70 +5\.00% +-58% \(-69% to -44%\) +< 0\.001 +0\.00 +MISMATCH$/m)
  })

  it("says when there is nothing to conclude yet, or no control to compare with", () => {
    expect(report("j", [row("control", 100, 0), row("a", 100, 0)])).toContain("a vs control: not enough conversions to compare yet")
    expect(report("j", [row("a", 100, 3), row("b", 100, 5)])).toContain("a: no control group in this journey, nothing to compare with")
    // control converted nobody: no ratio, but the variant's higher rate still decides the direction
    expect(report("j", [row("control", 400, 0), row("a", 200, 10, { p_value: 0.0001 })])).toContain("a beats control: p < 0.001")
  })
})
