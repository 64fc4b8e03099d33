// How the row is shown: JSON with ISO 8601 UTC timestamps, an entity tag that changes when the row or the verdict
// changes (and not when only the ages tick on), and conditional-request matching (RFC 9110).
import { createHash } from 'node:crypto'
import type { HeartbeatJson, HeartbeatRow } from './heartbeat.js'
import type { Liveness } from './liveness.js'

const iso = (date: Date | null): string | null => date === null ? null : date.toISOString()

export function heartbeatJson (row: HeartbeatRow): HeartbeatJson {
  return {
    id: row.id,
    instance_id: row.instance_id,
    started_at: row.started_at.toISOString(),
    last_poll_at: iso(row.last_poll_at),
    next_poll_at: iso(row.next_poll_at),
    poll_count: row.poll_count,
    dispatch_count: row.dispatch_count,
    error_count: row.error_count,
    circuit_breaker_state: row.circuit_breaker_state,
    paused_reason: row.paused_reason,
    status: row.status,
    metadata: row.metadata,
    updated_at: row.updated_at.toISOString()
  }
}

/** A strong validator: the same bytes of row and the same verdict give the same tag. */
export function entityTag (row: HeartbeatJson, liveness: Pick<Liveness, 'state' | 'status'>): string {
  const hash = createHash('sha256').update(JSON.stringify(row)).update('\0').update(`${liveness.state}/${liveness.status}`)
  return `"${hash.digest('base64url').slice(0, 27)}"`
}

function tagsOf (header: string): string[] {
  return header.split(',').map((tag) => tag.trim()).filter((tag) => tag !== '')
}

/** If-None-Match: weak comparison, `*` matches any current representation. */
export function noneMatch (header: string | undefined, etag: string): boolean {
  if (header === undefined) return false
  const opaque = (tag: string): string => tag.startsWith('W/') ? tag.slice(2) : tag
  return tagsOf(header).some((tag) => tag === '*' || opaque(tag) === opaque(etag))
}

/** If-Match: strong comparison, so a weak tag never matches; `*` matches when there is a row. */
export function ifMatch (header: string | undefined, etag: string): boolean {
  if (header === undefined) return true
  return tagsOf(header).some((tag) => tag === '*' || (!tag.startsWith('W/') && tag === etag))
}
