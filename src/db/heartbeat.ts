// The heartbeat queries. Every one runs in a transaction that first takes the caller's role and claims, as
// PostgREST does, so the table's real RLS policies decide a second time what the API already decided.
//
// Nothing here depends on the session's state: the role, the claims, the statement timeout and extra_float_digits
// are set in each transaction, local to it (set_config(…, true)), and every timestamp is read as a number
// (milliseconds since the epoch) rather than as timestamptz's text, which follows DateStyle and TimeZone. Those can be
// set on the server, the database, the login role or by a pooler, and `SQL, DMY` would turn 2 December into
// 12 February (and the 13th into no date at all). A number reads the same under every setting, and through any
// pooler, which may hand the transaction a server connection that another client configured.
import type postgres from 'postgres'
import type { Sql, TransactionSql } from 'postgres'
import type { HeartbeatRow } from '../domain/heartbeat.js'
import { WRITABLE_FIELDS, type HeartbeatChanges } from '../domain/patch.js'
import type { ApiRole } from '../domain/policies.js'
import { POLICY_VERSION } from './policy-version.js'
import { localTimeout, transaction, type LocalSettings } from './transaction.js'

export interface DbIdentity {
  role: ApiRole
  /** The verified JWT claims, visible to policies as current_setting('request.jwt.claims'). */
  claims: Readonly<Record<string, unknown>>
  /**
   * The claims are the API's own constant (the public reader's), never a token's. Only then may they be written into a
   * statement's text (readHeartbeat's one message): the server logs a failed statement's text and pg_stat_activity
   * shows it, and a token's claims carry a user's email, phone and whatever user_metadata they typed. A token's
   * claims always travel as a parameter.
   */
  constantClaims?: boolean
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

/** now() and the policies' version always, the row when there is one (and RLS lets the role see it); no parameters. */
const SELECT_HEARTBEAT = `select ${epochMsText('now()')} as db_now, h.id is not null as found, ${POLICY_VERSION} as policy_version, ${ROW_COLUMNS}
    from (select 1) as one left join public.eva_scheduler_heartbeat h on h.id = 1`

/**
 * Text as an SQL string literal: E'…', backslashes and quotes doubled, so that standard_conforming_strings cannot
 * change it. Printable ASCII only: in a client encoding such as GBK or SJIS a non-ASCII character can end in a byte
 * the server reads as the first half of a two-byte character, swallowing the backslash after it. Only the API's own
 * constants are written this way (see DbIdentity.constantClaims); anything else is a bug and throws.
 */
export function sqlLiteral (text: string): string {
  if (!/^[\x20-\x7e]*$/.test(text)) throw new TypeError('an SQL literal here must be printable ASCII')
  return `E'${text.replaceAll('\\', '\\\\').replaceAll("'", "''")}'`
}

/**
 * The settings statement of readHeartbeat's one message, as text: the role and the (constant) claims, as PostgREST
 * sets them, and more. asRole sends the same settings with the claims as a parameter.
 */
export function roleSettings (who: DbIdentity, options: LocalSettings = {}): string {
  if (who.constantClaims !== true) throw new TypeError('a token\'s claims are never written into a statement\'s text')
  // extra_float_digits: epochMsText is a float8, whose text drops significant digits when the setting is -3 or less
  // (on the server, the database or the role, like DateStyle): at -3 times round to 10 ms, at -15 every time reads
  // 2e+12. Any value from 0 up prints a 13-digit integer exactly; set here, local to the transaction, it holds
  // through a pooler too. The statement timeout, when given, goes here too (one round trip, not one more statement).
  const timeout = options.statementTimeoutMs === undefined
    ? ''
    : `, set_config('statement_timeout', '${String(Math.trunc(options.statementTimeoutMs))}', true)`
  return `select set_config('role', ${sqlLiteral(who.role)}, true), set_config('request.jwt.claims', ${sqlLiteral(JSON.stringify(who.claims))}, true), ` +
    `set_config('extra_float_digits', '3', true)${timeout}`
}

/** `work` in one transaction as `who`, its statements awaited one by one: nothing a pooler could split. */
export async function asRole<T> (sql: Sql, who: DbIdentity, work: (tx: TransactionSql) => Promise<T>, options: TransactionOptions = {}): Promise<T> {
  // The timeout goes in the role's statement (one round trip), not through transaction()'s own first statement.
  // extra_float_digits: see roleSettings. The claims are a parameter: never in the statement's text.
  return await transaction(sql, async (tx) => {
    options.signal?.throwIfAborted()
    await tx`select set_config('role', ${who.role}, true), set_config('request.jwt.claims', ${JSON.stringify(who.claims)}, true),
      set_config('extra_float_digits', '3', true)${localTimeout(tx, options)}`
    return await work(tx)
  })
}

type SnapshotRow = WireRow & { db_now: number, found: boolean, policy_version: string }

export interface HeartbeatReading extends HeartbeatSnapshot {
  /** The version of the table's policies (policy-version.ts) in the statement that read the row. */
  policyVersion: string
}

function fromSnapshot (first: SnapshotRow | undefined): HeartbeatReading {
  if (first === undefined) throw new Error('the heartbeat query returned no row at all')
  const { db_now: now, found, policy_version: policyVersion, ...row } = first
  return { row: found ? fromWire(row) : null, now: new Date(now), policyVersion }
}

/** One statement, in the caller's transaction: now() and the policies' version always, the row when there is one. */
export async function selectHeartbeat (tx: TransactionSql): Promise<HeartbeatReading> {
  const [first] = await tx.unsafe<SnapshotRow[]>(SELECT_HEARTBEAT)
  return fromSnapshot(first)
}

/**
 * postgres.js pipelines a statement sent outside sql.begin onto a connection still busy with another one when every
 * connection is busy (the one-message read is the pool's only statement outside sql.begin: nothing can be ahead of
 * it on a connection, since sql.begin parks its connection as reserved); through a transaction pooler the second one's answer can reach the wrong client (see
 * transaction.ts). Its per-query `onexecute` hook (the one sql.begin uses to reserve its connection; internal, so
 * postgres.js is pinned, and test/db/driver.test.ts holds it to this) answering false marks the connection full
 * until this statement is answered: nothing is sent after it meanwhile, and the next statement waits for a free
 * connection. Every other statement of the pool runs on a connection sql.begin reserved, never pipelined.
 */
const ALONE = { onexecute: () => false } as unknown as postgres.UnsafeQueryOptions

/**
 * The row as `who` sees it. A token's reader: in a transaction of its own (asRole: BEGIN, the settings with the claims
 * as a parameter, the select, COMMIT). The public reader (constant claims: public liveness, the status page, the
 * event streams' poller, the hot path of uptime monitors): in one round trip, see readInOneMessage.
 */
export async function readHeartbeat (sql: Sql, who: DbIdentity, options: TransactionOptions = {}): Promise<HeartbeatReading> {
  if (who.constantClaims === true) return await readInOneMessage(sql, who, options)
  return await asRole(sql, who, selectHeartbeat, options)
}

/**
 * The settings statement and the select sent as one simple-protocol message, which the server runs as one implicit
 * transaction (PostgreSQL 10 on): set_config(…, true) holds for the select and ends with it, RLS plans the select as
 * the role, the statement timeout covers the select's lock waits (PostgreSQL 13 on: it is armed per statement). A
 * pooler in transaction mode sees one transaction begin and end in one message. No parameter (the claims are the
 * API's constant, as literals), so it is never prepared. One round trip instead of four (docs/performance.md).
 *
 * Unlike asRole, a read still waiting for a connection when the store's deadline answers its callers is sent anyway
 * once one frees up (and then runs at most the statement timeout). It is not cancelled: postgres.js's cancel() of a
 * query that a reconnecting connection holds as its first one leaves that connection stuck for good. Reads are
 * shared, so this is at most one read per role and deadline.
 */
async function readInOneMessage (sql: Sql, who: DbIdentity, options: TransactionOptions): Promise<HeartbeatReading> {
  options.signal?.throwIfAborted()
  const results = await sql.unsafe(`${roleSettings(who, options)};\n${SELECT_HEARTBEAT}`, [], ALONE) as unknown as [unknown, SnapshotRow[]]
  if (!Array.isArray(results) || results.length !== 2) throw new Error('the heartbeat read did not return two results')
  return fromSnapshot(results[1][0])
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
