import postgres, { type Sql } from 'postgres'

export interface DbSettings { poolMax: number, statementTimeoutMs: number, prepare: boolean }

/** One pool per process. The statement timeout is the server's; the connect timeout keeps a dead host from hanging us. */
export function createSql (url: string, settings: DbSettings): Sql {
  return postgres(url, {
    max: settings.poolMax,
    prepare: settings.prepare,
    connect_timeout: Math.max(1, Math.ceil(settings.statementTimeoutMs / 1000)),
    // Seconds before reconnecting after the n-th lost connection in a row: 0.1, 0.2, 0.4 … at most 2 (postgres.js's
    // default climbs to 20 s, so a request after an outage waited out its deadline). A pool of a few connections
    // retrying every 2 s is no load on a server that is coming back; an API that answers again 2 s after it is, is.
    backoff: (lost: number) => Math.min(0.05 * 2 ** lost, 2),
    idle_timeout: 60,
    max_lifetime: 60 * 30,
    onnotice: () => {},
    connection: {
      application_name: 'eva-heartbeat-api',
      statement_timeout: settings.statementTimeoutMs
    }
  })
}
