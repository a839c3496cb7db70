import { connect } from "@nats-io/transport-node"
import { type ChildProcess, spawn } from "node:child_process"
import { writeFileSync } from "node:fs"
import { join } from "node:path"
import { freePort, tempDir } from "./engine.ts"

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

export interface PrivateNats {
  readonly url: string
  /** Its JetStream store, a temp directory (`tempDir`: removed at the end of the test file). */
  readonly dir: string
  readonly start: () => Promise<void>
  readonly stop: () => Promise<void>
  /** Freezes the server (SIGSTOP) for `ms`: every request times out meanwhile, no connection drops. */
  readonly pause: (ms: number) => Promise<void>
}

/**
 * A NATS server of one's own (the same `nats-server` binary as the machine's, with JetStream), for
 * what must not touch the shared one: stopping it, freezing it, configuring it (`config`: lines of a
 * server configuration file, e.g. `max_payload: 32768`). Stopped with `stop`.
 */
export const privateNats = async (label: string, options: { readonly config?: string } = {}): Promise<PrivateNats> => {
  const port = await freePort()
  const store = tempDir(`${label}-nats`)
  const config: Array<string> = []
  if (options.config !== undefined) {
    const file = join(tempDir(`${label}-nats-conf`), "nats.conf")
    writeFileSync(file, options.config)
    config.push("-c", file)
  }
  let child: ChildProcess | null = null
  const start = async () => {
    child = spawn("nats-server", [...config, "-a", "127.0.0.1", "-p", String(port), "-js", "-sd", store], { stdio: "ignore" })
    for (let i = 0; i < 100; i++) {
      const ok = await connect({ servers: `nats://127.0.0.1:${port}` }).then((nc) => nc.close().then(() => true), () => false)
      if (ok) return
      await sleep(100)
    }
    throw new Error(`the ${label} NATS server did not start`)
  }
  const stop = async () => {
    const running = child
    if (running === null) return
    const exited = new Promise((r) => running.on("exit", r))
    running.kill("SIGTERM")
    await exited
    child = null
  }
  const pause = async (ms: number) => {
    const running = child
    if (running === null) return
    running.kill("SIGSTOP")
    await sleep(ms)
    running.kill("SIGCONT")
  }
  await start()
  return { url: `nats://127.0.0.1:${port}`, dir: store, start, stop, pause }
}
