// The heartbeat queries: each in a transaction that first takes the caller's role and claims (as PostgREST does),
// so the table's RLS policies decide again. Everything is set local to the transaction and timestamps are read as
// epoch numbers: nothing depends on session state, DateStyle or TimeZone a pooler or the server may have set.
import type { Sql, TransactionSql } from 'postgres'
import type { HeartbeatRow } from '../domain/heartbeat.js'
import { WRITABLE_FIELDS, type HeartbeatChanges } from '../domain/patch.js'
import type { ApiRole } from '../domain/policies.js'
import { localTimeout, transaction, type LocalSettings } from './transaction.js'

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

export interface TransactionOptions extends LocalSettings {
  /** Aborted once the caller has been answered (see HeartbeatStore): work that has not started yet sends nothing. */
  signal?: AbortSignal
}

/** A row as the queries below return it: timestamps as milliseconds since the epoch. */
type Wire<T> = { [K in keyof T]: T[K] extends Date ? number : T[K] extends Date | null ? number | null : T[K] }
type WireRow = Wire<HeartbeatRow>

const dateOf = (ms: number | null): Date | null => ms === null ? null : new Date(ms)

function fromWire (row: WireRow): HeartbeatRow {
  return {
    ...row,
    started_at: new Date(row.started_at),
    last_poll_at: dateOf(row.last_poll_at),
    next_poll_at: dateOf(row.next_poll_at),
    updated_at: new Date(row.updated_at)
  }
}

/** A timestamptz expression as milliseconds since the epoch (floor: as the text form's Date, to the millisecond). */
const epochMsText = (expression: string): string => `floor(extract(epoch from ${expression}) * 1000)::float8`

/** The 13 columns of `h`, timestamps as epochMsText: the text the read and the writes share. */
const ROW_COLUMNS = `h.id, h.instance_id, h.poll_count, h.dispatch_count, h.error_count, h.circuit_breaker_state,
    h.paused_reason, h.status, h.metadata,
    ${epochMsText('h.started_at')} as started_at, ${epochMsText('h.last_poll_at')} as last_poll_at,
    ${epochMsText('h.next_poll_at')} as next_poll_at, ${epochMsText('h.updated_at')} as updated_at`

/** now() always, the row when there is one (and RLS lets the role see it); no parameters. */
const SELECT_HEARTBEAT = `select ${epochMsText('now()')} as db_now, h.id is not null as found, ${ROW_COLUMNS}
    from (select 1) as one left join public.eva_scheduler_heartbeat h on h.id = 1`

/** `work` in one transaction as `who`, its statements awaited one by one: nothing a pooler could split. */
export async function asRole<T> (sql: Sql, who: DbIdentity, work: (tx: TransactionSql) => Promise<T>, options: TransactionOptions = {}): Promise<T> {
  // The timeout goes in the role's statement (one round trip), not through transaction()'s own first statement.
  // extra_float_digits: epochMsText is a float8, whose text drops digits when the setting (server, database or role)
  // is -3 or less; any value from 0 up prints a 13-digit integer exactly. Values travel as parameters, never as text.
  return await transaction(sql, async (tx) => {
    options.signal?.throwIfAborted()
    await tx`select set_config('role', ${who.role}, true), set_config('request.jwt.claims', ${JSON.stringify(who.claims)}, true),
      set_config('extra_float_digits', '3', true)${localTimeout(tx, options)}`
    return await work(tx)
  })
}

type SnapshotRow = WireRow & { db_now: number, found: boolean }

/** One statement, in the caller's transaction: now() always, the row when there is one. */
export async function selectHeartbeat (tx: TransactionSql): Promise<HeartbeatSnapshot> {
  const [first] = await tx.unsafe<SnapshotRow[]>(SELECT_HEARTBEAT)
  if (first === undefined) throw new Error('the heartbeat query returned no row at all')
  const { db_now: now, found, ...row } = first
  return { row: found ? fromWire(row) : null, now: new Date(now) }
}

/**
 * The row as `who` sees it: one transaction (BEGIN, the role, the claims and the settings as parameters, the select,
 * COMMIT), its statements awaited one by one, as every statement of the pool (see transaction.ts).
 */
export async function readHeartbeat (sql: Sql, who: DbIdentity, options: TransactionOptions = {}): Promise<HeartbeatSnapshot> {
  return await asRole(sql, who, selectHeartbeat, options)
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

type LockedRow = WireRow & { db_now: number }

function splitNow (row: LockedRow): LockedHeartbeat {
  const { db_now: now, ...rest } = row
  return { row: fromWire(rest), now: new Date(now) }
}

/**
 * One atomic change of the operator's fields, in one transaction as `who`: lock the row, let `precondition` look at
 * it (it throws to refuse, e.g. a stale If-Match), then `update … set <changes>, updated_at = statement_timestamp()`
 * (the database's clock once the lock is held, so updated_at follows the order in which changes commit).
 * Only the writable columns of `changes` are ever written. Null when there is no row (or the role cannot even see it);
 * UpdateRefusedError when the database lets the role see the row but not change it.
 */
export async function updateHeartbeat (
  sql: Sql,
  who: DbIdentity,
  changes: HeartbeatChanges,
  precondition: (current: LockedHeartbeat) => void = () => {},
  options: TransactionOptions = {}
): Promise<HeartbeatChange | null> {
  const columns = WRITABLE_FIELDS.filter((field) => Object.hasOwn(changes, field))
  if (columns.length === 0) throw new TypeError('updateHeartbeat needs at least one writable field')
  try {
    return await asRole(sql, who, async (tx) => {
      const [locked] = await tx<LockedRow[]>`
        select ${tx.unsafe(epochMsText('now()'))} as db_now, ${tx.unsafe(ROW_COLUMNS)} from public.eva_scheduler_heartbeat h where h.id = 1 for update`
      if (locked === undefined) {
        // FOR UPDATE sees only rows the role's UPDATE policies admit: a row it can read but not lock is a refusal.
        const { row } = await selectHeartbeat(tx)
        if (row === null) return null
        throw new UpdateRefusedError(who.role, 'no row-level security policy lets it update the row')
      }
      const before = splitNow(locked)
      // The lock may have been granted after the caller was answered 503: then nothing is written.
      options.signal?.throwIfAborted()
      precondition(before)
      // statement_timestamp(), not now(): now() is when the transaction began, before it queued for the row lock, so
      // concurrent changes committed in one order would carry updated_at in another and the row's updated_at (and
      // Last-Modified) could go back in time. This statement starts once the lock is held: after the previous change committed.
      const [updated] = await tx<LockedRow[]>`
        update public.eva_scheduler_heartbeat h set ${tx(changes, ...columns)}, updated_at = statement_timestamp()
        where h.id = 1 returning ${tx.unsafe(epochMsText('statement_timestamp()'))} as db_now, ${tx.unsafe(ROW_COLUMNS)}`
      if (updated === undefined) throw new UpdateRefusedError(who.role, 'the update changed no row')
      const after = splitNow(updated)
      return { before: before.row, after: after.row, now: after.now }
    }, options)
  } catch (error) {
    if ((error as { code?: unknown }).code === INSUFFICIENT_PRIVILEGE) {
      throw new UpdateRefusedError(who.role, 'permission denied', { cause: error })
    }
    throw error
  }
}
