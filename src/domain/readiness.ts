// What /readyz answers, as data: each named check passes or fails, the whole passes only when every check does, and
// a check's `output` (policy expressions, drift, table problems) is a detail only some callers may see.
import type { Static } from '@sinclair/typebox'
import type { CheckSchema, ReadinessSchema } from './schemas.js'

export type Readiness = Static<typeof ReadinessSchema>
export type ReadinessChecks = Readiness['checks']
/** A pass-or-fail check; `writes` may also warn (a read-only database: every read is served, so the API stays ready). */
export type Check = Static<typeof CheckSchema>

/**
 * The role whose callers see each check's `output`. Policy expressions can carry business rules (claims, user ids),
 * and `authenticated` tokens may be anyone's (anonymous sign-ins), so only the service's operators see them.
 */
export const DETAILS_ROLE = 'service_role'

/** A check from the problems it found: pass when there are none, else fail with them as its output. */
export function checkOf (problems: readonly string[]): Check {
  return problems.length === 0 ? { status: 'pass' } : { status: 'fail', output: problems.join('; ') }
}

export function readinessOf (checks: ReadinessChecks): Readiness {
  const ready = Object.values(checks).every((check) => check.status !== 'fail')
  return { status: ready ? 'pass' : 'fail', checks }
}

/** The database did not answer: the other checks did not run, and say so. */
export function unavailableReadiness (): Readiness {
  const skipped: Check = { status: 'fail', output: 'not checked: the database is unavailable' }
  return readinessOf({
    database: { status: 'fail', output: 'the database did not answer in time or refused the connection' },
    table: skipped,
    policies: skipped,
    writes: skipped
  })
}

/** The answer for callers without DETAILS_ROLE: the overall status and each check's name and status, nothing else. */
export function withoutDetails (readiness: Readiness): Readiness {
  const checks = Object.fromEntries(Object.entries(readiness.checks).map(([name, check]) => [name, { status: check.status }]))
  return { status: readiness.status, checks: checks as unknown as ReadinessChecks }
}
