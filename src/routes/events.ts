import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import { formatRetry, HEARTBEAT_EVENT } from '../domain/events.js'
import type { EventSink } from '../events/hub.js'
import { streamLease } from '../events/lease.js'
import { routeAccess } from '../http/access.js'
import { problem } from '../http/schemas.js'

export interface EventsRoutesOptions {
  /** The reconnection delay sent to clients in the `retry:` field. */
  retryMs: number
}

/** A client that lets this much pile up unread is gone in all but name: drop it rather than buffer without end. */
const MAX_BUFFERED_BYTES = 1024 * 1024

const STREAM_DESCRIPTION = [
  'Server-Sent Events. Each `heartbeat` event carries `id:` (the ETag\'s opaque part when there is a row, else `missing` or `unknown`)',
  'and `data:` (the same JSON object as GET /heartbeat; `heartbeat` is null when there is no row or the database is unreachable).',
  'The stream starts with `retry:`, then the current state (unless `Last-Event-ID` is its id), then one event whenever the row or',
  'the verdict changes, and a `: keep-alive` comment line between events.',
  'The stream ends when its token does: once `exp` plus JWT_CLOCK_TOLERANCE_SECONDS has passed, or (for a JWKS token) within',
  'the JWKS refresh bound after its key leaves the set; and, whatever the credential (an API key never expires), after at most',
  'EVENTS_MAX_LIFETIME_SECONDS (up to 10% sooner, so streams opened together do not all end together).',
  'Its last event is then `reauthenticate`, without `id:`, whose `data:` is',
  '`{"reason": "token_expired" | "key_removed" | "max_lifetime", "detail": "…"}`: reconnect (with a fresh token when it expired).'
].join(' ')

const eventsRoutes: FastifyPluginAsyncTypebox<EventsRoutesOptions> = async (app, { retryMs }) => {
  const access = routeAccess(app, 'select')
  app.get('/heartbeat/events', {
    schema: {
      operationId: 'getHeartbeatEvents',
      summary: 'A live stream of the heartbeat: one event per change of the row or the verdict',
      description: 'Roles `authenticated` and `service_role`. However many clients are connected, the service reads the row once ' +
        'per EVENTS_INTERVAL_MS for all of them, and only while at least one is connected. The verdict uses the configured grace.',
      tags: ['heartbeat'],
      security: access.security,
      headers: Type.Object({
        'last-event-id': Type.Optional(Type.String({ maxLength: 200, description: 'The id of the last event the client has: no initial event is sent when it is still current' }))
      }),
      response: {
        200: { description: STREAM_DESCRIPTION, content: { 'text/event-stream': { schema: Type.String({ description: `A stream of \`${HEARTBEAT_EVENT}\` events` }) } } },
        400: problem('A header is not valid'),
        ...access.refusals,
        429: problem('Code `too_many_streams_for_principal`: the caller (a token\'s `sub`, an API key) already holds EVENTS_MAX_PER_PRINCIPAL ' +
          'open streams; `too_many_streams_from_address`: its client address holds EVENTS_MAX_PER_ADDRESS; `too_many_requests`: too many ' +
          'failed authentications from this address (AUTH_FAILURE_LIMIT_PER_MINUTE)', 429),
        503: problem('Code `event_streams_full`: this instance already holds EVENTS_MAX_TOTAL open streams; `jwks_unavailable`: the ' +
          'signing keys (JWKS_URL) could not be fetched to check the token', 503)
      }
    },
    config: { stream: true },
    preHandler: access.gate
  }, async (request, reply) => {
    const principal = access.principal(request)
    // Counted before anything is written, so a refusal is a plain problem answer; released once the response closes.
    const release = app.streamSlots.admit(principal.owner, request.ip)
    const res = reply.raw
    res.on('close', release)
    // A client gone while it was being authenticated may have closed the response already: no 'close' to wait for.
    if (request.raw.socket.destroyed) release()
    reply.hijack()
    // Headers the hooks set on the reply (CORS) would be lost with the hijack: carried over.
    for (const [name, value] of Object.entries(reply.getHeaders())) if (value !== undefined) res.setHeader(name, value)
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      // Nginx and friends would otherwise hold events back to fill a buffer.
      'x-accel-buffering': 'no',
      // A stream is never reused for another request; closing the socket when it ends lets shutdown finish at once.
      connection: 'close'
    })
    app.metrics.observeRequest(request.method, request.routeOptions.url, 200, undefined)
    if (request.method === 'HEAD') {
      res.end()
      return reply
    }
    res.write(formatRetry(retryMs))
    const sink: EventSink = {
      write: (frame) => {
        if (res.destroyed || res.writableEnded) return
        if (res.writableLength > MAX_BUFFERED_BYTES) {
          res.destroy()
          return
        }
        res.write(frame)
      },
      end: () => { if (!res.writableEnded) res.end() }
    }
    const unsubscribe = app.events.subscribe(sink, request.headers['last-event-id'], streamLease(principal, app.recheckCredential(request)))
    // The response's 'close' fires when the client goes away or the stream is ended, whichever comes first.
    res.on('close', unsubscribe)
    if (request.raw.socket.destroyed) unsubscribe()
    return reply
  })
}

export default eventsRoutes
