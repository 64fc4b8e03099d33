// The event hub of /heartbeat/events: one per app, reading through the same store and verdict as the routes, and the
// caps on how many streams are open (per principal, per client address, overall).
import { readFileSync } from 'node:fs'
import fp from 'fastify-plugin'
import { Counter, Gauge } from 'prom-client'
import { heartbeatEvent } from '../domain/events.js'
import { deriveLiveness, withDemoLabel, type GraceSettings } from '../domain/liveness.js'
import { ProblemError } from '../http/problems.js'
import { EventHub } from '../events/hub.js'
import {
  defaultTotalStreams, parseOpenFileLimit, StreamSlots, type StreamCaps, type StreamCapScope, type StreamRefusal
} from '../events/stream-slots.js'
import { SERVICE_READER } from '../auth/principal.js'

declare module 'fastify' {
  interface FastifyInstance {
    events: EventHub
    streamSlots: StreamAdmissions
  }
}

export interface StreamAdmissions {
  /** Takes a slot for a stream of `owner` from `ip` and returns its release, or throws the 429/503 problem. */
  admit: (owner: string, ip: string) => () => void
  readonly caps: Readonly<StreamCaps>
  stats: StreamSlots['stats']
}

/** How long a refused client is told to wait: a slot frees only when another stream of the same kind ends. */
export const STREAM_RETRY_AFTER_SECONDS: Readonly<Record<StreamCapScope, number>> = Object.freeze({ principal: 30, address: 30, total: 15 })

const REFUSALS: Readonly<Record<StreamCapScope, { status: number, code: string, title: string, detail: (limit: number) => string }>> = {
  principal: {
    status: 429,
    code: 'too_many_streams_for_principal',
    title: 'Too many event streams for this principal',
    detail: (limit) => `This principal already holds ${limit} open event streams (EVENTS_MAX_PER_PRINCIPAL); close one first.`
  },
  address: {
    status: 429,
    code: 'too_many_streams_from_address',
    title: 'Too many event streams from this address',
    detail: (limit) => `This client address already holds ${limit} open event streams (EVENTS_MAX_PER_ADDRESS); close one first.`
  },
  total: {
    status: 503,
    code: 'event_streams_full',
    title: 'No event stream available',
    detail: (limit) => `This instance already holds ${limit} open event streams (EVENTS_MAX_TOTAL); try again shortly.`
  }
}

export function streamRefused ({ scope, limit }: StreamRefusal): ProblemError {
  const { status, code, title, detail } = REFUSALS[scope]
  return new ProblemError(status, code, title, detail(limit), { 'retry-after': String(STREAM_RETRY_AFTER_SECONDS[scope]) })
}

/** The soft open-file limit of this process (Linux); undefined elsewhere or when unlimited. */
function openFileLimit (): number | undefined {
  try {
    return parseOpenFileLimit(readFileSync('/proc/self/limits', 'utf8'))
  } catch {
    return undefined
  }
}

export interface EventsPluginOptions {
  grace: GraceSettings
  intervalMs: number
  keepAliveMs: number
  /** How often a JWKS token's stream checks its key is still published. */
  recheckMs: number
  maxPerPrincipal: number
  maxPerAddress: number
  /** Unset: half the open-file limit, at most 10,000 (defaultTotalStreams). */
  maxTotal: number | undefined
  maxLifetimeSeconds: number
  /** The row is the embedded database's demo data: every event's verdict says so. */
  demoData?: boolean
}

export default fp<EventsPluginOptions>(async (app, options) => {
  const { grace, intervalMs, keepAliveMs, recheckMs, maxPerPrincipal, maxPerAddress, maxLifetimeSeconds } = options
  const files = openFileLimit()
  const caps: StreamCaps = { perPrincipal: maxPerPrincipal, perAddress: maxPerAddress, total: options.maxTotal ?? defaultTotalStreams(files) }
  if (options.maxTotal !== undefined && files !== undefined && options.maxTotal > files / 2) {
    app.log.warn(`EVENTS_MAX_TOTAL=${options.maxTotal} is above half the open-file limit (${files}): open streams could leave no file descriptors for other requests`)
  }
  const slots = new StreamSlots(caps)
  const hub = new EventHub({
    intervalMs,
    keepAliveMs,
    recheckMs,
    maxLifetimeMs: maxLifetimeSeconds * 1000,
    // The shared poller reads as the least role that may read the row; each client was authorized on connect.
    produce: async () => {
      const reading = await app.store.read(SERVICE_READER)
      return heartbeatEvent(reading, withDemoLabel(deriveLiveness(reading, grace).liveness, options.demoData ?? false))
    },
    onError: (error) => { app.log.error({ err: error }, 'heartbeat event stream: reading the row failed') }
  })
  app.decorate('events', hub)

  const refusals = new Counter({
    name: 'eva_heartbeat_api_event_stream_refusals_total',
    help: 'Requests for /heartbeat/events refused because a cap was reached: principal, address (429) or total (503)',
    labelNames: ['cap'],
    registers: [app.metrics.registry]
  })
  for (const cap of Object.keys(REFUSALS)) refusals.inc({ cap }, 0)
  app.decorate('streamSlots', {
    admit: (owner: string, ip: string) => {
      const admission = slots.acquire(owner, ip)
      if (admission.admitted) return admission.release
      refusals.inc({ cap: admission.refusal.scope })
      throw streamRefused(admission.refusal)
    },
    caps: Object.freeze({ ...caps }),
    stats: () => slots.stats()
  })

  // Registered in the app's registry by its constructor; nothing else needs a handle on it.
  new Gauge({ // eslint-disable-line no-new
    name: 'eva_heartbeat_api_event_stream_clients',
    help: 'Clients connected to /heartbeat/events',
    registers: [app.metrics.registry],
    collect () { this.set(hub.stats().clients) }
  })

  // preClose, not onClose: open streams would keep server.close() waiting, and onClose runs only after it.
  app.addHook('preClose', async () => { await hub.close() })
}, { name: 'events', dependencies: ['db', 'metrics'] })
