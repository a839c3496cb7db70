import { Array as Arr, Option, type ParseResult, SchemaAST as AST } from "effect"
import { closest, didYouMean } from "./Suggest.ts"

/**
 * Turns an Effect Schema ParseIssue tree into flat problems a marketer can act on, each with the
 * path of the YAML node it is about. Unions (the condition language) would otherwise report every
 * member's failure; we keep only the member the input most resembles.
 */

export type Segment = string | number
export type YamlPath = ReadonlyArray<Segment>

export interface Problem {
  readonly path: YamlPath
  /** `key`: the key at `path`; `node`: the mapping or list at `path`; `value`: the value at `path`. */
  readonly at: "key" | "node" | "value"
  readonly kind: "unknownKey" | "missingKey" | "invalid"
  readonly message: string
  /** the missing key, or the key an unknown key was probably meant to be */
  readonly key?: string
}

interface Parent {
  readonly ast: AST.AST
  readonly actual: unknown
}

export const problemsOf = (issue: ParseResult.ParseIssue): Array<Problem> => dropExplainedMissing(walk(issue, [], undefined, undefined))

const walk = (
  issue: ParseResult.ParseIssue,
  path: YamlPath,
  parent: Parent | undefined,
  expected: AST.AST | undefined
): Array<Problem> => {
  switch (issue._tag) {
    case "Pointer": {
      return walk(issue.issue, [...path, ...Arr.ensure<PropertyKey>(issue.path).map(toSegment)], parent, undefined)
    }
    case "Composite":
      if (AST.isUnion(issue.ast)) return union(issue.ast, issue, path, parent, expected)
      return Arr.ensure(issue.issues).flatMap((child) =>
        walk(child, path, { ast: issue.ast, actual: issue.actual }, expected)
      )
    case "Transformation":
      // the outermost named transformation (e.g. Duration) describes what was expected
      return walk(issue.issue, path, parent, expected ?? issue.ast)
    case "Refinement":
      if (issue.kind === "From") return walk(issue.issue, path, parent, expected)
      return [invalid(path, messageOf(issue.issue) ?? expectedGot(issue.ast, issue.actual))]
    case "Type":
      return [invalid(path, issue.message ?? expectedGot(expected ?? issue.ast, issue.actual))]
    case "Forbidden":
      return [invalid(path, issue.message ?? "cannot be checked synchronously")]
    case "Missing":
      return [missing(path, parent)]
    case "Unexpected":
      return [unexpected(path, parent)]
  }
}

const union = (
  ast: AST.Union,
  issue: ParseResult.Composite,
  path: YamlPath,
  parent: Parent | undefined,
  expected: AST.AST | undefined
): Array<Problem> => {
  // `optional` fields are `X | undefined`: the undefined member never explains a present value
  const members = Arr.ensure(issue.issues).filter((m) => !(m._tag === "Type" && AST.isUndefinedKeyword(m.ast)))
  const [only] = members
  if (only !== undefined && members.length === 1) return walk(only, path, parent, expected)
  if (members.every(isRootType)) return [invalid(path, expectedGot(expected ?? ast, issue.actual))]
  let best: { readonly problems: Array<Problem>; readonly score: number } | undefined
  for (const member of members) {
    if (isRootType(member)) continue
    const problems = dropExplainedMissing(walk(member, path, parent, expected))
    // how badly the member's own keys disagree with the input, then how many problems in all
    const ownLevel = problems.filter(
      (p) => (p.kind === "missingKey" && p.path.length === path.length) || (p.kind === "unknownKey" && p.path.length === path.length + 1)
    ).length
    const score = ownLevel * 10_000 + problems.length
    if (best === undefined || score < best.score) best = { problems, score }
  }
  return best?.problems ?? [invalid(path, expectedGot(expected ?? ast, issue.actual))]
}

const isRootType = (issue: ParseResult.ParseIssue): boolean => {
  switch (issue._tag) {
    case "Type":
      return true
    case "Transformation":
    case "Refinement":
      return issue.kind !== "Transformation" && issue.kind !== "Predicate" && isRootType(issue.issue)
    default:
      return false
  }
}

const missing = (path: YamlPath, parent: Parent | undefined): Problem => {
  const last = path[path.length - 1]
  const at = path.slice(0, -1)
  if (parent !== undefined && AST.isTupleType(parent.ast) && typeof last === "number") {
    const needed = parent.ast.elements.filter((e) => !e.isOptional).length
    const has = Array.isArray(parent.actual) ? parent.actual.length : 0
    return { path: at, at: "node", kind: "invalid", message: `needs ${needed} items, has ${has}` }
  }
  const key = String(last)
  return { path: at, at: "node", kind: "missingKey", key, message: `missing required key "${key}"` }
}

const unexpected = (path: YamlPath, parent: Parent | undefined): Problem => {
  const last = path[path.length - 1]
  if (typeof last === "number") {
    const allowed = parent !== undefined && AST.isTupleType(parent.ast) ? parent.ast.elements.length : 0
    return invalid(path, `too many items: at most ${allowed} allowed`)
  }
  const key = String(last)
  const allowed = parent !== undefined ? keysOf(parent.ast) : []
  const suggestion = closest(key, allowed)
  const hint = suggestion === undefined ? "" : ` (did you mean "${suggestion}"?)`
  const base = { path, at: "key", kind: "unknownKey", message: `unknown key "${key}"${hint}` } as const
  return suggestion === undefined ? base : { ...base, key: suggestion }
}

