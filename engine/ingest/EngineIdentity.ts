import { Context, Data, Effect, Layer } from "effect"
import { randomUUID } from "node:crypto"
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs"
import { join, resolve } from "node:path"
import { DataDirConfig } from "../Clickhouse.ts"

/**
 * Which engine this process is, kept in its data directory (`engine.json`: the id, the pid and, once
 * the admin API listens, its host and port).
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
  readonly httpPort?: unknown
  readonly httpHost?: unknown
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

const recordedPath = (dataDir: string): string => join(resolve(dataDir), "engine.json")

/** Written whole or not at all: a reader never sees half a file. */
const writeRecorded = (path: string, recorded: Recorded): void => {
  const temporary = `${path}.${process.pid}.tmp`
  writeFileSync(temporary, JSON.stringify(recorded))
  renameSync(temporary, path)
}

/** The engine running with `dataDir`: its process and, once it listens, its admin API's address. */
export interface RunningEngine {
  readonly pid: number
  readonly httpPort: number | null
  /** MEMBERFLOW_HTTP_HOST as it bound (0.0.0.0 for every interface, say). */
  readonly httpHost: string | null
}

/** The live process other than this one recorded as the engine of `dataDir`, or null. */
export const runningEngineOf = (dataDir: string): RunningEngine | null => {
  const recorded = readRecorded(recordedPath(dataDir))
  const pid = otherLive(recorded)
  if (pid === null) return null
  const port = recorded?.httpPort
  const host = recorded?.httpHost
  return {
    pid,
    httpPort: typeof port === "number" && Number.isInteger(port) && port > 0 && port < 65536 ? port : null,
    httpHost: typeof host === "string" ? host : null
  }
}

/**
 * Adds where the admin API listens to this process's record, for the CLI (`memberflow query`,
 * `lift`, `report`) to find the engine of a data directory whatever its MEMBERFLOW_HTTP_HOST and
 * MEMBERFLOW_HTTP_PORT (0 among them: any free port). Only over this process's own record.
 */
export const recordAdminAddress = (dataDir: string, httpHost: string, httpPort: number): Effect.Effect<void, EngineIdentityError> =>
  Effect.try({
    try: () => {
      const path = recordedPath(dataDir)
      const recorded = readRecorded(path)
      if (recorded?.pid !== process.pid) throw new Error(`${path} is not this process's (${process.pid}) record`)
      writeRecorded(path, { id: recorded.id, pid: process.pid, httpPort, httpHost })
    },
    catch: (error) => new EngineIdentityError({ message: `cannot record the admin API's address in ${dataDir}: ${(error as Error).message}` })
  })

/** The engine id for this process, recorded in `dataDir` with its pid. */
export const engineIdentity = (dataDir: string): Effect.Effect<string, EngineIdentityError> =>
  Effect.try({
    try: () => {
      const dir = resolve(dataDir)
      mkdirSync(dir, { recursive: true })
      const path = recordedPath(dir)
      const recorded = readRecorded(path)
      const pid = otherLive(recorded)
      if (pid !== null) {
        throw new EngineIdentityError({
          message: `MEMBERFLOW_DATA_DIR ${dir} is in use by process ${pid}: give each engine a data directory of its own`
        })
      }
      const id = typeof recorded?.id === "string" && /^[\w-]{1,64}$/.test(recorded.id) ? recorded.id : randomUUID()
      writeRecorded(path, { id, pid: process.pid })
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
