import { writeFileSync } from "node:fs"
import { join } from "node:path"
import { tempDir } from "../../support/engine.ts"

/** A small program that loads cleanly; tests break one thing at a time. */
export const VALID_PROGRAM = `currency: CNY
timezone: Asia/Shanghai
tiers:
  source: computed
  levels:
    - { id: classic, name: 普卡, minSpend: 0 }
    - id: silver
      name: 銀卡
      minSpend: 5000
    - { id: gold, name: 金卡, minSpend: 20000, keepSpend: 15000 }
rfm:
  scores: quintiles
tags:
  - id: dormant-vip
    when:
      all:
        - { attribute: rfm.m, gte: 4 }
        - { event: purchase, count: { lt: 1 }, within: 120d }
  - id: new-member
    when: { event: member.registered, within: 30d }
`

/** Writes `program.yaml` into a fresh temporary directory; returns the directory and file path. */
export const writeProgram = (text: string): { readonly dir: string; readonly file: string } => {
  const dir = tempDir("program")
  const file = join(dir, "program.yaml")
  writeFileSync(file, text)
  return { dir, file }
}

/** 1-based line and column of the nth (0-based) occurrence of `needle`, as an editor shows it. */
export const positionOf = (text: string, needle: string, occurrence = 0): string => {
  let offset = -1
  for (let i = 0; i <= occurrence; i++) {
    offset = text.indexOf(needle, offset + 1)
    if (offset < 0) return `<${needle} not found>`
  }
  const before = text.slice(0, offset).split("\n")
  return `${before.length}:${(before[before.length - 1] ?? "").length + 1}`
}
