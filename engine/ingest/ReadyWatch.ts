import type { EventReader } from "./EventReader.ts"

/**
 * The ingest loop's wait for events (engine/Ingest.ts): until the reader has something, the loop is
 * woken, or a time-out (500 ms while idle, so that lease changes and checkpoints are looked at).
 *
 * The reader's readiness is watched once while it stays pending, not once per wait. Each wait used to
 * add its own callbacks to it, and an idle reader's readiness stays pending until an event comes: an
 * idle engine kept about 700 bytes a wait, two waits a second (120 MB a day), and the first event
 * after a quiet night ran every one of those callbacks at once.
 */
export class ReadyWatch {
  /** The reader whose readiness has a callback on it, until that readiness comes. */
  private watching: EventReader | null = null
  /** Ends the wait under way. */
  private settle: ((ready: boolean) => void) | null = null

  /** Resolves true once `reader` has a batch, its end or a failure; false on `cancel` or after `ms`. */
  wait(reader: EventReader, ms: number): Promise<boolean> {
    this.settle?.(false)
    return new Promise<boolean>((resolve) => {
      const settle = (ready: boolean) => {
        if (this.settle !== settle) return
        this.settle = null
        clearTimeout(timer)
        resolve(ready)
      }
      const timer = setTimeout(() => settle(false), ms)
      this.settle = settle
      if (this.watching !== reader) {
        this.watching = reader
        // A reader replaced meanwhile (reopened) tells nobody: its readiness is not the current one's.
        const fire = () => {
          if (this.watching !== reader) return
          this.watching = null
          this.settle?.(true)
        }
        reader.ready().then(fire, fire)
      }
    })
  }

  /** Ends the wait under way, if any, with false. */
  cancel(): void {
    this.settle?.(false)
  }
}
