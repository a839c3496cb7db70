import Handlebars from "handlebars"
import { Either } from "effect"
import {
  BLOCK_HELPERS,
  isHelper,
  isKnownVariable,
  OPEN_EXAMPLE,
  OPEN_PREFIXES,
  TEMPLATE_HELPERS,
  TEMPLATE_VARIABLES
} from "../../../schemas/TemplateContext.ts"
import { closest } from "../../program/YamlDocument/Suggest.ts"

/**
 * One Handlebars string (an email body, an SMS text, a WeChat data field): compiled as the sender
 * compiles it (`strict: true`), then its AST walked so every variable and helper it uses is one
 * TemplateContext provides. Positions are 1-based and relative to the string.
 */

export interface TextProblem {
  readonly line: number
  readonly column: number
  readonly message: string
}

export interface CheckedText {
  readonly problems: ReadonlyArray<TextProblem>
  /** the variables used, e.g. member.name, event.orderId */
  readonly variables: ReadonlyArray<string>
  /** text sent whatever the member: outside any {{#if}} and without any variable */
  readonly staticText: string
  /** a typical rendering: variables replaced with their examples, {{#if}} blocks taken */
  readonly typicalText: string
}

type Node = hbs.AST.Node

const isType = <T extends Node>(type: T["type"]) => (node: Node): node is T => node.type === type
const isContent = isType<hbs.AST.ContentStatement>("ContentStatement")
const isMustache = isType<hbs.AST.MustacheStatement>("MustacheStatement")
const isBlock = isType<hbs.AST.BlockStatement>("BlockStatement")
const isPath = isType<hbs.AST.PathExpression>("PathExpression")
const isSubExpression = isType<hbs.AST.SubExpression>("SubExpression")
const isComment = isType<hbs.AST.CommentStatement>("CommentStatement")
const isLiteral = (node: Node): node is hbs.AST.Literal =>
  ["StringLiteral", "NumberLiteral", "BooleanLiteral", "UndefinedLiteral", "NullLiteral"].includes(node.type)

const KNOWN_PATHS = TEMPLATE_VARIABLES.map((v) => v.path)
const exampleOf = (path: string): string =>
  TEMPLATE_VARIABLES.find((v) => v.path === path)?.example ?? (OPEN_PREFIXES.some((p) => path.startsWith(p)) ? OPEN_EXAMPLE : "")

export const checkHandlebars = (text: string): CheckedText => {
  const parsed = Either.try({
    try: () => {
      // strict mode is what the sender uses; precompiling catches what only the compiler refuses
      Handlebars.precompile(text, { strict: true })
      return Handlebars.parse(text)
    },
    catch: (cause) => syntaxProblem(cause)
  })
  if (Either.isLeft(parsed)) return { problems: [parsed.left], variables: [], staticText: text, typicalText: text }
  const walker = new Walker()
  walker.program(parsed.right, true)
  return {
    problems: walker.problems,
    variables: [...new Set(walker.variables)],
    staticText: walker.staticText,
    typicalText: walker.typicalText
  }
}

class Walker {
  readonly problems: Array<TextProblem> = []
  readonly variables: Array<string> = []
  staticText = ""
  typicalText = ""

  program(program: hbs.AST.Program | undefined, always: boolean): void {
    for (const statement of program?.body ?? []) this.statement(statement, always)
  }

  statement(node: Node, always: boolean): void {
    if (isContent(node)) {
      if (always) this.staticText += node.value
      this.typicalText += node.value
    } else if (isMustache(node)) {
      this.typicalText += this.call(node, node.path, node.params, node.hash)
    } else if (isBlock(node)) {
      this.block(node)
    } else if (!isComment(node)) {
      this.problem(node, `${describeNode(node)} is not supported in templates: use variables, {{#if}} and {{#unless}}`)
    }
  }

