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

/** One message to publish in a group (`publishAll`). */
export interface Outbound {
  readonly subject: string
  readonly data: string | Uint8Array
  readonly options?: PublishOptions
}

/** What waits for a message's answer: one publish, or one message of a group. */
interface Waiting {
  readonly at: number
  /** Whether the PubAck is read (a group without `onAck` only needs to know it is not an error). */
  readonly reads: boolean
  acked(token: number, ack: PubAck | undefined): void
  failed(error: Error): void
}

class Single implements Waiting {
  readonly reads = true
  constructor(
    readonly at: number,
    private readonly resolve: (ack: PubAck) => void,
    private readonly reject: (error: Error) => void
  ) {}
  acked(_token: number, ack: PubAck | undefined): void {
    this.resolve(ack!)
  }
  failed(error: Error): void {
    this.reject(error)
  }
}

/**
 * The messages of one `publishAll`: one promise, settled by the last answer or the first failure.
 * A failed group's other answers still come (or time out) and are ignored.
 */
class Group implements Waiting {
  private remaining: number
  private settled = false
  readonly reads: boolean
  constructor(
    readonly at: number,
    private readonly first: number,
    count: number,
    private readonly onAck: ((index: number, ack: PubAck) => void) | undefined,
    private readonly resolve: () => void,
    private readonly reject: (error: Error) => void
  ) {
    this.remaining = count
    this.reads = onAck !== undefined
  }
  acked(token: number, ack: PubAck | undefined): void {
    if (this.settled) return
    if (this.onAck !== undefined) {
      try {
        this.onAck(token - this.first, ack!)
      } catch (error) {
        this.failed(error instanceof Error ? error : new PublishError(String(error)))
        return
      }
    }
    if (--this.remaining === 0) {
      this.settled = true
      this.resolve()
    }
  }
  failed(error: Error): void {
    if (this.settled) return
    this.settled = true
    this.reject(error)
  }
}

const decoder = new TextDecoder()
/** In an error answer only: stream names and domains hold no quotes. */
const ERROR_KEY = new TextEncoder().encode('"error"')

/** Whether `needle` occurs in `haystack`, byte for byte. */
export const containsBytes = (haystack: Uint8Array, needle: Uint8Array): boolean => {
  const first = needle[0]
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    if (haystack[i] !== first) continue
    for (let j = 1; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer
    return true
  }
  return false
}
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
          waiting.failed(new PublishError(code === 503 ? "no stream takes this subject (503 no responders)" : `JetStream answered status ${code}`, code))
          return
        }
        // Most answers are read by no one: a group's (derived events, dead letters) only needs
        // to know that the answer is not an error.
        if (!waiting.reads && !containsBytes(msg.data, ERROR_KEY)) {
          waiting.acked(token, undefined)
          return
        }
        let answer: Partial<PubAck> & { error?: { code?: number; err_code?: number; description?: string } }
        try {
          answer = JSON.parse(decoder.decode(msg.data)) as typeof answer
        } catch (cause) {
          waiting.failed(new PublishError(`unreadable acknowledgement: ${cause instanceof Error ? cause.message : String(cause)}`))
          return
        }
        if (answer.error !== undefined) {
          const { code, err_code: errCode, description } = answer.error
          waiting.failed(new PublishError(`${description ?? "refused"} (${errCode ?? code ?? "?"})`, code, errCode))
        } else {
          waiting.acked(token, { stream: answer.stream ?? "", seq: answer.seq ?? 0, duplicate: answer.duplicate === true })
        }
      }
    })
    // Oldest first (a Map keeps insertion order): stops at the first still in time.
    this.sweeper = setInterval(() => {
      const late = Date.now() - this.timeoutMs
      for (const [token, waiting] of this.waiting) {
        if (waiting.at > late) break
        this.waiting.delete(token)
        waiting.failed(new PublishError(`no acknowledgement within ${this.timeoutMs} ms`))
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
      this.waiting.set(token, new Single(Date.now(), resolve, reject))
      try {
        this.send(token, subject, data, options)
      } catch (error) {
        this.waiting.delete(token)
        reject(error instanceof Error ? error : new PublishError(String(error)))
      }
    })
  }

  /**
   * Publishes every message at once, as as many `publish` calls would, for one promise: resolved
   * when all are acknowledged, rejected with the first failure (the rest are still sent, and
   * duplicates of them dropped by their `Nats-Msg-Id` when the group is published again). `onAck`,
   * if given, sees each PubAck with its message's index; only then is a PubAck read at all.
   *
   * A batch's derived events (up to one per event it applies after a history import) went as one
   * promise, one `Waiting`, one async function and one decoded acknowledgement each (BENCHMARKS.md).
   */
  publishAll(messages: ReadonlyArray<Outbound>, onAck?: (index: number, ack: PubAck) => void): Promise<void> {
    if (messages.length === 0) return Promise.resolve()
    return new Promise<void>((resolve, reject) => {
      const first = this.next
      this.next += messages.length
      const group = new Group(Date.now(), first, messages.length, onAck, resolve, reject)
      for (let i = 0; i < messages.length; i++) {
        const { subject, data, options } = messages[i]!
        this.waiting.set(first + i, group)
        try {
          this.send(first + i, subject, data, options ?? {})
        } catch (error) {
          // Those sent before it are answered (and ignored: the group has failed); those after it are not sent.
          this.waiting.delete(first + i)
          group.failed(error instanceof Error ? error : new PublishError(String(error)))
          return
        }
      }
    })
  }

  private send(token: number, subject: string, data: string | Uint8Array, options: PublishOptions): void {
    const headers = encodeHeaders(options)
    this.connection.publish(subject, typeof data === "string" ? Buffer.from(data) : data, { reply: `${this.inbox}.${token}`, ...(headers === undefined ? {} : { headers }) })
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
    for (const waiting of this.waiting.values()) waiting.failed(new PublishError("publisher closed"))
    this.waiting.clear()
  }
}
