// The postgres.js behaviours that patches/postgres+3.4.9.patch fixes, each on its own against a real server, so that
// an upgrade of the driver shows which of them its release fixed (the test passes without the hunk) and which not.
// What the API does with them is tested in test/faults/.
import postgres, { type Sql } from 'postgres'
import t from 'tap'
import { startTestDatabase } from '../helpers/database.js'

const db = await startTestDatabase()
t.teardown(db.close)

/** The API's pool settings that matter here (src/db/client.ts), on a pool of `max`. */
function pool (max: number): Sql {
  return postgres(db.apiUrl, { max, onnotice: () => {}, connection: { application_name: 'driver-test' } })
}

async function backendOf (conn: Sql): Promise<number> {
  const [row] = await conn<Array<{ pid: number }>>`select pg_backend_pid() as pid`
  return (row as { pid: number }).pid
}

async function terminate (pid: number): Promise<void> {
  await db.admin`select pg_terminate_backend(${pid}::int, 5000)`
}

/** The promise's outcome, or 'pending' if it has not settled within `ms` (what the patch fixes is a promise that never does). */
async function outcome (promise: Promise<unknown>, ms = 5000): Promise<string> {
  const settled = promise.then(() => 'resolved', (error: { code?: string }) => `rejected ${error.code ?? String(error)}`)
  return await Promise.race([settled, new Promise<string>((resolve) => setTimeout(() => { resolve('pending') }, ms))])
}

t.test('a statement sent on a reserved connection whose backend was killed settles, as does a ROLLBACK after it', async (t) => {
  const sql = pool(1)
  t.teardown(async () => { await sql.end({ timeout: 1 }) })
  const conn = await sql.reserve()
  await terminate(await backendOf(conn))
  const first = await outcome(conn`select 1`.execute())
  t.match(first, /^rejected /, `the first statement fails (${first})`)
  const rollback = await outcome(conn`rollback`.execute())
  t.match(rollback, /^rejected CONNECTION_/, `and a ROLLBACK sent after it fails too, never hangs (${rollback})`)
  t.same(await sql`select 1 as one`, [{ one: 1 }], 'the pool serves on a new connection')
})

t.test('statements a reserved connection held back settle when it closes', async (t) => {
  const sql = pool(1)
  t.teardown(async () => { await sql.end({ timeout: 1 }) })
  const conn = await sql.reserve()
  const pid = await backendOf(conn)
  // A statement with parameters is described first: the ones after it wait in the reserved connection's own queue.
  const held = [conn`select pg_sleep(${1})`.execute(), conn`select ${2}::int as two`.execute(), conn`select ${3}::int as three`.execute()]
  const settled = held.map(async (statement) => await outcome(statement, 10_000))
  await terminate(pid)
  const outcomes = await Promise.all(settled)
  t.ok(outcomes.every((o) => o.startsWith('rejected')), `all three fail with the connection: ${outcomes.join(', ')}`)
})

t.test('a reserve() waiting for the pool\'s only connection gets a new one when the server closes it', async (t) => {
  const sql = pool(1)
  t.teardown(async () => { await sql.end({ timeout: 1 }) })
  const holder = await sql.reserve()
  const pid = await backendOf(holder)
  const waiting = sql.reserve()
  const settled = outcome(waiting, 10_000)
  await terminate(pid)
  t.equal(await settled, 'resolved', 'the queued reserve() settles')
  const conn = await waiting
  t.same(await conn`select 1 as one`, [{ one: 1 }], 'on a working connection')
  t.not(await backendOf(conn), pid, 'a new backend')
  conn.release()
})

// Not a bug of 3.4.9 as released (its pool drops such a reserve() another way): the guard of the patch's own change,
// which keeps a queued reserve() in the queue until a connection opens for it.
t.test('a reserve() refused (the server is gone) leaves no claim on the next connection', async (t) => {
  const server = await startTestDatabase()
  t.teardown(server.close)
  const sql = postgres(server.apiUrl, { max: 1, onnotice: () => {}, connect_timeout: 2, backoff: () => 0.05 })
  t.teardown(async () => { await sql.end({ timeout: 1 }) })
  await sql`select 1`
  await server.server.stop()
  const refused = await outcome(sql.reserve())
  t.match(refused, /^rejected /, `refused while the server is down (${refused})`)
  await server.server.start()
  const conn = await sql.reserve()
  t.same(await conn`select 1 as one`, [{ one: 1 }], 'once it is back, the next reserve() gets the connection')
  conn.release()
  t.same(await sql`select 2 as two`, [{ two: 2 }], 'and the pool goes on')
})
