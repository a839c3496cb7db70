import { Schema } from "effect"

/**
 * An analyst's SQL (`POST /sql`, `memberflow query`) was refused before it reached ClickHouse:
 * only one read-only statement is accepted. `reason` says what to change.
 */
export class SqlRejected extends Schema.TaggedError<SqlRejected>()("SqlRejected", {
  reason: Schema.String
}) {
  override get message(): string {
    return `SQL rejected: ${this.reason}`
  }
}
