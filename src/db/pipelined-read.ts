// The role-switched read in one round trip: begin, set_config (role and claims, local to the transaction), the row
// select and commit, written to one reserved connection without waiting in between, so that PostgreSQL receives them
// together (sql.begin() waits for each: four round trips). The semantics are asRole's: one transaction, the role and
// claims set first, so the table's real RLS policies apply; any failure rolls the transaction back and is thrown as
// the first error PostgreSQL gave (the later statements fail only because the transaction was aborted).
//
// The row select also returns the version of the table's policies in the same statement (the xmin of their pg_policy
// rows: any CREATE, ALTER or DROP POLICY changes it), so whoever shares this read can tell whether the policies it
// was made under are the ones last found equal to the mirror (see HeartbeatStore).
import postgres, { type Sql } from 'postgres'
import type { HeartbeatRow } from '../domain/heartbeat.js'
import type { DbIdentity, HeartbeatSnapshot } from './heartbeat.js'
import { policyVersionSql } from './policy-version.js'
import { isConnectionLost } from './transaction.js'

export interface PipelinedReading extends HeartbeatSnapshot {
  /** The version of the table's policies when the row was read. */
  policyVersion: string
}

type ReadRow = HeartbeatRow & { db_now: Date, found: boolean, policy_version: string }

/** An aborted `signal` (the caller has been answered already) stops it before it sends anything. */
export async function readHeartbeatPipelined (sql: Sql, who: DbIdentity, signal?: AbortSignal): Promise<PipelinedReading> {
  const conn = await sql.reserve()
  let reusable = true
  try {
    signal?.throwIfAborted()
    // execute() queues each statement at once, in this order, on this connection (awaiting a query, or an async
    // function that does, would queue it a tick later, after the commit); allSettled observes every rejection.
    const [begin, role, read, commit] = await Promise.allSettled([
      conn`begin`.execute(),
      conn`select set_config('role', ${who.role}, true), set_config('request.jwt.claims', ${JSON.stringify(who.claims)}, true)`.execute(),
      conn<ReadRow[]>`
        select now() as db_now, h.id is not null as found, h.*, ${policyVersionSql(conn)} as policy_version
        from (select 1) as one left join public.eva_scheduler_heartbeat h on h.id = 1`.execute(),
      conn`commit`.execute()
    ])
    if (begin.status === 'fulfilled' && role.status === 'fulfilled' && read.status === 'fulfilled' && commit.status === 'fulfilled') {
      const first = read.value[0]
      if (first === undefined) throw new Error('the heartbeat query returned no row at all')
      const { db_now: now, found, policy_version: policyVersion, ...row } = first
      return { row: found ? row : null, now, policyVersion }
    }
    const failed = [begin, role, read, commit].find((outcome) => outcome.status === 'rejected')
    const reason: unknown = failed?.status === 'rejected' ? failed.reason : new Error('the heartbeat read failed')
    // A connection that is gone ended its transaction with it: nothing is sent on it (see transaction.ts), and it is
    // not handed back (postgres.js has let it go). Otherwise a COMMIT after a failed statement has rolled back
    // already; the ROLLBACK makes sure, and shows whether the connection still works.
    reusable = !isConnectionLost(reason) &&
      await conn`rollback`.execute().then(() => true, (error: unknown) => error instanceof postgres.PostgresError)
    throw reason
  } finally {
    if (reusable) conn.release()
  }
}
