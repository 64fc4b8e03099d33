// The heartbeat as the routes see it: one read gives a HeartbeatReading, with "unreachable" as a value rather
// than an exception, because an unreachable database is a verdict (unknown), not a crash.
import type { Sql } from 'postgres'
import type { HeartbeatReading } from '../domain/liveness.js'
import { isDatabaseUnavailable, withDeadline } from './errors.js'
import type { HeartbeatChanges } from '../domain/patch.js'
import { readHeartbeat, updateHeartbeat, type DbIdentity, type HeartbeatChange, type LockedHeartbeat } from './heartbeat.js'

export class HeartbeatStore {
  /** False once /readyz finds the policies differ from the mirror (the fast paths then stay off). */
  policiesAsMirrored = true

  constructor (readonly sql: Sql, private readonly deadlineMs: number) {}

  async read (who: DbIdentity): Promise<HeartbeatReading> {
    try {
      const { row, now } = await withDeadline(readHeartbeat(this.sql, who), this.deadlineMs)
      return { reachable: true, row, now }
    } catch (error) {
      if (isDatabaseUnavailable(error)) return { reachable: false, checkedAt: new Date() }
      throw error
    }
  }

  /**
   * One change of the operator's fields (see updateHeartbeat): null when there is no row. An unavailable database
   * throws as it is (the routes answer 503). When only the deadline fires the transaction may still commit later;
   * a change sets absolute values, so sending it again is safe.
   */
  async update (who: DbIdentity, changes: HeartbeatChanges, precondition?: (current: LockedHeartbeat) => void): Promise<HeartbeatChange | null> {
    return await withDeadline(updateHeartbeat(this.sql, who, changes, precondition), this.deadlineMs)
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
