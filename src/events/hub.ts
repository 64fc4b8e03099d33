// One poller for every event-stream client: while at least one client is connected it produces the current event
// (one database read and one verdict) every `intervalMs`, and sends it to each client whose last event differs.
// With no client connected it does nothing at all. Knows nothing of Fastify or SQL: `produce` is injected.
import { formatEvent, KEEP_ALIVE, type HeartbeatEvent } from '../domain/events.js'

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
}

interface Client {
  sink: EventSink
  /** The id of the last event this client has (from Last-Event-ID until we send it one). */
  lastId: string | undefined
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
  subscribe (sink: EventSink, lastEventId?: string): () => void {
    if (this.closed) {
      sink.end()
      return () => {}
    }
    const client: Client = { sink, lastId: lastEventId }
    this.clients.add(client)
    if (this.current !== undefined) this.deliver(client, this.current)
    if (!this.polling) this.start()
    return () => { this.unsubscribe(client) }
  }

  /** Ends every stream and stops polling; later subscribers are ended at once. Waits for a read in flight. */
  async close (): Promise<void> {
    this.closed = true
    for (const client of this.clients) client.sink.end()
    this.clients.clear()
    this.stop()
    await this.inFlight
  }

  private unsubscribe (client: Client): void {
    if (!this.clients.delete(client)) return
    if (this.clients.size === 0) this.stop()
  }

  private start (): void {
    this.polling = true
    const generation = ++this.generation
    this.keepAliveTimer = setInterval(() => { this.broadcast(KEEP_ALIVE) }, this.options.keepAliveMs)
    void this.poll(generation)
  }

  private stop (): void {
    this.polling = false
    this.generation++
    this.current = undefined
    clearTimeout(this.pollTimer)
    clearInterval(this.keepAliveTimer)
    this.pollTimer = undefined
    this.keepAliveTimer = undefined
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
    for (const client of this.clients) this.deliver(client, event)
  }

  private deliver (client: Client, event: HeartbeatEvent): void {
    if (client.lastId === event.id) return
    client.lastId = event.id
    client.sink.write(event === this.current ? this.currentFrame : formatEvent(event))
  }

  private broadcast (frame: string): void {
    for (const client of this.clients) client.sink.write(frame)
  }
}
