// One poller for every event-stream client: while at least one client is connected it produces the current event
// (one database read and one verdict) every `intervalMs`, and sends it to each client whose last event differs.
// With no client connected it does nothing at all. Knows nothing of Fastify or SQL: `produce` is injected.
import { formatEvent, formatStreamEnd, KEEP_ALIVE, MAX_LIFETIME_END, TOKEN_EXPIRED_END, type HeartbeatEvent, type StreamEnd } from '../domain/events.js'

/** Where a client's frames go: the route wraps the HTTP response in one of these. */
export interface EventSink {
  write: (frame: string) => void
  end: () => void
}

export interface EventHubOptions {
  intervalMs: number
  keepAliveMs: number
  /** Reads the row, takes the verdict and returns the event for it; called once per interval, never per client. */
  produce: () => Promise<HeartbeatEvent>
  onError: (error: unknown) => void
  /** How often the credentials of streams that have a `recheck` are checked again (the JWKS bound), in ms; unset: never. */
  recheckMs?: number
  /** The longest a stream stays open, whatever its credential (see boundLease); unset: no bound. */
  maxLifetimeMs?: number
}

/**
 * How long a client's credential holds. A stream is ended (after a `reauthenticate` event) at `expiresAt`, or when
 * `recheck` says the credential no longer holds; neither: the stream lasts as long as the client stays, or the hub's
 * maxLifetimeMs.
 */
export interface StreamLease {
  /** Milliseconds since the epoch: the token's exp plus the clock tolerance. */
  expiresAt?: number
  /** What the stream's last event says at `expiresAt`; unset: the token has expired. */
  end?: StreamEnd
  /** Resolves with why the credential no longer holds, or undefined while it does. */
  recheck?: () => Promise<StreamEnd | undefined>
}

/**
 * Clients written to in one go (about 10 ms of writes here): between slices the event loop serves whatever else is waiting (HTTP requests, a
 * socket's close), so 10,000 streams do not hold a liveness request back for the whole broadcast (issue 12).
 */
export const DELIVERY_SLICE = 250

/** The share of the maximum lifetime by which a stream may end sooner, so streams opened together do not all reconnect together. */
export const LIFETIME_JITTER = 0.1

/**
 * The lease a stream opened at `now` gets: its credential's, or, when that holds longer than the maximum lifetime
 * (or for ever, as an API key does), one that ends between (1 - LIFETIME_JITTER) and 1 times the lifetime from now.
 */
export function boundLease (lease: StreamLease, now: number, maxLifetimeMs: number, random: number = Math.random()): StreamLease {
  const deadline = now + Math.round(maxLifetimeMs * (1 - LIFETIME_JITTER * random))
  if (lease.expiresAt !== undefined && lease.expiresAt <= deadline) return lease
  return { ...lease, expiresAt: deadline, end: MAX_LIFETIME_END }
}

/** setTimeout's longest delay; a later expiry is reached in steps. */
const MAX_TIMER_MS = 2 ** 31 - 1

interface Client {
  sink: EventSink
  /** The id of the last event this client has (from Last-Event-ID until we send it one). */
  lastId: string | undefined
  lease: StreamLease
  expiryTimer?: NodeJS.Timeout
  rechecking: boolean
}

export interface EventHubStats {
  clients: number
  polling: boolean
  /** How many times `produce` has been called since the hub was made. */
  reads: number
}

export class EventHub {
  private readonly clients = new Set<Client>()
  private current: HeartbeatEvent | undefined
  /** The current event as a frame: serialized once and written as it is to every client (10,000 of them, issue 12). */
  private currentFrame = ''
  private pollTimer: NodeJS.Timeout | undefined
  private keepAliveTimer: NodeJS.Timeout | undefined
  private recheckTimer: NodeJS.Timeout | undefined
  /** Bumped on every start and stop, so a read that finishes after a stop (or a restart) is ignored. */
  private generation = 0
  private polling = false
  private closed = false
  private inFlight: Promise<void> | undefined
  private reads = 0

  constructor (private readonly options: EventHubOptions) {}

  stats (): EventHubStats {
    return { clients: this.clients.size, polling: this.polling, reads: this.reads }
  }

