/**
 * "Did you mean" hints for marketers' typos: optimal-string-alignment distance (Levenshtein plus
 * adjacent transpositions), case-insensitive, so `minSpnd`, `minspend` and `mniSpend` all find `minSpend`.
 */
export const editDistance = (a: string, b: string): number => {
  const rows = a.length + 1
  const cols = b.length + 1
  const d: Array<Array<number>> = Array.from({ length: rows }, (_, i) =>
    Array.from({ length: cols }, (_, j) => (i === 0 ? j : j === 0 ? i : 0))
  )
  const at = (i: number, j: number): number => d[i]?.[j] ?? Number.POSITIVE_INFINITY
  for (let i = 1; i < rows; i++) {
    const row = d[i]
    if (row === undefined) continue
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      let best = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost)
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        best = Math.min(best, at(i - 2, j - 2) + 1)
      }
      row[j] = best
    }
  }
  return at(a.length, b.length)
}

/** The closest candidate, if it is close enough to be the likely intent (a third of the word). */
export const closest = (word: string, candidates: Iterable<string>): string | undefined => {
  const lower = word.toLowerCase()
  let best: { readonly candidate: string; readonly distance: number } | undefined
  for (const candidate of candidates) {
    const distance = editDistance(lower, candidate.toLowerCase())
    const allowed = Math.max(1, Math.floor(Math.max(word.length, candidate.length) / 3))
    if (distance <= allowed && (best === undefined || distance < best.distance)) {
      best = { candidate, distance }
    }
  }
  return best?.candidate
}

export const didYouMean = (word: string, candidates: Iterable<string>): string => {
  const hint = closest(word, candidates)
  return hint === undefined ? "" : ` (did you mean "${hint}"?)`
}
