// The readiness check and its sharing: concurrent /readyz callers wait for one check, and a result is reused for
// READINESS_REUSE_MS, so that however many probes arrive, the database sees about one catalog check a second.
import type { Sql } from 'postgres'
import { readinessOf, checkOf, unavailableReadiness, type Readiness } from '../domain/readiness.js'
import { writesImpossible } from '../domain/read-only.js'
import { checkSchema } from './catalog.js'
import { callDeadlineMs, isDatabaseUnavailable, withDeadline } from './errors.js'

/** How long a readiness result is reused, counted from the moment its check started. */
export const READINESS_REUSE_MS = 1000

/**
 * Runs the database's checks. A database that does not answer is a failed readiness, not an error; anything else
 * thrown is a bug and reaches the caller.
 */
export async function checkReadiness (sql: Sql, { statementTimeoutMs }: { statementTimeoutMs: number }): Promise<Readiness> {
  let report
  try {
    report = await withDeadline(checkSchema(sql, { statementTimeoutMs }), callDeadlineMs(statementTimeoutMs))
  } catch (error) {
    if (!isDatabaseUnavailable(error)) throw error
    return unavailableReadiness()
  }
  const writes = report.readOnly === undefined ? { status: 'pass' as const } : { status: 'warn' as const, output: writesImpossible(report.readOnly) }
  return readinessOf({ database: { status: 'pass' }, table: checkOf(report.table), policies: checkOf(report.policies), writes })
}

/**
 * One piece of work shared by its callers: those arriving while it runs wait for it, and its result is served to
 * later callers until `reuseMs` after the moment it started (so a slow check is served only to those who waited for
 * it, and no result older than `reuseMs` is served). A failure is reused exactly as a success is; a throw is not kept.
 */
export class SharedResult<V> {
  private running: Promise<V> | undefined
  private last: { startedAt: number, value: V } | undefined

  constructor (
    private readonly work: () => Promise<V>,
    private readonly reuseMs: number,
    private readonly now: () => number = () => performance.now()
  ) {}

  async get (): Promise<V> {
    if (this.last !== undefined && this.now() - this.last.startedAt < this.reuseMs) return this.last.value
    if (this.running !== undefined) return await this.running
    const startedAt = this.now()
    const running: Promise<V> = this.work().then((value) => {
      this.last = { startedAt, value }
      return value
    }).finally(() => {
      if (this.running === running) this.running = undefined
    })
    this.running = running
    return await running
  }
}
