/**
 * Who the demo's members are: where they live, what they read, how to reach them. Plain functions
 * of a seeded random source, so a seed gives the same brand every time.
 */

export type Random = () => number

/** A 32-bit hash of a string (cyrb53's mixing, low half). */
export const hashString = (text: string): number => {
  let h1 = 0xdeadbeef
  let h2 = 0x41c6ce57
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    h1 = Math.imul(h1 ^ c, 2654435761)
    h2 = Math.imul(h2 ^ c, 1597334677)
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909)
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909)
  return (h1 ^ h2) >>> 0
}

/** mulberry32 seeded by a string: small, fast, good enough for synthetic data. */
export const randomOf = (seed: string): Random => {
  let state = hashString(seed)
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** A uniform number in [lo, hi). */
export const between = (random: Random, lo: number, hi: number): number => lo + random() * (hi - lo)
export const intBetween = (random: Random, lo: number, hi: number): number => Math.floor(between(random, lo, hi + 1))
export const pick = <A>(random: Random, items: ReadonlyArray<A>): A => items[Math.floor(random() * items.length)] as A

/** One of `choices` by weight. */
export const weighted = <A>(random: Random, choices: ReadonlyArray<readonly [A, number]>): A => {
  const total = choices.reduce((sum, [, w]) => sum + w, 0)
  let u = random() * total
  for (const [value, w] of choices) {
    if (u < w) return value
    u -= w
  }
  return (choices[choices.length - 1] as readonly [A, number])[0]
}

export interface Place {
  readonly timezone: string
  /** share of the brand's members */
  readonly share: number
  readonly locales: ReadonlyArray<readonly [string, number]>
  readonly phone: (random: Random) => string
  /** share of members here who follow the brand on WeChat */
  readonly wechat: number
}

const digits = (random: Random, n: number): string => Array.from({ length: n }, () => String(Math.floor(random() * 10))).join("")

/** Mostly mainland China; Taiwan and Hong Kong; a few overseas members. */
export const PLACES: ReadonlyArray<Place> = [
  { timezone: "Asia/Shanghai", share: 0.8, locales: [["zh-CN", 1]], phone: (r) => `+861${pick(r, ["3", "5", "7", "8", "9"])}${digits(r, 9)}`, wechat: 0.7 },
  { timezone: "Asia/Taipei", share: 0.08, locales: [["zh-TW", 1]], phone: (r) => `+8869${digits(r, 8)}`, wechat: 0.3 },
  { timezone: "Asia/Hong_Kong", share: 0.06, locales: [["zh-TW", 0.7], ["en", 0.3]], phone: (r) => `+852${pick(r, ["5", "6", "9"])}${digits(r, 7)}`, wechat: 0.35 },
  { timezone: "Europe/London", share: 0.03, locales: [["en", 0.8], ["zh-CN", 0.2]], phone: (r) => `+447${digits(r, 9)}`, wechat: 0.15 },
  {
    timezone: "America/Los_Angeles",
    share: 0.03,
    locales: [["en", 0.7], ["zh-CN", 0.3]],
    phone: (r) => `+1${pick(r, ["213", "310", "323", "424", "626", "818"])}${intBetween(r, 2, 9)}${digits(r, 6)}`,
    wechat: 0.2
  }
]

const SURNAMES_CN = ["王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭", "何", "林", "高", "罗"]
const GIVEN_CN = ["伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "洋", "艳", "杰", "娟", "涛", "明", "超", "霞", "嘉欣", "子涵", "雨桐", "浩然", "思远", "欣怡", "梓萱", "宇轩", "一诺", "晓婷"]
const SURNAMES_TW = ["陳", "林", "黃", "張", "李", "王", "吳", "劉", "蔡", "楊", "許", "鄭", "謝", "郭", "洪"]
const GIVEN_TW = ["怡君", "雅婷", "家豪", "志明", "俊傑", "淑芬", "美玲", "宗翰", "冠宇", "詩涵", "承恩", "宜蓁", "佩珊", "柏翰"]
const FIRST_EN = ["Olivia", "Amelia", "Isla", "Ava", "Oliver", "George", "Noah", "Arthur", "Emma", "Liam", "Sophia", "Lucas", "Mia", "Ethan", "Grace", "Henry", "Chloe", "Leo"]
const LAST_EN = ["Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Chan", "Wong", "Lee", "Garcia", "Miller", "Ng"]

export const nameFor = (random: Random, locale: string): string =>
  locale === "zh-CN"
    ? `${pick(random, SURNAMES_CN)}${pick(random, GIVEN_CN)}`
    : locale === "zh-TW"
      ? `${pick(random, SURNAMES_TW)}${pick(random, GIVEN_TW)}`
      : `${pick(random, FIRST_EN)} ${pick(random, LAST_EN)}`

const OPENID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"

/** Shaped like an official account's openid: 28 characters starting with `o`. */
export const openIdFor = (random: Random): string => `o${Array.from({ length: 27 }, () => pick(random, [...OPENID_CHARS])).join("")}`

/** Reserved example domains (RFC 2606): nothing real is ever addressed. */
export const emailFor = (random: Random, memberId: string, name: string, locale: string): string => {
  const domain = pick(random, ["example.com", "example.net", "example.org"])
  const local = locale === "en" ? name.toLowerCase().replace(/[^a-z]+/g, ".") : `m${memberId.replace(/[^0-9a-z]/gi, "").toLowerCase()}`
  return `${local}${intBetween(random, 1, 99)}@${domain}`
}
