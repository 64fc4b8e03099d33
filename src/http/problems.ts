// RFC 9457 problem details: every error the API answers is one of these, with a stable `code`.
import type { Static } from '@sinclair/typebox'
import type { ProblemSchema } from './schemas.js'

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
