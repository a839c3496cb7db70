import { Effect, Layer } from "effect"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import * as NodePath from "node:path"
import { Clickhouse, make } from "../../engine/Clickhouse.ts"
import { migrate } from "../../engine/store/Migrations.ts"

/**
 * Embedded chDB in a fresh temp directory with every migration applied, removed on release.
 * chDB binds one data directory per process: build one such layer at a time per test file.
 */
export const tempClickhouseLayer = (): Layer.Layer<Clickhouse> =>
  Layer.scoped(
    Clickhouse,
    Effect.gen(function*() {
      const dataDir = yield* Effect.acquireRelease(
        Effect.promise(() => mkdtemp(NodePath.join(tmpdir(), "memberflow-ch-"))),
        (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
      )
      const clickhouse = yield* make({ dataDir })
      yield* Effect.provideService(migrate, Clickhouse, clickhouse)
      return clickhouse
    }).pipe(Effect.orDie)
  )
