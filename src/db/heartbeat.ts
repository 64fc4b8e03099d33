// The heartbeat queries. Every one runs in a transaction that first takes the caller's role and claims, as
// PostgREST does, so the table's real RLS policies decide a second time what the API already decided.
import type { Sql, TransactionSql } from 'postgres'
import type { HeartbeatRow } from '../domain/heartbeat.js'
import type { ApiRole } from '../domain/policies.js'

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

export async function asRole<T> (sql: Sql, who: DbIdentity, work: (tx: TransactionSql) => Promise<T>): Promise<T> {
  return await sql.begin(async (tx) => {
    await tx`select set_config('role', ${who.role}, true), set_config('request.jwt.claims', ${JSON.stringify(who.claims)}, true)`
    return await work(tx)
  }) as T
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

export async function readHeartbeat (sql: Sql, who: DbIdentity): Promise<HeartbeatSnapshot> {
  return await asRole(sql, who, async (tx) => await selectHeartbeat(tx))
}
