/** A binary min-heap: the earliest of many timers in O(log n) per push and pop. */
export class MinHeap<A> {
  private readonly items: Array<A> = []

  constructor(private readonly compare: (a: A, b: A) => number) {}

  get size(): number {
    return this.items.length
  }

  peek(): A | undefined {
    return this.items[0]
  }

  push(item: A): void {
    const items = this.items
    items.push(item)
    let i = items.length - 1
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (this.compare(items[i]!, items[parent]!) >= 0) break
      ;[items[i], items[parent]] = [items[parent]!, items[i]!]
      i = parent
    }
  }

  pop(): A | undefined {
    const items = this.items
    const top = items[0]
    const last = items.pop()
    if (items.length === 0 || last === undefined) return top
    items[0] = last
    let i = 0
    for (;;) {
      const left = 2 * i + 1
      const right = left + 1
      let least = i
      if (left < items.length && this.compare(items[left]!, items[least]!) < 0) least = left
      if (right < items.length && this.compare(items[right]!, items[least]!) < 0) least = right
      if (least === i) return top
      ;[items[i], items[least]] = [items[least]!, items[i]!]
      i = least
    }
  }
}
