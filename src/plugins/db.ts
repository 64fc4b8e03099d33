import fp from 'fastify-plugin'
import type { Sql } from 'postgres'
import { createSql, type DbSettings } from '../db/client.js'
import { HeartbeatStore } from '../db/store.js'

declare module 'fastify' {
  interface FastifyInstance {
    sql: Sql
    store: HeartbeatStore
  }
}

export interface DbPluginOptions { url: string, settings: DbSettings }

/** The one connection pool of the process; released on close. */
export default fp<DbPluginOptions>(async (app, { url, settings }) => {
  const sql = createSql(url, settings)
  const store = new HeartbeatStore(sql, { statementTimeoutMs: settings.statementTimeoutMs, readAttempts: settings.poolMax + 1 })
  app.decorate('sql', sql)
  app.decorate('store', store)
  // Reads are shared once the policies are known to be the mirror's. The first comparison is finished before the app
  // listens, so the first requests already share reads, and no comparison is still in flight (holding one of the
  // pool's connections, or waiting behind a lock on the table) when they come. It never rejects, and its deadline
  // (the statement timeout and 500 ms) bounds how long it can hold up the start.
  app.addHook('onReady', async () => { await store.checkPolicies() })
  app.addHook('onClose', async () => { await sql.end({ timeout: 5 }) })
}, { name: 'db' })
