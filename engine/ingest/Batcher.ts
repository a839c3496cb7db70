import { DeliverPolicy, type JetStreamClient } from "@nats-io/jetstream"

const TIMED_OUT = Symbol("timed out")

/**
 * Turns the consumer's message iterator into batches: waits for one message, then takes what
 * arrives within `windowMs` of it, up to `size`. A `next()` still pending when the window closes is
 * kept for the following batch, so no message is ever dropped between batches.
 *
 * Plain promises on purpose: one Effect per batch instead of one per message keeps the per-event
 * cost down (BENCHMARKS.md). (The iterator's own `getPending()` is not used: it over-counts after
 * the client's internal pull callbacks, which would park a batch until the next message arrives.)
 * Returns null once the iterator has ended (the consumer was stopped).
 *
 * The iterator is also the backpressure: the client queues its next pull request behind the
 * messages already delivered, and sends it only when the iterator reaches it. With a `callback`
 * instead, the pull goes out as soon as messages arrive, whether taken or not: tried on
 * 2026-12-06, the messages piled up in the engine during a backlog (peak RSS 2.8 GB against
 * 1.5 GB in bench:ingest, more time in scavenges, no faster). The iterator's own cost per message
 * was about 1% of the engine's thread in a CPU profile.
 */
export const batcher = <T>(messages: AsyncIterable<T>, size: number, windowMs: number) => {
  const iterator = messages[Symbol.asyncIterator]()
  let pending: Promise<IteratorResult<T>> | undefined
  let ended = false
  const pull = () => (pending ??= iterator.next())
  const next = async (): Promise<Array<T> | null> => {
    if (ended) return null
    const first = await pull()
    pending = undefined
    if (first.done === true) {
      ended = true
      return null
    }
    const batch = [first.value]
    let timer: ReturnType<typeof setTimeout> | undefined
    const deadline = new Promise<typeof TIMED_OUT>((resolve) => {
      timer = setTimeout(() => resolve(TIMED_OUT), windowMs)
    })
    try {
      while (batch.length < size) {
        const next = await Promise.race([pull(), deadline])
        if (next === TIMED_OUT) break
        pending = undefined
        if (next.done === true) {
          ended = true
          break
        }
        batch.push(next.value)
      }
    } finally {
      clearTimeout(timer)
    }
    return batch
  }
  // Resolves once a message (or the end) is there, taking nothing: a caller can wait for it beside
  // other things and then call the batcher, and no message is lost to the race.
  const ready = async (): Promise<void> => {
    if (!ended) await pull()
  }
  return Object.assign(next, { ready })
}

/**
 * The stream's messages from sequence `from` (an ordered consumer: no acks), in batches of up to
 * `size`; the client pulls twice that at most ahead of what is taken.
 */
export const readStream = async (js: JetStreamClient, stream: string, from: number, size: number, windowMs: number) => {
  const consumer = await js.consumers.get(stream, { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: Math.max(1, from) })
  const messages = await consumer.consume({ max_messages: size * 2 })
  return { messages, next: batcher(messages, size, windowMs) }
}
