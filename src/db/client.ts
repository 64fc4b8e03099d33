import postgres, { type Sql } from 'postgres'

export interface DbSettings { poolMax: number, statementTimeoutMs: number, prepare: boolean }

/** One pool per process. The statement timeout is the server's; the connect timeout keeps a dead host from hanging us. */
export function createSql (url: string, settings: DbSettings): Sql {
  return postgres(url, {
    max: settings.poolMax,
    prepare: settings.prepare,
    connect_timeout: Math.max(1, Math.ceil(settings.statementTimeoutMs / 1000)),
    idle_timeout: 60,
    max_lifetime: 60 * 30,
    onnotice: () => {},
    connection: {
      application_name: 'eva-heartbeat-api',
      statement_timeout: settings.statementTimeoutMs
    }
  })
}
