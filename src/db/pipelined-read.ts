// The role-switched read in one round trip: begin, set_config (role and claims, local to the transaction), the row
// select and commit, written to one reserved connection without waiting in between, so that PostgreSQL receives them
// together (sql.begin() waits for each: four round trips). The semantics are asRole's: one transaction, the role and
// claims set first, so the table's real RLS policies apply; any failure rolls the transaction back and is thrown as
// the first error PostgreSQL gave (the later statements fail only because the transaction was aborted).
import postgres, { type Sql } from 'postgres'
import { heartbeatQuery, toSnapshot, type DbIdentity, type HeartbeatSnapshot } from './heartbeat.js'

export async function readHeartbeatPipelined (sql: Sql, who: DbIdentity): Promise<HeartbeatSnapshot> {
  const conn = await sql.reserve()
  let reusable = true
  try {
    // execute() queues each statement at once, in this order, on this connection (awaiting a query, or calling an
    // async function that does, would queue it a tick later, after the commit); allSettled observes every rejection.
    const [begin, role, read, commit] = await Promise.allSettled([
      conn`begin`.execute(),
      conn`select set_config('role', ${who.role}, true), set_config('request.jwt.claims', ${JSON.stringify(who.claims)}, true)`.execute(),
      heartbeatQuery(conn).execute(),
      conn`commit`.execute()
    ])
    if (read.status === 'fulfilled' && begin.status === 'fulfilled' && role.status === 'fulfilled' && commit.status === 'fulfilled') {
      return toSnapshot(read.value)
    }
    // A COMMIT after a failed statement has rolled back already; this makes sure, and shows whether the connection
    // still works. One that broke has been let go by postgres.js and must not be handed back to the pool.
    reusable = await conn`rollback`.execute().then(() => true, (error: unknown) => error instanceof postgres.PostgresError)
    const failed = [begin, role, read, commit].find((outcome) => outcome.status === 'rejected')
    throw failed?.status === 'rejected' ? failed.reason : new Error('the heartbeat read failed')
  } finally {
    if (reusable) conn.release()
  }
}
