// The heartbeat queries. Every one runs in a transaction that first takes the caller's role and claims, as
// PostgREST does, so the table's real RLS policies decide a second time what the API already decided.
import type { Sql, TransactionSql } from 'postgres'
import type { HeartbeatRow } from '../domain/heartbeat.js'
import { WRITABLE_FIELDS, type HeartbeatChanges } from '../domain/patch.js'
import type { ApiRole } from '../domain/policies.js'
import { transaction } from './transaction.js'

export interface DbIdentity {
  role: ApiRole
  /** The verified JWT claims, visible to policies as current_setting('request.jwt.claims'). */
  claims: Readonly<Record<string, unknown>>
}

export interface HeartbeatSnapshot {
  row: HeartbeatRow | null
  /** The database's now(), read in the same statement as the row. */
  now: Date
}

type DbRow = HeartbeatRow & { db_now: Date, found: boolean }

/**
 * `work` in one transaction as `who`. An aborted `signal` (the caller has been answered already, see HeartbeatStore)
 * stops it before its first statement: work that waited for a connection past its deadline sends nothing.
 */
export async function asRole<T> (sql: Sql, who: DbIdentity, work: (tx: TransactionSql) => Promise<T>, signal?: AbortSignal): Promise<T> {
  return await transaction(sql, async (tx) => {
    signal?.throwIfAborted()
    await tx`select set_config('role', ${who.role}, true), set_config('request.jwt.claims', ${JSON.stringify(who.claims)}, true)`
    return await work(tx)
  })
}

function toSnapshot (rows: readonly DbRow[]): HeartbeatSnapshot {
  const first = rows[0]
  if (first === undefined) throw new Error('the heartbeat query returned no row at all')
  const { db_now: now, found, ...row } = first
  return { row: found ? row : null, now }
}

/** One statement: now() always, the row when there is one (and RLS lets the role see it). */
export async function selectHeartbeat (tx: TransactionSql): Promise<HeartbeatSnapshot> {
  return toSnapshot(await tx<DbRow[]>`
    select now() as db_now, h.id is not null as found, h.*
    from (select 1) as one left join public.eva_scheduler_heartbeat h on h.id = 1`)
}

/** The row as locked for a change, and the database's now() in that transaction. */
export interface LockedHeartbeat { row: HeartbeatRow, now: Date }

/** What a change did: the row before and after, and the database's clock at the update (the new updated_at). */
export interface HeartbeatChange { before: HeartbeatRow, after: HeartbeatRow, now: Date }

/**
 * The database refused a change the API had allowed: its RLS policies (or privileges, or a trigger) did not let the
 * role lock or update the row. Never a silent success: the row is as it was.
 */
export class UpdateRefusedError extends Error {
  override name = 'UpdateRefusedError'
  constructor (readonly role: string, reason: string, options?: { cause: unknown }) {
    super(`the database refused role ${role} an update of the heartbeat row: ${reason}`, options)
  }
}

const INSUFFICIENT_PRIVILEGE = '42501'

type LockedRow = HeartbeatRow & { db_now: Date }

function splitNow (row: LockedRow): LockedHeartbeat {
  const { db_now: now, ...rest } = row
  return { row: rest, now }
}

/**
 * One atomic change of the operator's fields, in one transaction as `who`: lock the row, let `precondition` look at
 * it (it throws to refuse, e.g. a stale If-Match), then `update … set <changes>, updated_at = statement_timestamp() returning *`
 * (the database's clock once the lock is held, so updated_at follows the order in which changes commit).
 * Only the writable columns of `changes` are ever written. Null when there is no row (or the role cannot even see it);
 * UpdateRefusedError when the database lets the role see the row but not change it.
 */
export async function updateHeartbeat (
  sql: Sql,
  who: DbIdentity,
  changes: HeartbeatChanges,
  precondition: (current: LockedHeartbeat) => void = () => {},
  signal?: AbortSignal
): Promise<HeartbeatChange | null> {
  const columns = WRITABLE_FIELDS.filter((field) => Object.hasOwn(changes, field))
  if (columns.length === 0) throw new TypeError('updateHeartbeat needs at least one writable field')
  try {
    return await asRole(sql, who, async (tx) => {
      const [locked] = await tx<LockedRow[]>`
        select now() as db_now, h.* from public.eva_scheduler_heartbeat h where h.id = 1 for update`
      if (locked === undefined) {
        // FOR UPDATE sees only rows the role's UPDATE policies admit: a row it can read but not lock is a refusal.
        const { row } = await selectHeartbeat(tx)
        if (row === null) return null
        throw new UpdateRefusedError(who.role, 'no row-level security policy lets it update the row')
      }
      const before = splitNow(locked)
      // The lock may have been granted after the caller was answered 503: then nothing is written.
      signal?.throwIfAborted()
      precondition(before)
      // statement_timestamp(), not now(): now() is when the transaction began, before it queued for the row lock, so
      // concurrent changes committed in one order would carry updated_at in another and the row's updated_at (and
      // Last-Modified) could go back in time. This statement starts once the lock is held: after the previous change committed.
      const [updated] = await tx<LockedRow[]>`
        update public.eva_scheduler_heartbeat set ${tx(changes, ...columns)}, updated_at = statement_timestamp()
        where id = 1 returning statement_timestamp() as db_now, *`
      if (updated === undefined) throw new UpdateRefusedError(who.role, 'the update changed no row')
      const after = splitNow(updated)
      return { before: before.row, after: after.row, now: after.now }
    }, signal)
  } catch (error) {
    if ((error as { code?: unknown }).code === INSUFFICIENT_PRIVILEGE) {
      throw new UpdateRefusedError(who.role, 'permission denied', { cause: error })
    }
    throw error
  }
}
