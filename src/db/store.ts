// The heartbeat as the routes see it: one read gives a HeartbeatReading, with "unreachable" as a value rather
// than an exception, because an unreachable database is a verdict (unknown), not a crash.
import type { Sql } from 'postgres'
import type { HeartbeatReading } from '../domain/liveness.js'
import { comparePolicies, type ApiRole } from '../domain/policies.js'
import { readCatalogPolicies } from './catalog.js'
import { isDatabaseUnavailable, withDeadline } from './errors.js'
import type { DbIdentity, HeartbeatSnapshot } from './heartbeat.js'
import { InFlight } from './in-flight.js'
import { readHeartbeatPipelined } from './pipelined-read.js'

export class HeartbeatStore {
  /**
   * Whether the table's policies are the mirror's (both `USING (true)`): only then may concurrent readers of one role
   * share a read, whatever their claims. False until a check has shown it; set by checkPolicies() (at start and
   * periodically, see plugins/db.ts) and by /readyz.
   */
  policiesAsMirrored = false

  private readonly reads = new InFlight<ApiRole, HeartbeatSnapshot>()

  constructor (readonly sql: Sql, private readonly deadlineMs: number) {}

  async read (who: DbIdentity): Promise<HeartbeatReading> {
    try {
      const work = async (): Promise<HeartbeatSnapshot> => await withDeadline(readHeartbeatPipelined(this.sql, who), this.deadlineMs)
      // Shared by role: the role decides what RLS lets through; the claims do not while both policies are USING (true).
      const { row, now } = this.policiesAsMirrored ? await this.reads.run(who.role, work) : await work()
      return { reachable: true, row, now }
    } catch (error) {
      if (isDatabaseUnavailable(error)) return { reachable: false, checkedAt: new Date() }
      throw error
    }
  }

  /** After a write through this process: the next read starts after it, so it sees the write. */
  forgetReadsInFlight (): void {
    this.reads.forget()
  }

  /** Compares pg_policies with the mirror and sets policiesAsMirrored; an unavailable database leaves it as it was. */
  async checkPolicies (): Promise<void> {
    try {
      this.policiesAsMirrored = comparePolicies(await withDeadline(readCatalogPolicies(this.sql), this.deadlineMs)).length === 0
    } catch (error) {
      if (!isDatabaseUnavailable(error)) throw error
    }
  }

  /** Whether the database answers at all, as the login role, without touching the table. */
  async ping (): Promise<boolean> {
    try {
      await withDeadline(this.sql`select 1`, this.deadlineMs)
      return true
    } catch (error) {
      if (isDatabaseUnavailable(error)) return false
      throw error
    }
  }
}
