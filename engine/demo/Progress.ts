/**
 * What `memberflow demo` says while it runs and when it is done: one plain line every few seconds
 * on stderr (no terminal tricks, so it reads the same in a log), and tables at the end. Pure
 * formatting over numbers the demo collected.
 */

export interface Sample {
  readonly name: string
  readonly labels: Readonly<Record<string, string>>
  readonly value: number
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$/
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g

/** The samples of a Prometheus text exposition (comments skipped). */
export const parseMetrics = (text: string): ReadonlyArray<Sample> =>
  text.split("\n").flatMap((line) => {
    if (line.startsWith("#")) return []
    const match = SAMPLE.exec(line.trim())
    if (match === null) return []
    const labels: Record<string, string> = {}
    for (const [, key, value] of (match[2] ?? "").matchAll(LABEL)) if (key !== undefined) labels[key] = (value ?? "").replace(/\\(.)/g, "$1")
    const value = Number(match[3])
    return Number.isFinite(value) ? [{ name: match[1] ?? "", labels, value }] : []
  })

export const total = (samples: ReadonlyArray<Sample>, name: string): number =>
  samples.reduce((sum, sample) => (sample.name === name ? sum + sample.value : sum), 0)

export const n = (value: number): string => Math.round(value).toLocaleString("en-US")

export interface Snapshot {
  readonly elapsedMs: number
  readonly phase: string
  readonly published: number
  readonly history: number
  /** events the engine applied (its own derived and timer events included) */
  readonly applied: number
  /** events in the stream the engine has not finished yet; null when unknown */
  readonly backlog: number | null
  /** journey → enrollments */
  readonly enrolled: ReadonlyMap<string, number>
  /** "channel/status" → messages, by their current status */
  readonly messages: ReadonlyMap<string, number>
  readonly responses: { readonly planned: number; readonly published: number }
  readonly conversions: number
}

const seconds = (ms: number): string => `${Math.round(ms / 1000)}s`.padStart(4)

/** Per channel, what was handed over; then what is still queued and what the policy held back. */
export const messagesText = (messages: ReadonlyMap<string, number>): string => {
  const by = (channel: string, status: string) => messages.get(`${channel}/${status}`) ?? 0
  const channels = [...new Set([...messages.keys()].map((key) => key.split("/")[0] ?? ""))].filter((c) => c !== "").sort()
  if (channels.length === 0) return "messages: none yet"
  const sum = (status: string) => channels.reduce((s, c) => s + by(c, status), 0)
  const sent = channels.map((c) => `${c} ${n(by(c, "sent") + by(c, "delivered"))}`).join(", ")
  return `sent ${sent} (${n(sum("queued"))} queued, ${n(sum("suppressed"))} suppressed, ${n(sum("failed"))} failed)`
}

export const progressLine = (s: Snapshot): string => {
  const enrolled = [...s.enrolled.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([journey, count]) => `${journey} ${n(count)}`)
  return [
    `[${seconds(s.elapsedMs)}] ${s.phase}`,
    `published ${n(s.published)}/${n(s.history)}`,
    `applied ${n(s.applied)}${s.backlog === null ? "" : ` (backlog ${n(s.backlog)})`}`,
    `enrolled: ${enrolled.length === 0 ? "none yet" : enrolled.join(", ")}`,
    messagesText(s.messages),
    `responses ${n(s.responses.published)}/${n(s.responses.planned)}, conversions ${n(s.conversions)}`
  ].join(" · ")
}

/** A small text table; numbers right-aligned. */
export const table = (header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string | number>>): string => {
  const cells = rows.map((row) => row.map((cell) => (typeof cell === "number" ? n(cell) : cell)))
  const numeric = header.map((_, i) => rows.length > 0 && rows.every((row) => typeof row[i] === "number"))
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((row) => (row[i] ?? "").length)))
  const line = (row: ReadonlyArray<string>) =>
    row.map((cell, i) => (numeric[i] === true ? cell.padStart(widths[i] ?? 0) : cell.padEnd(widths[i] ?? 0))).join("  ").trimEnd()
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...cells.map(line)].join("\n")
}