  /**
   * Adds a client. It gets the current event at once unless `lastEventId` is that event's id; a client that
   * arrives before the first read gets the first read's event. Returns the function that removes it.
   */
  subscribe (sink: EventSink, lastEventId?: string, lease: StreamLease = {}): () => void {
    if (this.closed) {
      sink.end()
      return () => {}
    }
    const { maxLifetimeMs } = this.options
    const bounded = maxLifetimeMs === undefined ? lease : boundLease(lease, Date.now(), maxLifetimeMs)
    const client: Client = { sink, lastId: lastEventId, lease: bounded, rechecking: false }
    this.clients.add(client)
    if (bounded.expiresAt !== undefined) this.armExpiry(client, bounded.expiresAt)
    if (this.current !== undefined) this.deliver(client, this.current)
    if (!this.polling) this.start()
    return () => { this.unsubscribe(client) }
  }

  /** Ends every stream and stops polling; later subscribers are ended at once. Waits for a read in flight. */
  async close (): Promise<void> {
    this.closed = true
    for (const client of this.clients) {
      clearTimeout(client.expiryTimer)
      client.sink.end()
    }
    this.clients.clear()
    this.stop()
    await this.inFlight
  }

  private unsubscribe (client: Client): void {
    clearTimeout(client.expiryTimer)
    if (!this.clients.delete(client)) return
    if (this.clients.size === 0) this.stop()
  }

  private start (): void {
    this.polling = true
    const generation = ++this.generation
    this.keepAliveTimer = setInterval(() => { void this.eachClient(generation, (client) => { client.sink.write(KEEP_ALIVE) }) }, this.options.keepAliveMs)
    if (this.options.recheckMs !== undefined) this.recheckTimer = setInterval(() => { this.recheckAll() }, this.options.recheckMs)
    void this.poll(generation)
  }

  private stop (): void {
    this.polling = false
    this.generation++
    this.current = undefined
    clearTimeout(this.pollTimer)
    clearInterval(this.keepAliveTimer)
    clearInterval(this.recheckTimer)
    this.pollTimer = undefined
    this.keepAliveTimer = undefined
    this.recheckTimer = undefined
  }

  /** One read, then the next one `intervalMs` after it finished: never two reads at once, never more than one per interval. */
  private async poll (generation: number): Promise<void> {
    const read = this.readOnce(generation)
    this.inFlight = read
    await read
    if (generation !== this.generation) return
    this.pollTimer = setTimeout(() => { void this.poll(generation) }, this.options.intervalMs)
  }

  private async readOnce (generation: number): Promise<void> {
    this.reads++
    let event: HeartbeatEvent
    try {
      event = await this.options.produce()
    } catch (error) {
      this.options.onError(error)
      return
    }
    if (generation !== this.generation) return
    this.current = event
    this.currentFrame = formatEvent(event)
    await this.eachClient(generation, (client) => { this.deliver(client, event) })
  }

  /** Calls `write` for every client connected now and still connected when its slice comes; stops on a stop. */
  private async eachClient (generation: number, write: (client: Client) => void): Promise<void> {
    const clients = [...this.clients]
    for (let start = 0; start < clients.length; start += DELIVERY_SLICE) {
      if (start > 0) {
        await new Promise((resolve) => setImmediate(resolve))
        if (generation !== this.generation) return
      }
      for (const client of clients.slice(start, start + DELIVERY_SLICE)) if (this.clients.has(client)) write(client)
    }
  }

  private deliver (client: Client, event: HeartbeatEvent): void {
    if (client.lastId === event.id) return
    client.lastId = event.id
    client.sink.write(event === this.current ? this.currentFrame : formatEvent(event))
  }

  /** Ends one client's stream because its credential no longer holds: the reason first, then the end. */
  private endClient (client: Client, end: StreamEnd): void {
    if (!this.clients.has(client)) return
    client.sink.write(formatStreamEnd(end))
    client.sink.end()
    this.unsubscribe(client)
  }

  private armExpiry (client: Client, expiresAt: number): void {
    const end = client.lease.end ?? TOKEN_EXPIRED_END
    const wait = expiresAt - Date.now()
    if (wait <= 0) {
      // Already past (it expired while the stream was being opened): ended once subscribe has returned.
      client.expiryTimer = setTimeout(() => { this.endClient(client, end) }, 0)
      return
    }
    client.expiryTimer = setTimeout(() => {
      if (Date.now() >= expiresAt) this.endClient(client, end)
      else this.armExpiry(client, expiresAt)
    }, Math.min(wait, MAX_TIMER_MS))
  }

  private recheckAll (): void {
    for (const client of this.clients) {
      const { recheck } = client.lease
      if (recheck === undefined || client.rechecking) continue
      client.rechecking = true
      recheck().then((end) => {
        client.rechecking = false
        if (end !== undefined) this.endClient(client, end)
      }, (error: unknown) => {
        client.rechecking = false
        this.options.onError(error)
      })
    }
  }
}
