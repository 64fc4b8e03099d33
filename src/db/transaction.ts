// sql.begin, the only way the API's pool sends anything: inside a transaction postgres.js never pipelines and a
// transaction pooler keeps the server connection linked. When the connection itself is lost nothing is rolled back
// (the server already ended it), so a dead socket cannot crash the process (docs/reliability.md, "Faults").
import type { Fragment, Sql, TransactionSql } from 'postgres'

/** The driver's and the socket's codes for a connection that is gone, and the server's "terminating connection". */
const CONNECTION_LOST = new Set([
  'CONNECTION_CLOSED', 'CONNECTION_DESTROYED', 'CONNECTION_ENDED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT',
  '57P01', '57P02'
])

export function isConnectionLost (error: unknown): boolean {
  const code = typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined
  return typeof code === 'string' && CONNECTION_LOST.has(code)
}

export interface LocalSettings {
  /**
   * The server's statement_timeout for the transaction's statements. Nothing is set at connection start (see
   * client.ts), so without it a statement behind a lock (ACCESS EXCLUSIVE on the table) waits forever, holding a
   * connection of the pool.
   */
  statementTimeoutMs?: number
}

/** `, set_config('statement_timeout', …, true)` when a timeout is given, to append to a transaction's first select. */
export function localTimeout (tx: TransactionSql, settings: LocalSettings): Fragment {
  return settings.statementTimeoutMs === undefined
    ? tx``
    : tx`, set_config('statement_timeout', ${String(settings.statementTimeoutMs)}, true)`
}

export async function transaction<T> (sql: Sql, work: (tx: TransactionSql) => Promise<T>, settings: LocalSettings = {}): Promise<T> {
  return await sql.begin(async (tx) => {
    try {
      if (settings.statementTimeoutMs !== undefined) await tx`select 1${localTimeout(tx, settings)}`
      return await work(tx)
    } catch (error) {
      if (isConnectionLost(error)) return await new Promise<never>(() => {})
      throw error
    }
  }) as T
}