/** A typo'd key also makes the real key "missing"; the "did you mean" already says so. */
const dropExplainedMissing = (problems: Array<Problem>): Array<Problem> => {
  const explained = new Set(
    problems.filter((p) => p.kind === "unknownKey" && p.key !== undefined).map((p) => `${JSON.stringify(p.path.slice(0, -1))}|${p.key}`)
  )
  const seen = new Set<string>()
  return problems.filter((p) => {
    if (p.kind === "missingKey" && explained.has(`${JSON.stringify(p.path)}|${p.key}`)) return false
    const id = `${JSON.stringify(p.path)}|${p.at}|${p.message}`
    if (seen.has(id)) return false
    seen.add(id)
    return true
  })
}

const keysOf = (ast: AST.AST): Array<string> => {
  switch (ast._tag) {
    case "TypeLiteral":
      return ast.propertySignatures.map((ps) => String(ps.name))
    case "Transformation":
      return keysOf(ast.from)
    case "Refinement":
      return keysOf(ast.from)
    case "Suspend":
      return keysOf(ast.f())
    default:
      return []
  }
}

const invalid = (path: YamlPath, message: string): Problem => ({ path, at: "value", kind: "invalid", message })

const messageOf = (issue: ParseResult.ParseIssue): string | undefined =>
  issue._tag === "Type" || issue._tag === "Forbidden" || issue._tag === "Unexpected" ? issue.message : undefined

const expectedGot = (ast: AST.AST, actual: unknown): string => {
  const literals = stringLiterals(ast)
  const hint = typeof actual === "string" && literals.length > 0 ? didYouMean(actual, literals) : ""
  return `expected ${describe(ast)}, got ${show(actual)}${hint}`
}

/** What a value should have been, in a marketer's words. */
export const describe = (ast: AST.AST): string => {
  const identifier = Option.getOrUndefined(AST.getIdentifierAnnotation(ast))
  const description = Option.getOrUndefined(AST.getDescriptionAnnotation(ast))
  switch (ast._tag) {
    case "Refinement":
      return description ?? describe(ast.from)
    case "Transformation":
      if (identifier === undefined || AST.isTypeLiteral(ast.from)) return describe(ast.from)
      return `${article(identifier.toLowerCase())}${description === undefined ? "" : ` (${description})`}`
    case "Suspend":
      return describe(ast.f())
    case "Literal":
      return typeof ast.literal === "string" ? JSON.stringify(ast.literal) : String(ast.literal)
    case "StringKeyword":
      return "a string"
    case "NumberKeyword":
      return "a number"
    case "BooleanKeyword":
      return "true or false"
    case "UndefinedKeyword":
      return "nothing"
    case "TypeLiteral":
      return "a mapping"
    case "TupleType":
      return ast.rest.length > 0 ? "a list" : `a list of ${ast.elements.length} items`
    case "Union": {
      const members = ast.types.filter((t) => !AST.isUndefinedKeyword(t))
      if (members.every(AST.isLiteral)) return `one of ${members.map(describe).join(", ")}`
      const leading = members.map(firstRequiredKey)
      if (identifier !== undefined && leading.every((k) => k !== undefined)) {
        return `${article(identifier.toLowerCase())} (a mapping with one of the keys ${leading.join(", ")})`
      }
      return [...new Set(members.map(describe))].join(" or ")
    }
    default:
      return identifier ?? String(ast)
  }
}

const firstRequiredKey = (ast: AST.AST): string | undefined => {
  if (AST.isSuspend(ast)) return firstRequiredKey(ast.f())
  if (AST.isTransformation(ast) || AST.isRefinement(ast)) return firstRequiredKey(ast.from)
  if (!AST.isTypeLiteral(ast)) return undefined
  const first = ast.propertySignatures.find((ps) => !ps.isOptional)
  return first === undefined ? undefined : String(first.name)
}

const stringLiterals = (ast: AST.AST): Array<string> => {
  if (AST.isLiteral(ast)) return typeof ast.literal === "string" ? [ast.literal] : []
  if (AST.isUnion(ast)) return ast.types.flatMap(stringLiterals)
  if (AST.isRefinement(ast) || AST.isTransformation(ast)) return stringLiterals(ast.from)
  return []
}

const show = (actual: unknown): string => {
  if (actual === null || actual === undefined) return "nothing"
  if (Array.isArray(actual)) return actual.length === 0 ? "an empty list" : "a list"
  if (typeof actual === "object") return "a mapping"
  if (typeof actual === "string") return JSON.stringify(actual.length > 60 ? `${actual.slice(0, 57)}...` : actual)
  return String(actual)
}

const article = (noun: string): string => (/^[aeiou]/.test(noun) ? `an ${noun}` : `a ${noun}`)

const toSegment = (key: PropertyKey): Segment => (typeof key === "number" ? key : String(key))
