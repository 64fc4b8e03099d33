// Which database failures mean "the database is unavailable" (503, retry later) rather than a bug (500).

export class DatabaseTimeoutError extends Error {
  override name = 'DatabaseTimeoutError'
  readonly code = 'DATABASE_TIMEOUT'
}

const CLIENT_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH',
  'CONNECTION_CLOSED', 'CONNECTION_ENDED', 'CONNECTION_DESTROYED', 'CONNECT_TIMEOUT', 'DATABASE_TIMEOUT'
])
// SQLSTATEs that mean the heartbeat cannot be read now: connection, resources, timeout or cancel, shutdown, locks,
// serialization, a refused login or database, a missing table, column or privilege (/readyz says which). For the
// caller each is an outage to retry (503), never a crash of ours (500).
const SERVER_STATES = /^(08|53|28)|^57014$|^57P0[1-5]$|^55P03$|^40001$|^40P01$|^3D000$|^42P01$|^42703$|^42501$/

/**
 * SQLSTATE 25006 read_only_sql_transaction: the database refuses writes (a hot standby, or default_transaction_read_only
 * on). Not an outage: retrying never helps until DATABASE_URL points at a primary.
 */
export function isDatabaseReadOnly (error: unknown): boolean {
  return typeof error === 'object' && error !== null && (error as { code?: unknown }).code === '25006'
}

export function isDatabaseUnavailable (error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false
  const code = (error as { code?: unknown }).code
  if (typeof code !== 'string') return false
  return CLIENT_CODES.has(code) || SERVER_STATES.test(code)
}

/** How much longer the client waits than the server's statement timeout, so that the server's cancellation normally wins. */
export const DEADLINE_MARGIN_MS = 500

export const callDeadlineMs = (statementTimeoutMs: number): number => statementTimeoutMs + DEADLINE_MARGIN_MS

/** The server's statement_timeout covers slow queries; this covers a server that stopped answering at all. */
export async function withDeadline<T> (work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const deadline = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new DatabaseTimeoutError(`no answer from the database within ${ms} ms`)), ms)
  })
  try {
    return await Promise.race([work, deadline])
  } finally {
    clearTimeout(timer)
  }
}
