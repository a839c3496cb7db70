import { Either } from "effect"
import { SqlRejected } from "../../schemas/ClickhouseErrors.ts"

/**
 * The guard in front of `POST /sql` and `memberflow query`: exactly one read-only statement.
 *
 * It works on tokens, not raw text, so a `;` or a keyword inside a string literal, a quoted
 * identifier, a heredoc or a comment is never mistaken for code. The lexer follows ClickHouse's:
 * `'…'` strings and `` `…` `` / `"…"` identifiers with backslash and doubled-quote escapes,
 * `$tag$…$tag$` heredocs, `--` and `# ` line comments, nested `/* … *\/` comments. Whatever it
 * cannot read with certainty is refused. ClickHouse's `readonly = 1` runs behind it (Clickhouse.ts).
 */

type TokenKind = "word" | "quoted" | "string" | "number" | "punct"

interface Token {
  readonly kind: TokenKind
  /** Bare words and quoted identifiers: the name; other tokens: the raw text. */
  readonly text: string
  readonly start: number
  readonly end: number
}

const isSpace = (c: string): boolean => /\s/.test(c)
const isWordChar = (c: string): boolean => /[A-Za-z0-9_$]/.test(c) || c.charCodeAt(0) >= 0x80
const isWordStart = (c: string): boolean => /[A-Za-z_$]/.test(c) || c.charCodeAt(0) >= 0x80
const isDigit = (c: string): boolean => c >= "0" && c <= "9"

/** Reads a quoted run starting at `open`; returns the unescaped body and the index after the closing quote. */
const readQuoted = (sql: string, open: number): { readonly body: string; readonly end: number } | undefined => {
  const quote = sql.charAt(open)
  let body = ""
  let i = open + 1
  while (i < sql.length) {
    const c = sql.charAt(i)
    if (c === "\\") {
      if (i + 1 >= sql.length) return undefined
      body += sql.charAt(i + 1)
      i += 2
    } else if (c === quote) {
      if (sql.charAt(i + 1) === quote) {
        body += quote
        i += 2
      } else {
        return { body, end: i + 1 }
      }
    } else {
      body += c
      i += 1
    }
  }
  return undefined
}

/** Index after a nested block comment opened at `open`, or undefined when it never closes. */
const skipBlockComment = (sql: string, open: number): number | undefined => {
  let depth = 1
  let i = open + 2
  while (i < sql.length) {
    if (sql.startsWith("/*", i)) {
      depth += 1
      i += 2
    } else if (sql.startsWith("*/", i)) {
      depth -= 1
      i += 2
      if (depth === 0) return i
    } else {
      i += 1
    }
  }
  return undefined
}

/** The `$tag$` opening a heredoc at `at`, if one does. */
const heredocTagAt = (sql: string, at: number): string | undefined => /^\$[A-Za-z0-9_]*\$/.exec(sql.slice(at, at + 256))?.[0]

/** Splits SQL into tokens, dropping whitespace and comments; Left is why it could not. */
export const tokenize = (sql: string): Either.Either<ReadonlyArray<Token>, string> => {
  const tokens: Array<Token> = []
  let i = 0
  while (i < sql.length) {
    const c = sql.charAt(i)
    const next = sql.charAt(i + 1)
    const heredocTag = c === "$" ? heredocTagAt(sql, i) : undefined
    if (isSpace(c)) {
      i += 1
    } else if ((c === "-" && next === "-") || (c === "#" && (next === "" || next === "!" || isSpace(next)))) {
      const newline = sql.indexOf("\n", i)
      i = newline === -1 ? sql.length : newline + 1
    } else if (c === "#") {
      return Either.left(`unexpected '#' at position ${i + 1}`)
    } else if (c === "/" && next === "*") {
      const end = skipBlockComment(sql, i)
      if (end === undefined) return Either.left("a /* comment is never closed")
      i = end
    } else if (c === "'" || c === "`" || c === "\"") {
      const quoted = readQuoted(sql, i)
      if (quoted === undefined) {
        return Either.left(c === "'" ? "a string literal is never closed" : `a ${c}quoted identifier is never closed`)
      }
      tokens.push({ kind: c === "'" ? "string" : "quoted", text: quoted.body, start: i, end: quoted.end })
      i = quoted.end
    } else if (heredocTag !== undefined) {
      const close = sql.indexOf(heredocTag, i + heredocTag.length)
      if (close === -1) return Either.left(`a ${heredocTag} heredoc is never closed`)
      const end = close + heredocTag.length
      tokens.push({ kind: "string", text: sql.slice(i + heredocTag.length, close), start: i, end })
      i = end
    } else if (isWordStart(c) || isDigit(c)) {
      let end = i + 1
      while (end < sql.length && (isWordChar(sql.charAt(end)) || (isDigit(c) && sql.charAt(end) === "."))) end += 1
      tokens.push({ kind: isDigit(c) ? "number" : "word", text: sql.slice(i, end), start: i, end })
      i = end
    } else {
      tokens.push({ kind: "punct", text: c, start: i, end: i + 1 })
      i += 1
    }
  }
  return Either.right(tokens)
}