  block(node: hbs.AST.BlockStatement): void {
    const name = node.path.original
    if (!BLOCK_HELPERS.includes(name)) {
      const hint = closest(name, BLOCK_HELPERS)
      this.problem(node, `{{#${name}}} is not supported in templates${hint === undefined ? "" : ` (did you mean "${hint}"?)`}: use {{#if}} or {{#unless}}`)
      return
    }
    if (node.params.length !== 1 || (node.hash?.pairs.length ?? 0) > 0) {
      this.problem(node, `{{#${name}}} takes exactly one value, e.g. {{#${name} member.nextTierName}}`)
    }
    for (const param of node.params) this.expression(param)
    this.program(node.program, false)
    // the inverse ({{else}}) is checked but not counted: the main branch stands for the typical rendering
    const typical = this.typicalText
    this.program(node.inverse, false)
    this.typicalText = typical
  }

  /** `{{x}}`, `{{helper a}}` or `(helper a)`: returns a typical rendering. */
  call(node: Node, path: hbs.AST.PathExpression | hbs.AST.Literal, params: ReadonlyArray<hbs.AST.Expression>, hash: hbs.AST.Hash | undefined): string {
    if (!isPath(path)) return isLiteral(path) && "value" in path ? String(path.value) : ""
    const name = path.original
    const isCall = params.length > 0 || (hash?.pairs.length ?? 0) > 0 || isHelper(name)
    if (!isCall) return this.variable(path)
    if (!isHelper(name)) {
      const hint = closest(name, Object.keys(TEMPLATE_HELPERS))
      this.problem(node, `unknown helper "${name}"${hint === undefined ? "" : ` (did you mean "${hint}"?)`}; helpers: ${Object.keys(TEMPLATE_HELPERS).join(", ")}`)
    } else if (params.length !== TEMPLATE_HELPERS[name].params || (hash?.pairs.length ?? 0) > 0) {
      this.problem(node, `{{${name}}} takes exactly ${TEMPLATE_HELPERS[name].params} value${TEMPLATE_HELPERS[name].params === 1 ? "" : "s"}, e.g. ${TEMPLATE_HELPERS[name].usage}`)
    }
    for (const param of params) this.expression(param)
    for (const pair of hash?.pairs ?? []) this.expression(pair.value)
    return isHelper(name) ? TEMPLATE_HELPERS[name].example : ""
  }

  expression(node: hbs.AST.Expression): void {
    if (isPath(node)) this.variable(node)
    else if (isSubExpression(node)) this.call(node, node.path, node.params, node.hash)
  }

  variable(path: hbs.AST.PathExpression): string {
    const name = path.original
    if (path.data || path.depth > 0 || path.parts.length === 0 || /^(this|\.)/.test(name)) {
      this.problem(path, `"${name}" is not available in templates: name a variable such as member.name`)
      return ""
    }
    const dotted = path.parts.join(".")
    if (!isKnownVariable(dotted)) {
      const hint = closest(dotted, KNOWN_PATHS)
      const suggestion = hint === undefined ? "; see schemas/TemplateContext.ts for the variables" : ` (did you mean "${hint}"?)`
      this.problem(path, `unknown template variable "${dotted}"${suggestion}`)
      return ""
    }
    this.variables.push(dotted)
    return exampleOf(dotted)
  }

  problem(node: Node, message: string): void {
    this.problems.push({ line: node.loc.start.line, column: node.loc.start.column + 1, message })
  }
}

const describeNode = (node: Node): string => {
  switch (node.type) {
    case "PartialStatement":
    case "PartialBlockStatement":
      return "a partial ({{> …}})"
    case "DecoratorBlock":
    case "Decorator":
      return "a decorator ({{* …}})"
    default:
      return node.type
  }
}

/** Handlebars reports syntax errors as "Parse error on line N: …" or "… - line:column". */
const syntaxProblem = (cause: unknown): TextProblem => {
  const message = cause instanceof Error ? cause.message : String(cause)
  const parse = /on line (\d+)/.exec(message)
  if (parse !== null) {
    const expecting = /\n(Expecting [^\n]*)/.exec(message)?.[1]
    const what = expecting ?? message.split("\n")[0] ?? message
    return { line: Number(parse[1]), column: 1, message: `template syntax: ${what} (an unclosed {{, }} or {{#block}}?)` }
  }
  const located = / - (\d+):(\d+)$/.exec(message)
  if (located !== null) {
    return { line: Number(located[1]), column: Number(located[2]) + 1, message: `template syntax: ${message.replace(/ - \d+:\d+$/, "")}` }
  }
  return { line: 1, column: 1, message: `template syntax: ${message.split("\n")[0] ?? message}` }
}
