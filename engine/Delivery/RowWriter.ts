import { Chunk, Deferred, Effect, Queue } from "effect"
import type { MessageRow } from "../../schemas/Rows.ts"
import type { Clickhouse, ClickhouseError } from "../Clickhouse.ts"

/**
 * `messages` rows from many concurrent hand-overs, written in one insert per round instead of one
 * each (an insert costs the same for one row as for hundreds). `write` returns once its row is in.
 */
export interface RowWriter {
  readonly write: (row: MessageRow) => Effect.Effect<void, ClickhouseError>
}

interface Pending {
  readonly row: MessageRow
  readonly done: Deferred.Deferred<void, ClickhouseError>
}

export const makeRowWriter = (clickhouse: Clickhouse["Type"]) =>
  Effect.gen(function* () {
    const queue = yield* Queue.unbounded<Pending>()
    const round = Effect.gen(function* () {
      const taken = Chunk.toReadonlyArray(yield* Queue.takeBetween(queue, 1, 2_000))
      const result = yield* clickhouse.insert("messages", taken.map((p) => p.row)).pipe(Effect.exit)
      yield* Effect.forEach(taken, (p) => Deferred.done(p.done, result), { discard: true })
    })
    yield* round.pipe(Effect.forever, Effect.forkScoped)
    const write = (row: MessageRow) =>
      Effect.gen(function* () {
        const done = yield* Deferred.make<void, ClickhouseError>()
        yield* Queue.offer(queue, { row, done })
        return yield* Deferred.await(done)
      })
    return { write } satisfies RowWriter
  })
