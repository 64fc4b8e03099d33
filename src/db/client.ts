import postgres, { type Sql } from 'postgres'
import { listenerOf } from '../embedded/peer.js'

export interface DbSettings {
  poolMax: number
  statementTimeoutMs: number
  prepare: boolean
  /** The embedded server's OS uid: a connection is used only when its listener is this user's (peer.ts). */
  listenerUid?: number
}

/**
 * One pool per process. The connect timeout keeps a dead host from hanging us. Nothing is set for the session at
 * connection start but its application_name: a transaction pooler refuses startup parameters it does not know
 * (PgBouncer: "unsupported startup parameter: statement_timeout"), and hands each transaction a server connection
 * that other clients may have configured. So each transaction sets what it needs, locally (the statement timeout
 * with the role, see heartbeat.ts), and timestamps are read as numbers, whatever DateStyle and TimeZone say.
 */
export function createSql (url: string, settings: DbSettings): Sql {
  return postgres(url, {
    max: settings.poolMax,
    prepare: settings.prepare,
    // No query at connection start for the array types: no statement reads an array (catalog.ts reads roles as JSON).
    fetch_types: false,
    connect_timeout: Math.max(1, Math.ceil(settings.statementTimeoutMs / 1000)),
    // Seconds before reconnecting after the n-th lost connection in a row: 0.1, 0.2, 0.4 … at most 2 (postgres.js's
    // default climbs to 20 s, so a request after an outage waited out its deadline). A pool of a few connections
    // retrying every 2 s is no load on a server that is coming back; an API that answers again 2 s after it is, is.
    backoff: (lost: number) => Math.min(0.05 * 2 ** lost, 2),
    idle_timeout: 60,
    max_lifetime: 60 * 30,
    onnotice: () => {},
    connection: { application_name: 'eva-heartbeat-api' },
    ...(settings.listenerUid === undefined ? {} : listenerOf(settings.listenerUid))
  })
}
