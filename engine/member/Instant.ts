/**
 * ISO-8601 text of an instant and back, as Date gives them, remembering the last of each: one
 * write stamps every event and row it makes with the same `now`, and derives many events from
 * one cause (the same `occurredAt`).
 */

let isoMs = Number.NaN
let isoText = ""

/** new Date(ms).toISOString() */
export const isoOf = (ms: number): string => {
  if (ms !== isoMs) {
    isoText = new Date(ms).toISOString()
    isoMs = ms
  }
  return isoText
}

let parsedText: string | undefined
let parsedMs = Number.NaN

/** Date.parse(text) */
export const timeOf = (text: string): number => {
  if (text !== parsedText) {
    parsedMs = Date.parse(text)
    parsedText = text
  }
  return parsedMs
}
