import { Either, Schema } from "effect"
import { type Document, isAlias, isMap, isScalar, isSeq, LineCounter, type Node, parseDocument } from "yaml"
import type { SourceIssue } from "../../schemas/ProgramErrors.ts"
import { problemsOf, type Problem, type YamlPath } from "./YamlDocument/IssueTree.ts"

/**
 * Any marketer-written YAML file (program.yaml, journeys): parsed with source positions kept so that
 * every problem, from a syntax error to a rule the schema cannot express, points at
 * `file:line:column` of the node it is about. Knows nothing about what the file describes.
 */

export type { YamlPath } from "./YamlDocument/IssueTree.ts"

export interface YamlSource {
  readonly file: string
  readonly document: Document.Parsed
  readonly lineCounter: LineCounter
}

/** Where an issue points: the key at the path, the value at the path, or the mapping/list at the path. */
export type Anchor = "key" | "value" | "node"

/** Parses YAML text; syntax errors (including duplicate keys and several documents) are issues. */
export const parseYaml = (text: string, file: string): Either.Either<YamlSource, ReadonlyArray<SourceIssue>> => {
  const lineCounter = new LineCounter()
  const document = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true })
  if (document.errors.length > 0) {
    return Either.left(
      sortIssues(
        document.errors.map((error) => {
          const { line, col } = lineCounter.linePos(error.pos[0])
          return { file, line, column: col, message: `YAML syntax: ${firstLine(error.message)}` }
        })
      )
    )
  }
  return Either.right({ file, document, lineCounter })
}

/**
 * Decodes a parsed file with a schema, strictly: unknown keys are errors (with a "did you mean"),
 * and every problem is reported, not only the first.
 */
export const decodeSource = <A, I>(
  schema: Schema.Schema<A, I, never>,
  source: YamlSource
): Either.Either<A, ReadonlyArray<SourceIssue>> => {
  const decode = Schema.decodeUnknownEither(schema, { errors: "all", onExcessProperty: "error" })
  // toJS refuses alias bombs (aliases expanding to huge documents) by throwing
  const value = Either.try({
    try: (): unknown => source.document.toJS({ maxAliasCount: 100 }),
    catch: (cause) => [issueAt(source, [], `YAML: ${cause instanceof Error ? cause.message : String(cause)}`, "node")]
  })
  return Either.flatMap(value, (js) =>
    Either.mapLeft(decode(js), (error) =>
      sortIssues(problemsOf(error.issue).map((problem) => issueOfProblem(source, problem)))
    )
  )
}

/** Parse then decode: `Right` with the value, or `Left` with every issue in file order. */
export const decodeYaml = <A, I>(
  schema: Schema.Schema<A, I, never>,
  text: string,
  file: string
): Either.Either<A, ReadonlyArray<SourceIssue>> =>
  Either.flatMap(parseYaml(text, file), (source) => decodeSource(schema, source))

/** An issue about the node at a path, for checks made after decoding (ids unique, ascending…). */
export const issueAt = (source: YamlSource, path: YamlPath, message: string, anchor: Anchor = "value"): SourceIssue => {
  const offset = offsetOf(source.document, path, anchor)
  const { line, col } = source.lineCounter.linePos(offset)
  return { file: source.file, line, column: col, message }
}

/** File order, so a marketer reads them top to bottom. */
export const sortIssues = (issues: ReadonlyArray<SourceIssue>): ReadonlyArray<SourceIssue> =>
  [...issues].sort((a, b) => a.file.localeCompare(b.file) || a.line - b.line || a.column - b.column)

const issueOfProblem = (source: YamlSource, problem: Problem): SourceIssue =>
  issueAt(source, problem.path, problem.message, problem.at)

interface Found {
  readonly node: Node | null
  readonly key: Node | null
  /** the deepest node that exists along the path, for paths that end in nothing */
  readonly deepest: Node | null
}

const offsetOf = (document: Document.Parsed, path: YamlPath, anchor: Anchor): number => {
  const found = find(document, path)
  const target =
    anchor === "key"
      ? (found.key ?? found.node)
      : anchor === "node"
        ? found.node
        : isEmptyValue(found.node)
          ? (found.key ?? found.node)
          : found.node
  return startOf(target ?? found.deepest)
}

const find = (document: Document.Parsed, path: YamlPath): Found => {
  let node: Node | null = document.contents
  let key: Node | null = null
  let deepest: Node | null = node
  for (const segment of path) {
    const current = resolve(document, node)
    if (isMap(current)) {
      const pair = current.items.find((p) => isScalar(p.key) && String(p.key.value) === String(segment))
      if (pair === undefined) return { node: null, key: null, deepest }
      key = isScalar(pair.key) ? pair.key : null
      node = isNode(pair.value) ? pair.value : null
      deepest = node ?? key ?? deepest
    } else if (isSeq(current) && typeof segment === "number") {
      const item: unknown = current.items[segment]
      if (!isNode(item)) return { node: null, key: null, deepest }
      key = null
      node = item
      deepest = item
    } else {
      return { node: null, key: null, deepest }
    }
  }
  return { node, key, deepest }
}

const resolve = (document: Document.Parsed, node: Node | null): Node | null => {
  if (!isAlias(node)) return node
  const target: unknown = node.resolve(document)
  return isNode(target) ? target : null
}

const isNode = (value: unknown): value is Node => isScalar(value) || isMap(value) || isSeq(value) || isAlias(value)

/** `key:` with nothing after it: point at the key, not at the end of the line. */
const isEmptyValue = (node: Node | null): boolean =>
  node === null || (isScalar(node) && node.value === null && node.source === "")

const startOf = (node: Node | null): number => node?.range?.[0] ?? 0

const firstLine = (message: string): string => message.split("\n")[0] ?? message
