import { Effect, Schema } from "effect"
import { spawnSync } from "node:child_process"
import { copyFileSync, cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { inflateSync } from "node:zlib"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { parse } from "yaml"
import { decodeLiftRows, verdicts } from "../../engine/Cli/LiftCommand.ts"
import { Clickhouse, make } from "../../engine/Clickhouse.ts"
import { loadJourneys } from "../../engine/journeys/JourneyFile.ts"
import { shortHash } from "../../engine/member/MemberState/Ids.ts"
import { wilson } from "../../engine/report/Charts.ts"
import { flowLayout } from "../../engine/report/FlowDiagram.ts"
import { END, flowGraph, stepKey, TRIGGER } from "../../engine/report/FlowDiagram/Graph.ts"
import { escapeHtml } from "../../engine/report/Html.ts"
import { reportHtml } from "../../engine/report/Report.ts"
import { migrate } from "../../engine/store/Migrations.ts"
import { Journey } from "../../schemas/Journey.ts"
import { chTime } from "../../schemas/Rows.ts"
import { freePort, ROOT, runCli, tempDir } from "../support/engine.ts"

/** Where the screenshot of the report is kept for a person to look at. */
const SCREENSHOT = "/tmp/memberflow-report.png"

const OFFER = `id: report-offer
name: Spring welcome offer
description: Two first-order offers against a 20% holdout.
status: active
category: marketing
trigger: { event: { type: member.registered } }
audience: { consent: any }
exit:
  - { event: consent.updated, where: { granted: false } }
goal: { event: purchase, within: 7d }
experiment:
  control: 20
  variants:
    - { id: gift, weight: 50 }
    - { id: points, weight: 50 }
steps:
  - id: offer
    send: { channel: email, template: welcome, variant: { gift: { template: welcome-first-order } } }
  - { id: pause, wait: 2d }
  - id: bought
    branch:
      - { when: { event: purchase, since: entry }, goto: done }
      - { else: true, goto: reminder }
  - id: reminder
    send: { channel: sms, template: welcome-first-order, fallback: [email] }
  - { id: done, exit: true }
`

const HOSTILE_NAME = `<script>alert('name')</script><img src=x onerror=alert(1)>`
const HOSTILE = `id: report-hostile
name: "${HOSTILE_NAME}"
description: "</p><iframe src=javascript:alert(2)></iframe> & more"
status: active
category: transactional
trigger: { event: { type: "<b>evil</b>" } }
audience: { attribute: city, eq: "<svg onload=alert(3)>" }
steps:
  - id: note
    emit: { type: "</text><script>alert(4)</script>", properties: { x: "\\"><script>alert(5)</script>" } }
  - id: check
    branch:
      - { when: { tag: "<i>vip</i>" }, goto: done }
  - { id: done, exit: true }
`

const decodeJourney = Schema.decodeUnknownSync(Journey)
const versionOf = (yaml: string) => shortHash(JSON.stringify(Schema.encodeSync(Journey)(decodeJourney(parse(yaml)))), 10)

// ------------------------------------------------------------------------------------------------
// The dataset: rows as the engine writes them, in an embedded ClickHouse the CLI then opens itself.

/** Per arm: members in the current version and in an earlier one, and how many convert. */
const ARMS = { control: { current: 800, old: 200, converters: 80 }, gift: { current: 1600, old: 400, converters: 240 }, points: { current: 1600, old: 400, converters: 170 } }
const T0 = Date.parse("2026-03-01T08:00:00Z")

interface Enrollment {
  readonly id: string
  readonly member: string
  readonly variant: string
  readonly version: string
  readonly at: number
  readonly converts: boolean
  /** still in the wait, or left on consent.updated during it */
  readonly fate: "waiting" | "exited" | "done"
}

const enrollments = (currentVersion: string): ReadonlyArray<Enrollment> =>
  Object.entries(ARMS).flatMap(([variant, arm]) =>
    Array.from({ length: arm.current + arm.old }, (_, i): Enrollment => ({
      id: `e-${variant}-${i}`,
      member: `m-${variant}-${i}`,
      variant,
      version: i < arm.old ? "0ldversion" : currentVersion,
      at: T0 + i * 600_000,
      // exactly `converters` of the arm, spread evenly over it
      converts: Math.floor(((i + 1) * arm.converters) / (arm.current + arm.old)) > Math.floor((i * arm.converters) / (arm.current + arm.old)),
      fate: i % 25 === 0 ? "waiting" : i % 50 === 1 ? "exited" : "done"
    }))
  )

const rowsFor = (list: ReadonlyArray<Enrollment>) => {
  const steps: Array<Record<string, unknown>> = []
  const step = (e: Enrollment, stepId: string, outcome: string, after: number) =>
    steps.push({ enrollment_id: e.id, journey_id: "report-offer", step_id: stepId, at: chTime(e.at + after), outcome })
  for (const e of list) {
    const send = e.variant === "control" ? "suppressed" : "queued"
    step(e, "offer", send, 0)
    step(e, "pause", "waiting", 0)
    if (e.fate !== "done") continue
    step(e, "pause", "elapsed", 172_800_000)
    step(e, "bought", e.converts ? "goto:done" : "goto:reminder", 172_800_000)
    if (!e.converts) step(e, "reminder", send, 172_800_000)
    step(e, "done", "exit", 172_800_000)
  }
  return {
    enrollments: list.map((e) => ({
      enrollment_id: e.id,
      journey_id: "report-offer",
      journey_version: e.version,
      member_id: e.member,
      variant: e.variant,
      entered_at: chTime(e.at),
      trigger_event_id: `reg-${e.member}`,
      status: e.fate === "waiting" ? "active" : e.fate === "exited" ? "exited" : "completed",
      exited_at: e.fate === "waiting" ? null : chTime(e.at + 172_800_000),
      exit_reason: e.fate === "waiting" ? "" : e.fate === "exited" ? "event:consent.updated" : "exit-step",
      version: 3
    })),
    steps,
    conversions: list
      .filter((e) => e.converts)
      .map((e) => ({ journey_id: "report-offer", enrollment_id: e.id, variant: e.variant, member_id: e.member, event_id: `buy-${e.member}`, converted_at: chTime(e.at + 86_400_000), value: 120 }))
  }
}

const plan = (version: string) =>
  Object.entries({ control: 20, gift: 40, points: 40 }).map(([variant, weight]) => ({
    journey_id: "report-offer",
    journey_version: version,
    variant,
    weight_percent: weight,
    category: "marketing",
    goal_event: "purchase",
    goal_within_seconds: 604_800,
    loaded_at: chTime(T0 - 3_600_000)
  }))

/** Writes the rows, reads the view back, and closes the database so that the CLI can open it. */
const buildDataset = (dataDir: string, currentVersion: string) =>
  Effect.scoped(
    Effect.gen(function* () {
      const clickhouse = yield* make({ dataDir })
      yield* Effect.provideService(migrate, Clickhouse, clickhouse)
      const rows = rowsFor(enrollments(currentVersion))
      yield* clickhouse.insert("journey_variants", [...plan("0ldversion"), ...plan(currentVersion)])
      yield* clickhouse.insert("journey_enrollments", rows.enrollments)
      yield* clickhouse.insert("journey_steps", rows.steps)
      yield* clickhouse.insert("conversions", rows.conversions)
      return yield* clickhouse.query("SELECT * FROM campaign_lift WHERE journey_id = 'report-offer'")
    })
  )

// ------------------------------------------------------------------------------------------------
// PNG: enough of the format to read Chromium's screenshots (8-bit RGB or RGBA, not interlaced).

const paeth = (a: number, b: number, c: number): number => {
  const p = a + b - c
  const [pa, pb, pc] = [Math.abs(p - a), Math.abs(p - b), Math.abs(p - c)]
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c
}

const decodePng = (png: Buffer): { readonly width: number; readonly height: number; readonly channels: number; readonly pixels: Uint8Array } => {
  expect(png.subarray(0, 8).toString("hex")).toBe("89504e470d0a1a0a")
  let offset = 8
  let width = 0
  let height = 0
  let channels = 0
  const idat: Array<Buffer> = []
  while (offset < png.length) {
    const length = png.readUInt32BE(offset)
    const type = png.toString("ascii", offset + 4, offset + 8)
    const data = png.subarray(offset + 8, offset + 8 + length)
    if (type === "IHDR") {
      width = data.readUInt32BE(0)
      height = data.readUInt32BE(4)
      expect([data[8], data[12]], "8-bit, not interlaced").toEqual([8, 0])
      channels = ({ 0: 1, 2: 3, 4: 2, 6: 4 } as Record<number, number>)[data[9] ?? -1] ?? 0
    }
    if (type === "IDAT") idat.push(data)
    offset += 12 + length
  }
  const raw = inflateSync(Buffer.concat(idat))
  const stride = width * channels
  const pixels = new Uint8Array(height * stride)
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)] ?? 0
    for (let x = 0; x < stride; x++) {
      const value = raw[y * (stride + 1) + 1 + x] ?? 0
      const left = x >= channels ? pixels[y * stride + x - channels] ?? 0 : 0
      const up = y > 0 ? pixels[(y - 1) * stride + x] ?? 0 : 0
      const upLeft = x >= channels && y > 0 ? pixels[(y - 1) * stride + x - channels] ?? 0 : 0
      const predictor = [0, left, up, (left + up) >> 1, paeth(left, up, upLeft)][filter] ?? 0
      pixels[y * stride + x] = (value + predictor) & 0xff
    }
  }
  return { width, height, channels, pixels }
}

