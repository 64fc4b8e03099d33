// What /readyz answers, as data: each named check passes or fails, the whole passes only when every check does, and
// a check's `output` (policy expressions, drift, table problems) is a detail only some callers may see.

export type CheckStatus = 'pass' | 'warn' | 'fail'
export interface Check { status: CheckStatus, output?: string }

/** One entry per check; a new check is one more key here, in the route's schema and in db/readiness.ts. */
/** `writes` warns on a read-only database (a read replica): every read is served, so the API stays ready. */
export interface ReadinessChecks { database: Check, table: Check, policies: Check, writes: Check }
export interface Readiness { status: 'pass' | 'fail', checks: ReadinessChecks }

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
  const ready = Object.values(checks).every((check: Check) => check.status !== 'fail')
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
  const checks = Object.fromEntries(Object.entries(readiness.checks).map(([name, check]: [string, Check]) => [name, { status: check.status }]))
  return { status: readiness.status, checks: checks as unknown as ReadinessChecks }
}