const STATEMENTS = new Set(["SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXPLAIN", "EXISTS"])

/** Words that only ever belong to statements that write or administer. */
const WRITE_WORDS = new Set([
  "INSERT", "ALTER", "DROP", "CREATE", "TRUNCATE", "RENAME", "KILL", "OPTIMIZE", "GRANT", "REVOKE",
  "ATTACH", "DETACH", "DELETE", "UPDATE", "UNDROP", "BACKUP", "RESTORE", "EXCHANGE"
])

/** Table functions (and their scalar twins) that read files, URLs, other servers or run programs. */
const OUTSIDE_FUNCTIONS = new Set([
  "file", "filecluster", "url", "urlcluster", "input", "executable", "executablepool", "cluster",
  "clusterallreplicas", "jdbc", "odbc", "sqlite", "redis", "gcs", "hive", "filesystem", "ytsaurus",
  "prometheusquery", "prometheusqueryrange", "timeseriesdata", "timeseriesmetrics", "timeseriestags"
])
const OUTSIDE_PREFIXES = [
  "s3", "remote", "mysql", "postgres", "hdfs", "azureblob", "iceberg", "deltalake", "hudi", "paimon", "mongo",
  "arrowflight", "gcs"
]

const isOutside = (name: string): boolean => {
  const lower = name.toLowerCase()
  return OUTSIDE_FUNCTIONS.has(lower) || OUTSIDE_PREFIXES.some((prefix) => lower.startsWith(prefix))
}

const isPunct = (token: Token | undefined, text: string): boolean => token?.kind === "punct" && token.text === text

/** Why the statement is not read-only, or undefined when it is. */
const refusal = (statement: ReadonlyArray<Token>): string | undefined => {
  let first = 0
  while (isPunct(statement[first], "(")) first += 1
  const head = statement[first]
  const headWord = head?.kind === "word" ? head.text.toUpperCase() : undefined
  if (headWord === undefined || !STATEMENTS.has(headWord)) {
    const shown = head === undefined ? "nothing" : `'${head.text}'`
    return `only SELECT, WITH, SHOW, DESCRIBE, EXPLAIN and EXISTS statements are accepted (found ${shown})`
  }
  if (first > 0 && headWord !== "SELECT" && headWord !== "WITH") {
    return `only SELECT or WITH may follow an opening parenthesis (found '${head?.text}')`
  }
  for (let index = 0; index < statement.length; index++) {
    const token = statement[index]
    if (token === undefined) continue
    const following = statement[index + 1]
    if (token.kind === "word") {
      const word = token.text.toUpperCase()
      const previous = statement[index - 1]
      const showCreate = word === "CREATE" && previous?.kind === "word" && previous.text.toUpperCase() === "SHOW"
      if (WRITE_WORDS.has(word) && !showCreate) return `${word} is not allowed in a read-only query`
      if (word === "INTO" || word === "OUTFILE") return "INTO OUTFILE is not allowed: results come back as rows"
      if (word === "SETTINGS") return "SETTINGS clauses are not allowed: queries run with the server's read-only settings"
      if (word === "FORMAT" && !isPunct(following, "(")) {
        return "a FORMAT clause is not allowed: the output format is chosen by memberflow"
      }
    }
    if ((token.kind === "word" || token.kind === "quoted") && isPunct(following, "(") && isOutside(token.text)) {
      return `table function ${token.text}() reaches outside the database and is not allowed`
    }
  }
  return undefined
}

/**
 * Accepts exactly one read-only statement and returns it ready to run: trailing `;` and
 * comments removed (the client appends its own FORMAT clause after it).
 */
export const checkReadOnlySql = (sql: string): Either.Either<string, SqlRejected> =>
  Either.flatMap(
    Either.mapLeft(tokenize(sql), (reason) => new SqlRejected({ reason })),
    (tokens) => {
      const semicolon = tokens.findIndex((token) => isPunct(token, ";"))
      const statement = semicolon === -1 ? tokens : tokens.slice(0, semicolon)
      const rest = semicolon === -1 ? [] : tokens.slice(semicolon)
      if (rest.some((token) => !isPunct(token, ";"))) {
        return Either.left(new SqlRejected({ reason: "only one statement is accepted: remove what follows the first ';'" }))
      }
      const last = statement[statement.length - 1]
      if (last === undefined) return Either.left(new SqlRejected({ reason: "the query is empty" }))
      const reason = refusal(statement)
      return reason === undefined ? Either.right(sql.slice(0, last.end)) : Either.left(new SqlRejected({ reason }))
    }
  )
