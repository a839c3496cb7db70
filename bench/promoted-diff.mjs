/**
 * `node bench/promoted-diff.mjs <earlier.json> <later.json> [rows]`: what two of bench/promoted.mjs's
 * profiles of one engine differ by — the bytes that outlived the young generation in between — by
 * the function that allocated them, and by the last four calls of the stack. The figures are
 * sampled (one sample per 64 KB allocated), and objects still young at either end count as if
 * promoted, so read sums of tens of MB, not single ones. The sampler's own reads of its profile
 * show as `node:inspector` lines.
 */
import { readFileSync } from "node:fs"

const [earlier, later, rowsArg] = process.argv.slice(2)
if (earlier === undefined || later === undefined) {
  process.stderr.write("usage: node bench/promoted-diff.mjs <earlier.json> <later.json> [rows]\n")
  process.exit(2)
}
const rows = Number(rowsArg ?? 25)

const nameOf = ({ callFrame: frame }) => `${frame.functionName || "(anonymous)"} ${frame.url.split("/").pop()}:${frame.lineNumber + 1}`

/** Self bytes by function and by the stack's last four calls. */
const bytesOf = (file) => {
  const { head } = JSON.parse(readFileSync(file, "utf8"))
  const byFunction = new Map()
  const byStack = new Map()
  const add = (map, key, bytes) => map.set(key, (map.get(key) ?? 0) + bytes)
  const walk = (node, stack) => {
    const here = [...stack.slice(-3), nameOf(node)]
    if (node.selfSize > 0) {
      add(byFunction, nameOf(node), node.selfSize)
      add(byStack, here.toReversed().join(" < "), node.selfSize)
    }
    for (const child of node.children ?? []) walk(child, here)
  }
  walk(head, [])
  return { byFunction, byStack }
}

const before = bytesOf(earlier)
const after = bytesOf(later)
const mb = (bytes) => (bytes / 1e6).toFixed(1).padStart(8)
const print = (title, key) => {
  const grown = [...after[key]].map(([name, bytes]) => [name, bytes - (before[key].get(name) ?? 0)]).sort((a, b) => b[1] - a[1])
  process.stdout.write(`${title}\n`)
  for (const [name, bytes] of grown.slice(0, rows)) process.stdout.write(`${mb(bytes)} MB  ${name}\n`)
}
const total = [...after.byFunction.values()].reduce((a, b) => a + b, 0) - [...before.byFunction.values()].reduce((a, b) => a + b, 0)
process.stdout.write(`promoted in between: ${mb(total).trim()} MB\n`)
print("by function:", "byFunction")
print("by stack (innermost first):", "byStack")