// ------------------------------------------------------------------------------------------------

describe("memberflow report", () => {
  const journeys = tempDir("report-journeys")
  const dataDir = tempDir("report-data")
  const out = tempDir("report-out")
  const browserProfile = tempDir("report-chromium")
  let env: Record<string, string>
  let liftRows: ReadonlyArray<Record<string, unknown>>
  let offer: { code: number | null; stdout: string; stderr: string }
  let html: string

  beforeAll(async () => {
    cpSync(join(ROOT, "journeys/program.yaml"), join(journeys, "program.yaml"))
    mkdirSync(join(journeys, "templates"))
    cpSync(join(ROOT, "journeys/templates"), join(journeys, "templates"), { recursive: true })
    writeFileSync(join(journeys, "report-offer.yaml"), OFFER)
    writeFileSync(join(journeys, "report-hostile.yaml"), HOSTILE)
    liftRows = await Effect.runPromise(buildDataset(dataDir, versionOf(OFFER)))
    // no engine answers on this port: the CLI opens the database itself
    env = { JOURNEYS_DIR: journeys, MEMBERFLOW_DATA_DIR: dataDir, MEMBERFLOW_HTTP_PORT: String(await freePort()) }
    offer = await runCli(["report", "report-offer", "--out", join(out, "report.html")], env)
    html = existsSync(join(out, "report.html")) ? readFileSync(join(out, "report.html"), "utf8") : ""
  }, 180_000)

  // the screenshot stays at SCREENSHOT; the rest goes
  afterAll(() => {
    for (const dir of [journeys, dataDir, out, browserProfile]) rmSync(dir, { recursive: true, force: true })
  })

  it("writes one page with the journey, which versions the data covers, its flow, the funnel, and conversion and lift per arm", () => {
    expect(offer.code, offer.stderr).toBe(0)
    expect(offer.stdout).toContain(`wrote ${join(out, "report.html")}: report-offer, 5,000 enrollments over 2 versions`)
    expect(html.startsWith("<!DOCTYPE html>")).toBe(true)
    // the journey
    for (const text of ["Spring welcome offer", "report-offer", "marketing", "event member.registered", "purchase within 7d of entry", "control 20% · gift 40% · points 40%"]) {
      expect(html).toContain(text)
    }
    expect(html).toContain("entries 2026-03-01 08:00 UTC to ")
    // versions: 4,000 entered the current file, 1,000 an earlier one
    expect(html).toContain(`<code>${versionOf(OFFER)}</code> <span class="chip small">current file</span>`)
    expect(html).toMatch(/<code>0ldversion<\/code><\/td><td class="num">1,000<\/td>/)
    expect(html).toContain("4,000 enrollments entered the current file and 1,000 an earlier version")
    // the flow: every step, branch conditions, and how many reached each step
    const flow = html.slice(html.indexOf('<svg class="flow"'), html.indexOf("</svg>", html.indexOf('<svg class="flow"')))
    for (const step of ["offer", "pause", "bought", "reminder", "done"]) expect(flow).toContain(`>${step}</text>`)
    for (const label of ["purchase since entry", "otherwise", "wait 2d", "email · welcome", "variant gift: welcome-first-order"]) expect(flow).toContain(label)
    expect(flow).toContain("5,000 enrollments reached offer")
    // the funnel: entrants, then each step by outcome (a fifth of the waits still running or left early)
    const funnel = html.slice(html.indexOf('aria-label="funnel by step"'))
    expect(funnel).toContain("5,000 · 100.0%")
    expect(funnel).toContain("offer: queued to send 4,000 (80.0% of entrants)")
    expect(funnel).toContain("offer: suppressed (control arm) 1,000 (20.0% of entrants)")
    expect(funnel).toContain("pause: still waiting 200 (4.00% of entrants)")
    expect(funnel).toContain("pause: left during the wait 100 (2.00% of entrants)")
    expect(html).toContain("<td>exited</td><td>event:consent.updated</td><td class=\"num\">100</td>")
    // conversion and lift: both charts, the view's row per arm, and the lift command's verdicts
    expect(html).toContain('aria-label="conversion rate per arm with 95% interval"')
    expect(html).toContain('aria-label="relative lift over control with 95% interval"')
    const rows = decodeLiftRows(liftRows)
    if (rows._tag === "Left") throw new Error(rows.left.message)
    expect(rows.right.map((r) => [r.variant, r.enrolled, r.converted])).toEqual([["control", 1000, 80], ["gift", 2000, 240], ["points", 2000, 170]])
    const said = verdicts(rows.right)
    expect(said.some((v) => v.startsWith("gift beats control: +50% conversion"))).toBe(true)
    for (const v of said) expect(html).toContain(`<li>${escapeHtml(v)}</li>`)
    expect(html).toMatch(/<tr><td><strong>gift<\/strong><\/td><td class="num">2,000<\/td><td class="num">240<\/td><td class="num">12\.0%/)
    expect(html).not.toContain("MISMATCH")
  })

  it("opens with no network: inline style and SVG only, no script, no link, no external URL", () => {
    expect(html.length).toBeGreaterThan(5_000)
    expect(html).toContain("<style>")
    expect(html).not.toMatch(/<script|<link|<iframe|<img|<object|<embed/i)
    expect(html).not.toMatch(/\b(src|href)\s*=/i)
    expect(html).not.toMatch(/url\(\s*['"]?(https?:)?\/\//i)
    expect(html).not.toMatch(/@import/i)
    expect(html).not.toMatch(/https?:\/\//i)
  })

  it("renders in headless Chromium as a page of boxes, bars and colours, not a blank", () => {
    const file = join(out, "report.html")
    const png = join(out, "report.png")
    const result = spawnSync(
      "chromium",
      [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", `--user-data-dir=${browserProfile}`,
        `--screenshot=${png}`, "--window-size=1280,3200", `file://${file}`
      ],
      { timeout: 90_000, encoding: "utf8" }
    )
    expect(existsSync(png), `chromium exited ${result.status}: ${result.stderr?.slice(-2000)}`).toBe(true)
    copyFileSync(png, SCREENSHOT)
    const image = decodePng(readFileSync(png))
    expect([image.width, image.height]).toEqual([1280, 3200])
    let inked = 0
    const colours = new Set<number>()
    for (let i = 0; i < image.pixels.length; i += image.channels) {
      const [r, g, b] = [image.pixels[i] ?? 0, image.pixels[i + 1] ?? 0, image.pixels[i + 2] ?? 0]
      if (Math.min(r, g, b) < 200) inked++
      colours.add(((r >> 4) << 8) | ((g >> 4) << 4) | (b >> 4))
    }
    const share = inked / (image.width * image.height)
    // text, boxes, bars: a few percent of the page is ink; a blank or error page has almost none
    expect(share, `inked share ${share}`).toBeGreaterThan(0.015)
    expect(colours.size, "distinct colours").toBeGreaterThan(40)
  }, 120_000)

  it("escapes a journey name, description, event types and conditions that try to inject markup", async () => {
    const result = await runCli(["report", "report-hostile", "--out", join(out, "hostile.html")], env)
    expect(result.code, result.stderr).toBe(0)
    const page = readFileSync(join(out, "hostile.html"), "utf8")
    expect(page).not.toMatch(/<script|<img|<iframe|<svg onload|<b>|<i>vip/i)
    expect(page).toContain(`<h1>${escapeHtml(HOSTILE_NAME)}</h1>`)
    expect(page).toContain("&lt;script&gt;alert(&#39;name&#39;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;")
    expect(page).toContain("&lt;/p&gt;&lt;iframe src=javascript:alert(2)&gt;&lt;/iframe&gt; &amp; more")
    expect(page).toContain("event &lt;b&gt;evil&lt;/b&gt;")
    expect(page).toContain("city = &lt;svg onload=alert(3)&gt;")
    expect(page).toContain("tag &lt;i&gt;vip&lt;/i&gt;")
    // it has no data either: said plainly instead of empty charts
    expect(result.stdout).toContain("report-hostile has no data yet (nobody has entered it)")
    expect(page).toContain("<strong>No data yet.</strong> Nobody has entered this journey")
    expect(page).not.toContain('aria-label="funnel by step"')
    expect(page).not.toContain('aria-label="conversion rate per arm')
  }, 120_000)

  it("refuses an unknown journey with a did-you-mean, and an output file it cannot write, with exit 1", async () => {
    const typo = await runCli(["report", "report-ofer", "--out", join(out, "typo.html")], env)
    expect(typo.code).toBe(1)
    expect(typo.stdout + typo.stderr).toContain(`no journey "report-ofer" in ${journeys} (did you mean "report-offer"?)`)
    expect(existsSync(join(out, "typo.html"))).toBe(false)
    const nowhere = join(out, "missing-folder", "report.html")
    const unwritable = await runCli(["report", "report-offer", "--out", nowhere], env)
    expect(unwritable.code).toBe(1)
    expect(unwritable.stdout + unwritable.stderr).toContain(`cannot write ${nowhere}`)
  }, 120_000)
})

// ------------------------------------------------------------------------------------------------

const COMPLEX = decodeJourney(parse(`
id: complex
name: Complex
status: active
category: marketing
trigger: { event: { type: member.registered } }
steps:
  - { id: hello, send: { channel: email, template: welcome } }
  - id: route
    split: [ { weight: 70, goto: wait-buy }, { weight: 30, goto: tag-it } ]
  - id: wait-buy
    wait: { event: purchase, timeout: 3d, onEvent: thanks, onTimeout: nudge }
  - { id: nudge, when: { tag: vip }, send: { channel: sms, template: welcome-first-order } }
  - { id: loop, goto: wait-buy }
  - { id: tag-it, tag: { add: [split-b] } }
  - id: check
    branch: [ { when: { attribute: tier, in: [gold, diamond] }, goto: thanks } ]
  - { id: thanks, emit: { type: reward.granted } }
`))

describe("the flow diagram", () => {
  it("draws every step of every shipped journey once, with no two boxes overlapping", async () => {
    const loaded = await Effect.runPromise(loadJourneys(join(ROOT, "journeys")))
    expect(loaded.journeys.length).toBeGreaterThanOrEqual(6)
    for (const journey of [...loaded.journeys, COMPLEX]) {
      const layout = flowLayout(journey)
      const keys = layout.nodes.map((n) => n.node.key)
      expect(keys.filter((k) => k.startsWith("step:")).sort(), journey.id).toEqual(journey.steps.map((s) => stepKey(s.id)).sort())
      expect(keys).toContain(TRIGGER)
      for (const [i, a] of layout.nodes.entries()) {
        expect(a.x - a.width / 2, `${journey.id} ${a.node.key} inside`).toBeGreaterThanOrEqual(0)
        expect(a.x + a.width / 2, `${journey.id} ${a.node.key} inside`).toBeLessThanOrEqual(layout.width)
        for (const b of layout.nodes.slice(i + 1)) {
          const apart = a.x + a.width / 2 <= b.x - b.width / 2 || b.x + b.width / 2 <= a.x - a.width / 2 || a.y + a.height <= b.y || b.y + b.height <= a.y
          expect(apart, `${journey.id}: ${a.node.key} overlaps ${b.node.key}`).toBe(true)
        }
      }
      for (const route of layout.routes) expect(route.points.length, `${journey.id} ${route.edge.from} → ${route.edge.to}`).toBeGreaterThanOrEqual(2)
      // the main path runs top to bottom: each step of the file no higher than the trigger
      const trigger = layout.nodes.find((n) => n.node.key === TRIGGER)
      for (const n of layout.nodes) if (n.node.key !== TRIGGER) expect(n.y).toBeGreaterThan(trigger?.y ?? 0)
    }
  })

  it("labels branch conditions, split weights and wait outcomes, runs a step's skip onwards, and draws a goto back up in a side lane", () => {
    const graph = flowGraph(COMPLEX)
    const edge = (from: string, to: string) => graph.edges.find((e) => e.from === from && e.to === to)
    expect(edge(stepKey("route"), stepKey("wait-buy"))?.label).toBe("70%")
    expect(edge(stepKey("route"), stepKey("tag-it"))?.label).toBe("30%")
    expect(edge(stepKey("wait-buy"), stepKey("thanks"))?.label).toBe("purchase")
    expect(edge(stepKey("wait-buy"), stepKey("nudge"))?.label).toBe("after 3d")
    // a branch without `else` falls through to the next step when nothing matches
    expect(edge(stepKey("check"), stepKey("thanks"))?.label).toBe("tier in gold, diamond / no match")
    expect(edge(stepKey("thanks"), END)).toBeDefined()
    expect(graph.nodes.find((n) => n.key === stepKey("nudge"))?.lines).toContain("only if tag vip")
    const layout = flowLayout(COMPLEX)
    const back = layout.routes.filter((r) => r.back)
    expect(back.map((r) => [r.edge.from, r.edge.to])).toEqual([[stepKey("loop"), stepKey("wait-buy")]])
    const lane = back[0]?.points[1]?.x ?? 0
    const boxes = layout.nodes.filter((n) => n.layer >= 3 && n.layer <= 5)
    // the lane runs beside the boxes it passes, not through them
    expect(boxes.every((n) => lane < n.x - n.width / 2 || lane > n.x + n.width / 2)).toBe(true)
  })
})

describe("the report page", () => {
  it("for data from an older version only, a journey without experiment: says so, keeps the old steps, and draws no lift", async () => {
    const loaded = await Effect.runPromise(loadJourneys(join(ROOT, "journeys")))
    const journey = loaded.journeys.find((j) => j.id === "welcome-series")
    if (journey === undefined) throw new Error("welcome-series is shipped")
    const page = reportHtml({
      journey,
      currentVersion: "current123",
      generatedAt: T0 + 86_400_000 * 30,
      versions: [{ version: "older456", enrollments: 300, members: 290, firstEntry: T0, lastEntry: T0 + 86_400_000 }],
      statuses: [{ status: "completed", reason: "exit-step", enrollments: 300 }],
      steps: [
        { stepId: "welcome", outcome: "queued", enrollments: 300 },
        { stepId: "retired-step", outcome: "tagged", enrollments: 120 }
      ],
      lift: [{
        journey_id: "welcome-series", variant: "default", enrolled: 290, converted: 29, conversion_rate: 0.1, revenue: 2900, revenue_per_member: 10,
        lift: null, lift_ci_low: null, lift_ci_high: null, p_value: null, planned_percent: 100, observed_percent: 100, srm_p_value: 1, srm_flag: 0
      }],
      lastActivity: T0 + 86_400_000 * 2
    })
    expect(page).toContain("Nobody has entered the current file (version current123) yet: every number below comes from an earlier version")
    expect(page).toContain("entries 2026-03-01 08:00 UTC to 2026-03-02 08:00 UTC; last activity 2026-03-03 08:00 UTC")
    expect(page).toContain(">retired-step</text>")
    expect(page).toContain(">not in the current file</text>")
    expect(page).toContain('aria-label="conversion rate per arm with 95% interval"')
    expect(page).not.toContain('aria-label="relative lift over control')
    expect(page).toContain("No control group has entered, so there is no lift to measure")
    expect(page).toMatch(/<tr><td><strong>default<\/strong><\/td><td class="num">290<\/td><td class="num">29<\/td><td class="num">10\.0%/)
  })
})

describe("the per-arm 95% interval", () => {
  it("is the Wilson score interval (published values), and stays inside 0–100% at the edges", () => {
    const close = (actual: number | undefined, expected: number) => expect(Math.abs((actual ?? NaN) - expected)).toBeLessThan(5e-5)
    // Newcombe (1998), table I: 81/263 → 0.2553 to 0.3662; 15/148 → 0.0624 to 0.1605; 0/20 → 0 to 0.1611
    close(wilson(81, 263)?.low, 0.2553)
    close(wilson(81, 263)?.high, 0.3662)
    close(wilson(15, 148)?.low, 0.0624)
    close(wilson(15, 148)?.high, 0.1605)
    close(wilson(0, 20)?.low, 0)
    close(wilson(0, 20)?.high, 0.1611)
    close(wilson(20, 20)?.high, 1)
    expect(wilson(0, 0)).toBeNull()
  })
})
