import type { Socket } from 'node:net'
import postgres, { type Sql } from 'postgres'

/** The API pool's settings, from DB_*. */
export interface DbSettings {
  poolMax: number
  statementTimeoutMs: number
  prepare: boolean
}

/** postgres.js's `socket` option (missing from its types): opens each connection, e.g. src/embedded/peer.ts's check. */
export type SocketFactory = (options: { host: string[], port: number[] }) => Promise<Socket>

export interface SqlOptions {
  max: number
  /** false behind a transaction pooler (DB_PREPARE=false). Default true. */
  prepare?: boolean
  /** Default postgres.js's 30 s. */
  connectTimeoutSeconds?: number
  /** Query the array types at connection start: needed only to send arrays as parameters. Default true. */
  fetchTypes?: boolean
  /** How the connections are named in pg_stat_activity. */
  applicationName?: string
  socket?: SocketFactory
}

/** The name the API's own pool gives its connections (tests and operators find them by it). */
const API_APPLICATION_NAME = 'eva-heartbeat-api'

/**
 * The API's pool (plugins/db.ts). Nothing but application_name is set at connection start: a transaction pooler
 * refuses other startup parameters, so each transaction sets what it needs (heartbeat.ts).
 */
export function apiPoolOptions (settings: DbSettings, socket?: SocketFactory): SqlOptions {
  return {
    max: settings.poolMax,
    prepare: settings.prepare,
    connectTimeoutSeconds: Math.max(1, Math.ceil(settings.statementTimeoutMs / 1000)),
    // No statement of the API sends or reads an array (catalog.ts reads roles as JSON).
    fetchTypes: false,
    applicationName: API_APPLICATION_NAME,
    ...(socket === undefined ? {} : { socket })
  }
}

/** The one place a postgres.js client is made. */
export function createSql (url: string, options: SqlOptions): Sql {
  return postgres(url, {
    max: options.max,
    prepare: options.prepare ?? true,
    fetch_types: options.fetchTypes ?? true,
    connect_timeout: options.connectTimeoutSeconds ?? 30,
    // Reconnect after 0.1, 0.2, 0.4 … at most 2 s (postgres.js's default climbs to 20 s, past a request's deadline).
    backoff: (lost: number) => Math.min(0.05 * 2 ** lost, 2),
    idle_timeout: 60,
    max_lifetime: 60 * 30,
    onnotice: () => {},
    ...(options.applicationName === undefined ? {} : { connection: { application_name: options.applicationName } }),
    ...(options.socket === undefined ? {} : { socket: options.socket })
  })
}
