// The heartbeat as the routes see it: one read gives a HeartbeatReading, with "unreachable" as a value rather
// than an exception, because an unreachable database is a verdict (unknown), not a crash.
import type { Sql } from 'postgres'
import type { HeartbeatReading } from '../domain/liveness.js'
import type { ApiRole } from '../domain/policies.js'
import { DatabaseTimeoutError, isDatabaseUnavailable, withDeadline } from './errors.js'
import type { HeartbeatChanges } from '../domain/patch.js'
import { readHeartbeat, updateHeartbeat, type DbIdentity, type HeartbeatChange, type LockedHeartbeat } from './heartbeat.js'
import { InFlight } from './in-flight.js'
import { readPolicyVersion, type PolicyCheck } from './policy-version.js'
import { isConnectionLost } from './transaction.js'

interface SharedRead {
  /**
   * Made once per read and handed as it is to every caller that shares the read: the routes derive the verdict once
   * per reading object (a WeakMap keyed on it), which a new object per caller would defeat.
   */
  reading: HeartbeatReading & { reachable: true }
  /** The policies were the mirror's (both USING (true)) in the very statement that read the row. */
  mirrored: boolean
  /** Whose role and claims the read was made with. */
  who: DbIdentity
}

export interface StoreSettings {
  /** The server's statement_timeout, set in each transaction; the store's own deadline is 500 ms more. */
  statementTimeoutMs: number
  /**
   * How many times a read is tried when its connection turns out to be gone; the pool size plus one outlasts a pool
   * whose every connection was killed at once (each dead one fails one try, then reconnects).
   */
  readAttempts?: number
}

export class HeartbeatStore {
  /**
   * The last comparison of the table's policies with the mirror, and the version stamp (see policy-version.ts) it
   * was made at: the one thing that decides whether reads are shared. Concurrent readers of one role share one read
   * only while the policies are the mirror's (both USING (true): the claims cannot change what RLS lets through),
   * and a shared read serves its other callers only when it was made at this very version. A read that finds any
   * other version sends the store to compare again.
   */
  private policies: PolicyCheck | undefined
  private recheck: Promise<void> | undefined
  private readonly reads = new InFlight<ApiRole, SharedRead>()
  private readonly deadlineMs: number
  private readonly readAttempts: number

  constructor (readonly sql: Sql, private readonly settings: StoreSettings) {
    // A little over the server's statement timeout, so that the server's own cancellation normally wins.
    this.deadlineMs = settings.statementTimeoutMs + 500
    this.readAttempts = settings.readAttempts ?? 1
  }

  /** Whether reads are shared now: the policies were the mirror's at the last comparison. */
  get policiesAsMirrored (): boolean {
    return this.policies?.asMirrored === true
  }

  async read (who: DbIdentity): Promise<HeartbeatReading> {
    try {
      return await this.snapshot(who)
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
    let change: Promise<HeartbeatChange | null> | undefined
    let settled = false
    try {
      return await this.deadline(async (signal) => {
        change = updateHeartbeat(this.sql, who, changes, precondition, { signal, statementTimeoutMs: this.settings.statementTimeoutMs })
        return await change.finally(() => { settled = true })
      })
    } finally {
      // A read in flight may have started before this write: reads asked for from now on start after it.
      this.reads.forget()
      // Abandoned at the deadline, the change may still commit (its UPDATE or COMMIT was already sent): a read started
      // in between could then serve the row from before it to callers who come after. Forget again once it settles.
      if (!settled) void change?.then(() => { this.reads.forget() }, () => { this.reads.forget() })
    }
  }

  private async snapshot (who: DbIdentity): Promise<SharedRead['reading']> {
    if (this.policiesAsMirrored) {
      const shared = await this.reads.run(who.role, async () => {
        // Sent on the next turn of the event loop, so that the requests that arrived in this turn share it too.
        await new Promise((resolve) => setImmediate(resolve))
        return await this.readAs(who)
      })
      if (shared.mirrored || shared.who === who) return shared.reading
      // Made with another caller's claims while the policies were not the mirror's: this caller reads for itself.
    }
    return (await this.readAs(who)).reading
  }

  /**
   * One read, tried again (within the same deadline, `readAttempts` times in all) when it found its connection gone:
   * a read is idempotent, and connections killed between two requests (pg_terminate_backend, a restart, a pooler)
   * can be found dead only when used. Writes are never tried again.
   */
  private async readAs (who: DbIdentity): Promise<SharedRead> {
    const { policyVersion, row, now } = await this.deadline(async (signal) => {
      for (let attempt = 1; ; attempt++) {
        try {
          return await readHeartbeat(this.sql, who, { signal, statementTimeoutMs: this.settings.statementTimeoutMs })
        } catch (error) {
          if (attempt >= this.readAttempts || !isConnectionLost(error) || signal.aborted) throw error
        }
      }
    })
    if (policyVersion !== this.policies?.version) void this.checkPolicies()
    const mirrored = policyVersion === this.policies?.version && this.policies.asMirrored
    return { reading: { reachable: true, row, now }, mirrored, who }
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

  /**
   * Compares the policies with the mirror again (one comparison at a time). Reads start it whenever they find a
   * policy version other than the one last compared, and the app once it is ready. Never rejects.
   */
  async checkPolicies (): Promise<void> {
    this.recheck ??= withDeadline(readPolicyVersion(this.sql, { statementTimeoutMs: this.settings.statementTimeoutMs }), this.deadlineMs)
      .then((check) => { this.policies = check }, () => {
        // Unreadable now (the database is down): the next read that finds a version it does not know asks again.
      })
      .finally(() => { this.recheck = undefined })
    await this.recheck
  }
}
