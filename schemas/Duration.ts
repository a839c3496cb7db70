import { Either, ParseResult, Schema } from "effect"

const UNIT_MS = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 } as const

/** Parses `30m`, `2h`, `3d`, `2w`, `45s` into milliseconds. */
export const parseDuration = (text: string): Either.Either<number, string> => {
  const match = /^(\d+)(s|m|h|d|w)$/.exec(text.trim())
  if (match === null) {
    return Either.left(`"${text}" is not a duration (expected a number and a unit: 30m, 2h, 3d, 2w)`)
  }
  const [, amount, unit] = match
  return Either.right(Number(amount) * UNIT_MS[unit as keyof typeof UNIT_MS])
}

/** A duration string in YAML, decoded to milliseconds. */
export const Duration = Schema.transformOrFail(Schema.String, Schema.Number, {
  strict: true,
  decode: (text, _, ast) =>
    Either.mapLeft(parseDuration(text), (message) => new ParseResult.Type(ast, text, message)),
  encode: (ms) => ParseResult.succeed(`${Math.round(ms / 1000)}s`)
}).annotations({ identifier: "Duration", description: "30m, 2h, 3d, 2w" })
