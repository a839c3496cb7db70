import { Schema } from "effect"

/** One problem in a marketer's file, where an editor or a terminal can jump to it. */
export const SourceIssue = Schema.Struct({
  file: Schema.String,
  line: Schema.Number,
  column: Schema.Number,
  message: Schema.String
})
export type SourceIssue = typeof SourceIssue.Type

/** One `file:line:column: message` per line, the format `memberflow validate` prints. */
export const formatIssues = (issues: ReadonlyArray<SourceIssue>): string =>
  issues.map((issue) => `${issue.file}:${issue.line}:${issue.column}: ${issue.message}`).join("\n")

/** program.yaml could not be read, parsed, decoded or failed a program rule. */
export class ProgramInvalid extends Schema.TaggedError<ProgramInvalid>()("ProgramInvalid", {
  issues: Schema.Array(SourceIssue)
}) {
  override get message(): string {
    return this.render()
  }

  render(): string {
    return formatIssues(this.issues)
  }
}
