import fp from 'fastify-plugin'
import type { Sql } from 'postgres'
import { apiPoolOptions, createSql, type DbSettings, type SocketFactory } from '../db/client.js'
import { HeartbeatStore } from '../db/store.js'

declare module 'fastify' {
  interface FastifyInstance {
    sql: Sql
    store: HeartbeatStore
  }
}

export interface DbPluginOptions { url: string, settings: DbSettings, socket?: SocketFactory | undefined }

/** The one connection pool of the process; released on close. */
export default fp<DbPluginOptions>(async (app, { url, settings, socket }) => {
  const sql = createSql(url, apiPoolOptions(settings, socket))
  const store = new HeartbeatStore(sql, { statementTimeoutMs: settings.statementTimeoutMs, readAttempts: settings.poolMax + 1 })
  app.decorate('sql', sql)
  app.decorate('store', store)
  app.addHook('onClose', async () => { await sql.end({ timeout: 5 }) })
}, { name: 'db' })
