/** What the NATS consumer iterator tells about its buffer. */
export interface Buffered<T> extends AsyncIterable<T> {
  /** Messages already received and waiting to be yielded. */
  getPending(): number
}

const pause = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/**
 * Turns the consumer's message iterator into batches: waits for one message, then takes what is
 * already buffered (and what arrives within `windowMs`) up to `size`. Plain promises on purpose:
 * one Effect per batch instead of one per message keeps the per-event cost down (BENCHMARKS.md).
 * Returns null once the iterator has ended (the consumer was stopped).
 */
export const batcher = <T>(messages: Buffered<T>, size: number, windowMs: number) => {
  const iterator = messages[Symbol.asyncIterator]()
  let ended = false
  return async (): Promise<Array<T> | null> => {
    if (ended) return null
    const first = await iterator.next()
    if (first.done === true) {
      ended = true
      return null
    }
    const batch = [first.value]
    const deadline = performance.now() + windowMs
    while (batch.length < size) {
      if (messages.getPending() > 0) {
        // Buffered: resolves without waiting for the network.
        const next = await iterator.next()
        if (next.done === true) {
          ended = true
          break
        }
        batch.push(next.value)
        continue
      }
      const left = deadline - performance.now()
      if (left <= 0) break
      await pause(Math.min(left, 5))
    }
    return batch
  }
}
