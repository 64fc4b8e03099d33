// Coalescing: while a read for a key is in flight, callers asking for the same key wait for that read instead of
// starting their own. So a read's answer is never older than the moment its caller arrived by more than the one
// query that was already running then.

export class InFlight<K, V> {
  private readonly pending = new Map<K, Promise<V>>()

  /** The running work for `key`, or `work()` started now and shared until it settles. */
  async run (key: K, work: () => Promise<V>): Promise<V> {
    const running = this.pending.get(key)
    if (running !== undefined) return await running
    const started: Promise<V> = work().finally(() => {
      if (this.pending.get(key) === started) this.pending.delete(key)
    })
    this.pending.set(key, started)
    return await started
  }

  /** Callers from now on start new work (the running work still answers those already waiting for it). */
  forget (): void {
    this.pending.clear()
  }

  get size (): number {
    return this.pending.size
  }
}
