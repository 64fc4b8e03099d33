// RFC 9457 problem details: every error the API answers is one of these, with a stable `code`.
import type { Static } from '@sinclair/typebox'
import type { ProblemSchema } from './schemas.js'
import type { AuthRejection } from '../auth/rejection.js'

export const PROBLEM_TYPE_BASE = 'urn:eva-heartbeat-api:problem:'

export type Problem = Static<typeof ProblemSchema>

export class ProblemError extends Error {
  override name = 'ProblemError'
  constructor (
    readonly status: number,
    readonly code: string,
    readonly title: string,
    readonly detail: string,
    readonly headers: Readonly<Record<string, string>> = {}
  ) {
    super(detail)
  }

  toProblem (): Problem {
    return { type: PROBLEM_TYPE_BASE + this.code, title: this.title, status: this.status, detail: this.detail, code: this.code }
  }
}

export const databaseUnavailable = (): ProblemError =>
  new ProblemError(503, 'database_unavailable', 'Database unavailable',
    'The database did not answer in time or refused the connection; try again shortly.', { 'retry-after': '5' })

// No Retry-After: the same request fails the same way until the configuration changes.
export const databaseReadOnly = (): ProblemError =>
  new ProblemError(503, 'database_read_only', 'Database is read-only',
    'The database at DATABASE_URL is read-only (a hot standby or read replica, or default_transaction_read_only is on): ' +
    'nothing was written. Point DATABASE_URL at the primary to change the heartbeat.')

export const heartbeatNotFound = (): ProblemError =>
  new ProblemError(404, 'heartbeat_not_found', 'No heartbeat row',
    'The table eva_scheduler_heartbeat has no row with id 1: the scheduler has never written one.')

const REALM = 'eva-heartbeat-api'

function quoteSafe (text: string): string {
  return text.replace(/[^\x20-\x21\x23-\x5B\x5D-\x7E]/g, '')
}

/** The challenge RFC 6750 asks for: `error` only when a credential was sent. */
const challenge = (error?: 'invalid_token' | 'insufficient_scope', detail?: string): string =>
  error === undefined ? `Bearer realm="${REALM}"` : `Bearer realm="${REALM}", error="${error}", error_description="${quoteSafe(detail ?? '')}"`

/** The answer to a refused credential: 401 with a challenge, 403 insufficient_scope, or 503 while the keys are unavailable. */
export function authProblem ({ kind, code, detail }: AuthRejection): ProblemError {
  switch (kind) {
    case 'missing_credential': return new ProblemError(401, code, 'Unauthorized', detail, { 'www-authenticate': challenge() })
    case 'invalid_credential': return new ProblemError(401, code, 'Unauthorized', detail, { 'www-authenticate': challenge('invalid_token', detail) })
    case 'forbidden': return new ProblemError(403, code, 'Forbidden', detail, { 'www-authenticate': challenge('insufficient_scope', detail) })
    // No challenge: the token may be good; the same request succeeds once the keys can be had.
    case 'keys_unavailable': return new ProblemError(503, code, 'Signing keys unavailable', detail, { 'retry-after': '5' })
  }
}
