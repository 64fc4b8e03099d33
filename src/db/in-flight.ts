// Sharing a read only with callers it cannot be stale for: a caller joins a read that has not started yet, never one
// already running. Callers arriving while a read runs wait for the next one, which starts when it settles. So at
// most one read runs and one waits per key, and every write committed before a caller arrived is in its answer.

interface Slot<V> {
  /** The read that has started (its statements may already have taken their snapshot). */
  running: Promise<unknown> | undefined
  /** The read that has not started yet: callers arriving now share it. */
  waiting: Promise<V> | undefined
}

export class NextRead<V> {
  private readonly slots = new Map<string, Slot<V>>()

  /**
   * The answer of a `work()` started after this call, shared with the other callers of `key` that it started after.
   * `work` is given when its first caller arrived (performance.now()), so that it can keep that caller's deadline.
   */
  async run (key: string, work: (since: number) => Promise<V>): Promise<V> {
    let slot = this.slots.get(key)
    if (slot === undefined) this.slots.set(key, slot = { running: undefined, waiting: undefined })
    if (slot.waiting !== undefined) return await slot.waiting
    const current = slot
    const before = current.running
    const since = performance.now()
    const waiting = (async () => {
      // No read running: the next turn of the event loop, so that the callers of this turn share it too.
      if (before === undefined) await new Promise((resolve) => setImmediate(resolve))
      else await before.then(() => {}, () => {})
      current.waiting = undefined
      const running = work(since)
      current.running = running
      try {
        return await running
      } finally {
        if (current.running === running) current.running = undefined
        if (current.running === undefined && current.waiting === undefined && this.slots.get(key) === current) this.slots.delete(key)
      }
    })()
    current.waiting = waiting
    return await waiting
  }

  /** Keys with a read running or waiting. */
  get size (): number {
    return this.slots.size
  }
}
