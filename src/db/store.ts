// The heartbeat as the routes see it: one read gives a HeartbeatReading, with "unreachable" as a value rather
// than an exception, because an unreachable database is a verdict (unknown), not a crash.
import type { Sql } from 'postgres'
import type { HeartbeatReading } from '../domain/liveness.js'
import { DatabaseTimeoutError, DEADLINE_MARGIN_MS, callDeadlineMs, isDatabaseUnavailable, withDeadline } from './errors.js'
import type { HeartbeatChanges } from '../domain/patch.js'
import { readHeartbeat, updateHeartbeat, type DbIdentity, type HeartbeatChange, type HeartbeatSnapshot, type LockedHeartbeat } from './heartbeat.js'
import { NextRead } from './in-flight.js'
import { isConnectionLost } from './transaction.js'

export interface StoreSettings {
  /** The server's statement_timeout, set in each transaction; the store's own deadline is callDeadlineMs (errors.ts). */
  statementTimeoutMs: number
  /**
   * How many times a read is tried when its connection turns out to be gone; the pool size plus one outlasts a pool
   * whose every connection was killed at once (each dead one fails one try, then reconnects).
   */
  readAttempts?: number
}

export class HeartbeatStore {
  /**
   * Reads shared by callers of one role and the same claims, only with callers that arrived before the read started
   * (see in-flight.ts): RLS can tell any two other callers apart, and a read never answers for older writes.
   */
  private readonly reads = new NextRead<HeartbeatSnapshot>()
  private readonly deadlineMs: number
  private readonly readAttempts: number

  constructor (readonly sql: Sql, private readonly settings: StoreSettings) {
    this.deadlineMs = callDeadlineMs(settings.statementTimeoutMs)
    this.readAttempts = settings.readAttempts ?? 1
  }

  async read (who: DbIdentity): Promise<HeartbeatReading> {
    try {
      const { row, now } = await this.reads.run(`${who.role}\n${JSON.stringify(who.claims)}`, async (since) => await this.readAs(who, since))
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
    return await this.deadline(this.deadlineMs, async (signal) =>
      await updateHeartbeat(this.sql, who, changes, precondition, { signal, statementTimeoutMs: this.settings.statementTimeoutMs }))
  }

  /**
   * One read, tried again (within the same deadline, `readAttempts` times in all) when it found its connection gone:
   * a read is idempotent, and connections killed between two requests (pg_terminate_backend, a restart, a pooler)
   * can be found dead only when used. Writes are never tried again. The deadline counts from `since`, when the read's
   * first caller arrived: one that waited for a read running before it still gets its answer (or 503) in time.
   */
  private async readAs (who: DbIdentity, since: number): Promise<HeartbeatSnapshot> {
    const left = Math.floor(this.deadlineMs - (performance.now() - since))
    if (left <= 0) throw new DatabaseTimeoutError(`no time left for a read within ${this.deadlineMs} ms`)
    // The server's own timeout ends the read before the deadline, so that the next read is not sent while it still runs.
    const statementTimeoutMs = Math.max(1, Math.min(this.settings.statementTimeoutMs, left - DEADLINE_MARGIN_MS))
    return await this.deadline(left, async (signal) => {
      for (let attempt = 1; ; attempt++) {
        try {
          return await readHeartbeat(this.sql, who, { signal, statementTimeoutMs })
        } catch (error) {
          if (attempt >= this.readAttempts || !isConnectionLost(error) || signal.aborted) throw error
        }
      }
    })
  }

  /**
   * `work` within the deadline. Once the caller has been told it failed (by the deadline's 503, or the work's own
   * error) the signal is aborted, so that work still queued for a connection, or still waiting for a lock, stops
   * instead of running (and committing) afterwards.
   */
  private async deadline<T> (ms: number, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const controller = new AbortController()
    try {
      return await withDeadline(work(controller.signal), ms)
    } catch (error) {
      controller.abort(new DatabaseTimeoutError(`abandoned after ${ms} ms`))
      throw error
    }
  }
}
