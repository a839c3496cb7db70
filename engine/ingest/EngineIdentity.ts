import { Context, Data, Effect, Layer } from "effect"
import { randomUUID } from "node:crypto"
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs"
import { join, resolve } from "node:path"
import { DataDirConfig } from "../Clickhouse.ts"

/**
 * Which engine this process is, kept in its data directory (`engine.json`: the id and the pid).
 *
 * A process that starts where a killed one ran is that engine again: it takes back the partitions
 * the dead process still holds in their leases at once, instead of waiting a lease time for them to
 * expire (engine/ingest/Leases.ts lets an engine claim what its own id holds). That is only safe
 * while no two live processes share a data directory, so a start refuses a directory whose recorded
 * process is still running; embedded chDB would refuse it as well, a ClickHouse server would not.
 */

export class EngineIdentityError extends Data.TaggedError("EngineIdentityError")<{
  readonly message: string
}> {}

interface Recorded {
  readonly id?: unknown
  readonly pid?: unknown
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    // EPERM: it runs, under another user
    return (error as NodeJS.ErrnoException).code === "EPERM"
  }
}

const readRecorded = (path: string): Recorded | null => {
  let text: string
  try {
    text = readFileSync(path, "utf8")
  } catch {
    return null
  }
  try {
    const parsed = JSON.parse(text) as unknown
    return typeof parsed === "object" && parsed !== null ? (parsed as Recorded) : null
  } catch {
    return null
  }
}

/** The recorded process, when it is alive and not this one. */
const otherLive = (recorded: Recorded | null): number | null => {
  const pid = recorded?.pid
  return typeof pid === "number" && pid !== process.pid && alive(pid) ? pid : null
}

/** The live process other than this one recorded as the engine of `dataDir`, or null. */
export const runningEngineOf = (dataDir: string): number | null => otherLive(readRecorded(join(resolve(dataDir), "engine.json")))

/** The engine id for this process, recorded in `dataDir` with its pid. */
export const engineIdentity = (dataDir: string): Effect.Effect<string, EngineIdentityError> =>
  Effect.try({
    try: () => {
      const dir = resolve(dataDir)
      mkdirSync(dir, { recursive: true })
      const path = join(dir, "engine.json")
      const recorded = readRecorded(path)
      const pid = otherLive(recorded)
      if (pid !== null) {
        throw new EngineIdentityError({
          message: `MEMBERFLOW_DATA_DIR ${dir} is in use by process ${pid}: give each engine a data directory of its own`
        })
      }
      const id = typeof recorded?.id === "string" && /^[\w-]{1,64}$/.test(recorded.id) ? recorded.id : randomUUID()
      const temporary = `${path}.${process.pid}.tmp`
      writeFileSync(temporary, JSON.stringify({ id, pid: process.pid }))
      renameSync(temporary, path)
      return id
    },
    catch: (error) =>
      error instanceof EngineIdentityError
        ? error
        : new EngineIdentityError({ message: `cannot record the engine's identity in ${dataDir}: ${(error as Error).message}` })
  })

/** This process's engine id (engineIdentity), settled before anything else of the engine opens. */
export class EngineId extends Context.Tag("memberflow/EngineId")<EngineId, string>() {
  static readonly layer = Layer.effect(
    EngineId,
    DataDirConfig.pipe(Effect.flatMap(engineIdentity))
  )
}
