// The heartbeat as the routes see it: one read gives a HeartbeatReading, with "unreachable" as a value rather
// than an exception, because an unreachable database is a verdict (unknown), not a crash.
import type { Sql } from 'postgres'
import type { HeartbeatReading } from '../domain/liveness.js'
import { DatabaseTimeoutError, isDatabaseUnavailable, withDeadline } from './errors.js'
import type { HeartbeatChanges } from '../domain/patch.js'
import { readHeartbeat, updateHeartbeat, type DbIdentity, type HeartbeatChange, type HeartbeatSnapshot, type LockedHeartbeat } from './heartbeat.js'
import { isConnectionLost } from './transaction.js'

export class HeartbeatStore {
  /** False once /readyz finds the policies differ from the mirror (the fast paths then stay off). */
  policiesAsMirrored = true

  /**
   * `readAttempts`: how many times a read is tried when its connection turns out to be gone; the pool size plus one
   * outlasts a pool whose every connection was killed at once (each dead one fails one try, then reconnects).
   */
  constructor (readonly sql: Sql, private readonly deadlineMs: number, private readonly readAttempts = 1) {}

  /**
   * One read, tried again (within the same deadline, `readAttempts` times in all) when it found its connection gone:
   * a read is idempotent, and connections killed between two requests (pg_terminate_backend, a restart, a pooler)
   * can be found dead only when used. Writes are never tried again.
   */
  async read (who: DbIdentity): Promise<HeartbeatReading> {
    try {
      const { row, now } = await this.deadline(async (signal): Promise<HeartbeatSnapshot> => {
        for (let attempt = 1; ; attempt++) {
          try {
            return await readHeartbeat(this.sql, who, signal)
          } catch (error) {
            if (attempt >= this.readAttempts || !isConnectionLost(error) || signal.aborted) throw error
          }
        }
      })
      return { reachable: true, row, now }
    } catch (error) {
      if (isDatabaseUnavailable(error)) return { reachable: false, checkedAt: new Date() }
      throw error
    }
  }

  /**
   * One change of the operator's fields (see updateHeartbeat): null when there is no row. An unavailable database
   * throws as it is (the routes answer 503). When the deadline fires first, the change is abandoned: it is not
   * written if it has not locked the row by then (only a deadline that fires during the UPDATE or the COMMIT
   * itself, a few milliseconds, can leave a 503 whose change was written; a change sets absolute values, so
   * sending it again is safe).
   */
  async update (who: DbIdentity, changes: HeartbeatChanges, precondition?: (current: LockedHeartbeat) => void): Promise<HeartbeatChange | null> {
    return await this.deadline(async (signal) => await updateHeartbeat(this.sql, who, changes, precondition, signal))
  }

  /**
   * `work` within the deadline. Once the caller has been told it failed (by the deadline's 503, or the work's own
   * error) the signal is aborted, so that work still queued for a connection, or still waiting for a lock, stops
   * instead of running (and committing) afterwards.
   */
  private async deadline<T> (work: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const controller = new AbortController()
    try {
      return await withDeadline(work(controller.signal), this.deadlineMs)
    } catch (error) {
      controller.abort(new DatabaseTimeoutError(`abandoned after ${this.deadlineMs} ms`))
      throw error
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
