// The heartbeat event stream's events and their Server-Sent Events framing (WHATWG HTML §9.2). Pure: the hub in
// src/events/ decides when to send them.
import type { HeartbeatReading, Liveness } from './liveness.js'
import type { HeartbeatJson } from './heartbeat.js'
import { entityTag, heartbeatJson } from './representation.js'

export const HEARTBEAT_EVENT = 'heartbeat'

export interface HeartbeatEvent {
  /**
   * Identifies the row and the verdict, not the moment: the ETag's opaque part when there is a row (so it matches
   * GET /heartbeat's ETag), else `missing` or `unknown`. Stable across reconnects and API restarts, so a client's
   * Last-Event-ID means "I have seen this state".
   */
  id: string
  /** The same JSON as GET /heartbeat; `heartbeat` is null when there is no row or the database was unreachable. */
  data: { heartbeat: HeartbeatJson | null, liveness: Liveness }
}

export function heartbeatEvent (reading: HeartbeatReading, liveness: Liveness): HeartbeatEvent {
  if (!reading.reachable) return { id: 'unknown', data: { heartbeat: null, liveness } }
  if (reading.row === null) return { id: 'missing', data: { heartbeat: null, liveness } }
  const heartbeat = heartbeatJson(reading.row)
  return { id: entityTag(heartbeat, liveness).slice(1, -1), data: { heartbeat, liveness } }
}

/** One `heartbeat` event. JSON.stringify never emits a line break, so `data` is a single line. */
export function formatEvent (event: HeartbeatEvent): string {
  return `id: ${event.id}\nevent: ${HEARTBEAT_EVENT}\ndata: ${JSON.stringify(event.data)}\n\n`
}

/** Tells the client how long to wait before reconnecting; dispatches no event. */
export const formatRetry = (ms: number): string => `retry: ${Math.round(ms)}\n\n`

/** A comment line: ignored by clients, it keeps proxies and idle-socket timeouts from closing a quiet stream. */
export const KEEP_ALIVE = ': keep-alive\n\n'

/**
 * The last event of a stream whose credential no longer holds: the client should reconnect with a fresh token.
 * It carries no `id:`, so the client's Last-Event-ID stays the last heartbeat it has.
 */
export const REAUTHENTICATE_EVENT = 'reauthenticate'

/**
 * Why a stream was ended: `token_expired` (exp plus the clock tolerance has passed), `key_removed` (its JWKS key is
 * gone), `max_lifetime` (it was open for EVENTS_MAX_LIFETIME_SECONDS: an API key never expires, a token may be far off).
 */
export type StreamEndReason = 'token_expired' | 'key_removed' | 'max_lifetime'

export interface StreamEnd {
  reason: StreamEndReason
  detail: string
}

export function formatStreamEnd (end: StreamEnd): string {
  return `event: ${REAUTHENTICATE_EVENT}\ndata: ${JSON.stringify({ reason: end.reason, detail: end.detail })}\n\n`
}

export const TOKEN_EXPIRED_END: StreamEnd = Object.freeze({
  reason: 'token_expired',
  detail: 'The token has expired (exp, plus the clock tolerance); reconnect with a fresh token.'
})

export const MAX_LIFETIME_END: StreamEnd = Object.freeze({
  reason: 'max_lifetime',
  detail: 'The stream has reached its maximum lifetime (EVENTS_MAX_LIFETIME_SECONDS); reconnect, with Last-Event-ID, to go on.'
})
