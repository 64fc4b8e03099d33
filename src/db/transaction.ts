// sql.begin, safe when the connection dies inside the transaction, and the only way the API's pool sends anything.
//
// Every statement of the API's pool runs inside sql.begin, its statements awaited one by one. postgres.js pipelines a
// statement sent outside a transaction onto a connection that is still busy with another one; a transaction pooler
// (PgBouncer, Supavisor in transaction mode) hands the server connection back at the first "idle" ReadyForQuery, so
// the second statement's answer arrives for a client no longer linked to it ("server got dirty"), or at another
// client. A connection inside a transaction is never given another statement by postgres.js, and a pooler keeps it
// linked until the transaction ends.
//
// postgres.js 3.4.9 (the latest release) answers an error inside sql.begin by sending ROLLBACK on the transaction's
// connection. When the error is that the connection itself is gone (the backend terminated with pg_terminate_backend,
// the server stopped or restarted, a pooler dropped it), that ROLLBACK is written to a socket the driver has already
// set to null, from a setImmediate: an uncaught TypeError ("Cannot read properties of null (reading 'write')") that
// no caller can catch, and which ends the process. Upstream: porsager/postgres issues #1066, #1154 and #1208 (open).
// test/faults/terminate.test.ts kills the API's backends mid-transaction and fails on that crash.
//
// The server ends a transaction with its connection, so there is nothing to roll back: when the work fails because
// the connection is lost, the callback never settles, the driver sends nothing more on that connection, and begin()
// rejects by itself through its own close handler (CONNECTION_CLOSED), which callers treat as "database unavailable".
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
