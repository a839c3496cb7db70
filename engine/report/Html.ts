/**
 * Text into HTML and SVG. Everything a report shows from a journey file or from ClickHouse passes
 * through `escapeHtml`: a journey name is a marketer's free text and must never become markup.
 */

const ENTITIES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }

/** Safe inside element content and inside quoted attribute values alike. */
export const escapeHtml = (text: string): string => text.replace(/[&<>"']/g, (c) => ENTITIES[c] ?? c)

/** Wide (CJK, fullwidth) characters take about one em. */
const isWide = (code: number): boolean =>
  (code >= 0x1100 && code <= 0x115f) || (code >= 0x2e80 && code <= 0xa4cf) || (code >= 0xac00 && code <= 0xd7a3) ||
  (code >= 0xf900 && code <= 0xfaff) || (code >= 0xfe30 && code <= 0xfe4f) || (code >= 0xff00 && code <= 0xff60) ||
  (code >= 0xffe0 && code <= 0xffe6) || code >= 0x1f300

/**
 * An estimate of the rendered width: SVG text does not wrap, and the report has no script to
 * measure it, so boxes and labels are sized from this (generously) and long text is cut.
 */
export const textWidth = (text: string, fontSize: number, bold = false): number => {
  let ems = 0
  for (const char of text) ems += emsOf(char)
  return ems * fontSize * (bold ? 1.07 : 1)
}

/** Rough advance widths of a Helvetica-like face, a little generous so that text fits its box. */
const emsOf = (char: string): number => {
  const code = char.codePointAt(0) ?? 0
  if (isWide(code)) return 1
  if ("iljtfrI.,:;'|!() ".includes(char)) return 0.34
  if ("mwMW@%".includes(char)) return 0.9
  if (char >= "A" && char <= "Z") return 0.7
  if (char >= "0" && char <= "9") return 0.58
  return 0.56
}

/** The text cut with an ellipsis to fit `width`. */
export const fitText = (text: string, width: number, fontSize: number, bold = false): string => {
  if (textWidth(text, fontSize, bold) <= width) return text
  let out = ""
  for (const char of text) {
    if (textWidth(`${out}${char}…`, fontSize, bold) > width) break
    out += char
  }
  return `${out}…`
}

/** `<text>` whose content is cut to `width`; when cut, the whole text is its tooltip. */
export const svgText = (
  x: number,
  y: number,
  text: string,
  options: { readonly width: number; readonly size: number; readonly bold?: boolean; readonly anchor?: "start" | "middle" | "end"; readonly cls?: string }
): string => {
  const shown = fitText(text, options.width, options.size, options.bold ?? false)
  const attrs = [
    `x="${round(x)}"`,
    `y="${round(y)}"`,
    `font-size="${options.size}"`,
    ...(options.bold === true ? ['font-weight="600"'] : []),
    ...(options.anchor === undefined || options.anchor === "start" ? [] : [`text-anchor="${options.anchor}"`]),
    ...(options.cls === undefined ? [] : [`class="${options.cls}"`])
  ].join(" ")
  const title = shown === text ? "" : `<title>${escapeHtml(text)}</title>`
  return `<text ${attrs}>${title}${escapeHtml(shown)}</text>`
}

/** Coordinates with at most one decimal keep the SVG short. */
export const round = (n: number): number => Math.round(n * 10) / 10

export const formatCount = (n: number): string => n.toLocaleString("en-US")

/** 0.1234 → "12.3%"; small rates keep two decimals so they are not all "0%". */
export const formatRate = (rate: number): string => {
  const points = rate * 100
  return `${Math.abs(points) < 10 ? points.toFixed(2) : points.toFixed(1)}%`
}

/** A UTC time a person reads: 2026-03-01 10:00 UTC. */
export const formatTime = (ms: number): string => `${new Date(ms).toISOString().slice(0, 16).replace("T", " ")} UTC`
