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

/** How often the policies are compared with the mirror besides /readyz (reads are shared only while they agree). */
export const POLICY_CHECK_INTERVAL_MS = 30_000

/** The one connection pool of the process; released on close. */
export default fp<DbPluginOptions>(async (app, { url, settings }) => {
  const sql = createSql(url, settings)
  // A little over the server's statement timeout, so that the server's own cancellation normally wins.
  const store = new HeartbeatStore(sql, settings.statementTimeoutMs + 500)
  app.decorate('sql', sql)
  app.decorate('store', store)
  const checkPolicies = (): void => {
    store.checkPolicies().catch((err: unknown) => { app.log.warn({ err }, 'policy check failed') })
  }
  let timer: NodeJS.Timeout | undefined
  // Not awaited: a database that is down at start must not delay listening (reads are simply not shared until then).
  app.addHook('onReady', async () => {
    checkPolicies()
    timer = setInterval(checkPolicies, POLICY_CHECK_INTERVAL_MS).unref()
  })
  app.addHook('onClose', async () => {
    clearInterval(timer)
    await sql.end({ timeout: 5 })
  })
}, { name: 'db' })
