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
  app.addHook('onClose', async () => { await sql.end({ timeout: 5 }) })
}, { name: 'db' })
