// The event hub of /heartbeat/events: one per app, reading through the same store and verdict as the routes.
import fp from 'fastify-plugin'
import { Gauge } from 'prom-client'
import { heartbeatEvent } from '../domain/events.js'
import { deriveLiveness, type GraceSettings } from '../domain/liveness.js'
import { EventHub } from '../events/hub.js'
import { SERVICE_READER } from './auth.js'

declare module 'fastify' {
  interface FastifyInstance {
    events: EventHub
  }
}

export interface EventsPluginOptions {
  grace: GraceSettings
  intervalMs: number
  keepAliveMs: number
  /** How often a JWKS token's stream checks its key is still published. */
  recheckMs: number
}

export default fp<EventsPluginOptions>(async (app, { grace, intervalMs, keepAliveMs, recheckMs }) => {
  const hub = new EventHub({
    intervalMs,
    keepAliveMs,
    recheckMs,
    // The shared poller reads as the least role that may read the row; each client was authorized on connect.
    produce: async () => {
      const reading = await app.store.read(SERVICE_READER)
      return heartbeatEvent(reading, deriveLiveness(reading, grace).liveness)
    },
    onError: (error) => { app.log.error({ err: error }, 'heartbeat event stream: reading the row failed') }
  })
  app.decorate('events', hub)

  // Registered in the app's registry by its constructor; nothing else needs a handle on it.
  new Gauge({
    name: 'eva_heartbeat_api_event_stream_clients',
    help: 'Clients connected to /heartbeat/events',
    registers: [app.metrics.registry],
    collect () { this.set(hub.stats().clients) }
  })

  // preClose, not onClose: open streams would keep server.close() waiting, and onClose runs only after it.
  app.addHook('preClose', async () => { await hub.close() })
}, { name: 'events', dependencies: ['db', 'metrics'] })
