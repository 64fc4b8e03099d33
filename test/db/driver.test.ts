// The postgres.js behaviours that patches/postgres+3.4.9.patch fixes, each on its own against a real server, so that
// an upgrade of the driver shows which of them its release fixed (the test passes without the hunk) and which not.
// The API's pool sends everything through sql.begin (src/db/transaction.ts); what it does with these is tested in
// test/faults/.
import net from 'node:net'
import postgres, { type Sql, type TransactionSql } from 'postgres'
import t from 'tap'
import { startTestDatabase } from '../helpers/database.js'
import { delay, eventually } from '../helpers/wait.js'

const db = await startTestDatabase()
t.teardown(db.close)

type Tap = Parameters<Parameters<typeof t.test>[0]>[0]

/** The API's pool settings that matter here (src/db/client.ts), on a pool of `max`. */
function pool (max: number): Sql {
  return postgres(db.apiUrl, { max, fetch_types: false, onnotice: () => {}, connection: { application_name: 'driver-test' } })
}

async function backendOf (conn: Sql | TransactionSql): Promise<number> {
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

// Hunk 1/3. Unpatched, the statement is written to a null socket from a setImmediate: an uncaught TypeError that
// ends the process (porsager/postgres#1154, #1208), or, with a write left pending, a promise that never settles.
t.test('a statement sent in a transaction whose connection has closed fails at once, and the process lives on', async (t) => {
  const sql = pool(1)
  t.teardown(async () => { await sql.end({ timeout: 1 }) })
  let late: Promise<string> | undefined
  const begun = outcome(sql.begin(async (tx) => {
    await terminate(await backendOf(tx))
    await delay(100) // the driver has seen the close (and begin() has rejected)
    late = outcome(tx`select 1`.execute())
    return await late
  }), 10_000)
  t.match(await begun, /^rejected CONNECTION_/, `the transaction fails with its connection (${await begun})`)
  await eventually(() => late !== undefined, 5000, 'the late statement was sent')
  t.match(await late, /^rejected CONNECTION_CLOSED/, `the statement sent after the close fails too (${String(await late)})`)
  t.same(await sql`select 1 as one`, [{ one: 1 }], 'the pool serves on a new connection')
})

// Hunk 2/3. Unpatched, the killed backend's FATAL error (57P01) stays on the connection object and fails the first
// statement on the next connection it opens (porsager/postgres#1223); the same line resets a write left pending at
// the close, which otherwise kept the connection from ever writing again (its next start hung until connect_timeout).
t.test('after a backend is killed mid-statement, the next statement is served on a new connection, not failed with the old error', async (t) => {
  const sql = pool(1)
  t.teardown(async () => { await sql.end({ timeout: 1 }) })
  const pid = await backendOf(sql)
  const slow = outcome(sql`select pg_sleep(5)`.execute(), 10_000)
  await eventually(async () => (await db.admin`select 1 from pg_stat_activity where pid = ${pid} and query like 'select pg_sleep%'`).length === 1,
    5000, 'the statement runs')
  await terminate(pid)
  t.match(await slow, /^rejected /, `the statement in flight fails (${await slow})`)
  const next = await outcome(sql`select 1 as one`.execute())
  t.equal(next, 'resolved', 'the next statement is served')
  t.not(await backendOf(sql), pid, 'by a new backend')
})

/** A TCP relay to the server on loopback that can reset its client connections (an RST: a socket error, not a close). */
async function startRelay (t: Tap, port: number): Promise<{ port: number, reset: () => number }> {
  const clients = new Set<net.Socket>()
  const server = net.createServer((client) => {
    const upstream = net.connect(port, '127.0.0.1')
    clients.add(client)
    client.on('error', () => {}).on('close', () => { clients.delete(client); upstream.destroy() })
    upstream.on('error', () => {}).on('close', () => { client.destroy() })
    client.pipe(upstream)
    upstream.pipe(client)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => {
    for (const client of clients) client.destroy()
    await new Promise((resolve) => server.close(resolve))
  })
  return {
    port: (server.address() as net.AddressInfo).port,
    reset: () => {
      const count = clients.size
      for (const client of clients) client.resetAndDestroy()
      return count
    }
  }
}

// Hunk 3/3. Unpatched, a connection closed after a socket error (ECONNRESET) left unsettled the statements sent
// between the 'error' and 'close' events, such as sql.begin's ROLLBACK, sent when the statement in flight failed
// (as in porsager/postgres#1186): their promises never settled. pg_terminate_backend closes cleanly (no socket
// error), hence the relay's reset. The statement is sent from the failed one's rejection handler, as the ROLLBACK is.
t.test('a statement sent right after a connection reset (between the socket error and the close) fails, never hangs', async (t) => {
  const relay = await startRelay(t, db.server.port)
  const url = new URL(db.apiUrl)
  url.port = String(relay.port)
  const sql = postgres(url.toString(), { max: 1, fetch_types: false, onnotice: () => {}, connection: { application_name: 'driver-test' } })
  t.teardown(async () => { await sql.end({ timeout: 1 }) })
  await sql`select 1` // the pool's one connection is open: reserve() takes it
  const reserved = await sql.reserve()
  const pid = await backendOf(reserved)
  let late: Promise<string> | undefined
  const slow = outcome(reserved`select pg_sleep(5)`.execute().catch((error: unknown) => {
    late = outcome(reserved`select 1`.execute())
    throw error
  }), 10_000)
  await eventually(async () => (await db.admin`select 1 from pg_stat_activity where pid = ${pid} and query like 'select pg_sleep%'`).length === 1,
    5000, 'the statement runs')
  t.equal(relay.reset(), 1, 'the pool\'s one connection reset')
  t.equal(await slow, 'rejected ECONNRESET', 'the statement in flight fails with the socket error')
  t.ok(late !== undefined, 'the next statement was sent from its rejection handler')
  t.equal(await late, 'rejected CONNECTION_CLOSED', 'the statement sent before the close fails with the close')
  reserved.release()
})
