import { type MsgHdrs, type NatsConnection, nuid } from "@nats-io/transport-node"

/**
 * JetStream publishes for the hot path, each acknowledgement awaited on one shared subscription.
 *
 * `js.publish` makes each publish a request of its own: a headers object, a request record, a timer
 * for its timeout and an Error for its cancellation, on top of the message. At a few thousand
 * publishes a second (every fired timer, derived event, timer and message request) that was the
 * largest share of what the engine allocated, and of the garbage collection that made timers late
 * (BENCHMARKS.md). Here a publish is its encoded headers, the message and one entry in a map; acks
 * come back on `<inbox>.<n>` and one sweep a second fails those not answered in time.
 *
 * The same wire protocol as `js.publish`: `Nats-Msg-Id` and JetStream's `Nats-Expected-*` headers,
 * the stream's PubAck or its error answered back, a 503 status when no stream takes the subject.
 */

export interface PubAck {
  readonly stream: string
  readonly seq: number
  readonly duplicate: boolean
}

/** JetStream refused the message (`code`, `errCode` as the server gave them), or no answer came. */
export class PublishError extends Error {
  constructor(
    message: string,
    readonly code: number | undefined = undefined,
    readonly errCode: number | undefined = undefined
  ) {
    super(message)
    this.name = "PublishError"
  }
}

export interface PublishOptions {
  readonly msgID?: string
  /** `Nats-Expected-Last-Subject-Sequence`: written only if the subject's last message is this one (0: none). */
  readonly expectLastSubjectSequence?: number
  /** More headers, e.g. `[["Memberflow-Applied", "1"]]`. */
  readonly headers?: ReadonlyArray<readonly [string, string]>
}

interface Waiting {
  readonly at: number
  readonly resolve: (ack: PubAck) => void
  readonly reject: (error: Error) => void
}

const decoder = new TextDecoder()
const SAFE = /^[^\r\n]*$/

/** Headers already encoded: the client's publish asks a headers object only to `encode()` itself. */
class EncodedHeaders {
  constructor(private readonly bytes: Uint8Array) {}
  encode(): Uint8Array {
    return this.bytes
  }
}

const line = (key: string, value: string): string => {
  if (!SAFE.test(key) || !SAFE.test(value)) throw new PublishError(`the header ${JSON.stringify(key)} holds a line break`)
  return `${key}: ${value}\r\n`
}

const encodeHeaders = (options: PublishOptions): MsgHdrs | undefined => {
  let block = ""
  if (options.msgID !== undefined) block += line("Nats-Msg-Id", options.msgID)
  if (options.expectLastSubjectSequence !== undefined) block += line("Nats-Expected-Last-Subject-Sequence", String(options.expectLastSubjectSequence))
  for (const [key, value] of options.headers ?? []) block += line(key, value)
  if (block === "") return undefined
  // From Node's shared pool, as the payload (`publish`): a compare-and-set's header block is encoded
  // for every state a checkpoint writes.
  return new EncodedHeaders(Buffer.from(`NATS/1.0\r\n${block}\r\n`)) as unknown as MsgHdrs
}

export class StreamPublisher {
  private readonly inbox = `_INBOX.${nuid.next()}`
  private readonly waiting = new Map<number, Waiting>()
  private next = 0
  private readonly subscription
  private readonly sweeper: ReturnType<typeof setInterval>

  constructor(
    private readonly connection: NatsConnection,
    private readonly timeoutMs = 5_000
  ) {
    const prefix = this.inbox.length + 1
    this.subscription = connection.subscribe(`${this.inbox}.*`, {
      callback: (error, msg) => {
        if (error !== null) return
        const token = Number(msg.subject.slice(prefix))
        const waiting = this.waiting.get(token)
        if (waiting === undefined) return
        this.waiting.delete(token)
        if (msg.data.length === 0) {
          const code = msg.headers?.code ?? 0
          waiting.reject(new PublishError(code === 503 ? "no stream takes this subject (503 no responders)" : `JetStream answered status ${code}`, code))
          return
        }
        try {
          const answer = JSON.parse(decoder.decode(msg.data)) as Partial<PubAck> & { error?: { code?: number; err_code?: number; description?: string } }
          if (answer.error !== undefined) {
            const { code, err_code: errCode, description } = answer.error
            waiting.reject(new PublishError(`${description ?? "refused"} (${errCode ?? code ?? "?"})`, code, errCode))
          } else {
            waiting.resolve({ stream: answer.stream ?? "", seq: answer.seq ?? 0, duplicate: answer.duplicate === true })
          }
        } catch (cause) {
          waiting.reject(new PublishError(`unreadable acknowledgement: ${cause instanceof Error ? cause.message : String(cause)}`))
        }
      }
    })
    // Oldest first (a Map keeps insertion order): stops at the first still in time.
    this.sweeper = setInterval(() => {
      const late = Date.now() - this.timeoutMs
      for (const [token, waiting] of this.waiting) {
        if (waiting.at > late) break
        this.waiting.delete(token)
        waiting.reject(new PublishError(`no acknowledgement within ${this.timeoutMs} ms`))
      }
    }, 1_000)
    this.sweeper.unref()
  }

  /**
   * A string is sent as its UTF-8 bytes from `Buffer.from`, not the client's `TextEncoder`: Node
   * cuts a small Buffer out of a shared pool, where `TextEncoder.encode` gives each its own backing
   * store. A checkpoint encodes every changed member's state (about 2 KB each), and in
   * bench:ingest's profile the encoder's share was up to half of a 1.8 s hold of the thread while the
   * partitions held by the sweep wrote theirs (BENCHMARKS.md).
   */
  publish(subject: string, data: string | Uint8Array, options: PublishOptions = {}): Promise<PubAck> {
    return new Promise<PubAck>((resolve, reject) => {
      const token = this.next++
      const headers = encodeHeaders(options)
      this.waiting.set(token, { at: Date.now(), resolve, reject })
      try {
        this.connection.publish(subject, typeof data === "string" ? Buffer.from(data) : data, { reply: `${this.inbox}.${token}`, ...(headers === undefined ? {} : { headers }) })
      } catch (error) {
        this.waiting.delete(token)
        reject(error instanceof Error ? error : new PublishError(String(error)))
      }
    })
  }

  /**
   * Writes a KV entry with compare-and-set, as `kv.create` (revision 0) and `kv.update` send it:
   * resolves to the new revision, fails with err_code 10071 ("wrong last sequence") when another
   * writer came first. Only for buckets whose keys are never deleted (members, the send ledger):
   * `kv.create` also writes over a delete marker, this does not.
   */
  kvWrite(bucket: string, key: string, value: string, revision: number): Promise<number> {
    return this.publish(`$KV.${bucket}.${key}`, value, { expectLastSubjectSequence: revision }).then((ack) => ack.seq)
  }

  /** Acknowledgements still awaited. */
  get inFlight(): number {
    return this.waiting.size
  }

  close(): void {
    clearInterval(this.sweeper)
    this.subscription.unsubscribe()
    for (const waiting of this.waiting.values()) waiting.reject(new PublishError("publisher closed"))
    this.waiting.clear()
  }
}
