// Faults against the real process (`node --import tsx src/server.ts` on an external database), not an app in the test's
// own process: SIGTERM while requests wait on the database, and the API's connections killed under it.
import { existsSync } from 'node:fs'
import http from 'node:http'
import path from 'node:path'
import postgres from 'postgres'
import t from 'tap'
import { bearer, rowText, TEST_SECRET, writeRow } from '../helpers/app.js'
import { startTestDatabase } from '../helpers/database.js'
import { holdTableLock, terminateApiBackends, waitingOnLocks } from '../helpers/faults.js'
import { embeddedAdminUrl, embeddedDataDir, embeddedPort, startServer, type ServerProcess, type Tap } from '../helpers/server-process.js'
import { delay, eventually } from '../helpers/wait.js'

// close-with-grace's delay in src/server.ts: past it the process exits 1.
const GRACE_MS = 10_000

const db = await startTestDatabase()
t.teardown(db.close)
const reader = await bearer('authenticated')
const service = await bearer('service_role')

/** The service on the test's database (or, `embedded`, on its own embedded server and demo scheduler), logging at info. */
function start (t: Tap, env: Record<string, string> = {}, embedded = false): ServerProcess {
  const database: Record<string, string> = embedded ? {} : { DATABASE_URL: db.apiUrl, JWT_SECRET: TEST_SECRET }
  return startServer(t, { ...database, PORT: '0', LOG_LEVEL: 'info', ...env })
}

interface Answer { status: number, body: string, at: number }

/** One request on a connection of its own (no keep-alive pool): "refused" when the connection is. */
async function request (address: string, path: string, options: { method?: string, headers?: Record<string, string>, body?: string } = {}): Promise<Answer | 'refused'> {
  const url = new URL(path, address)
  return await new Promise((resolve, reject) => {
    const req = http.request(url, { method: options.method ?? 'GET', headers: options.headers, agent: false }, (res) => {
      let body = ''
      res.setEncoding('utf8').on('data', (chunk: string) => { body += chunk }).on('end', () => {
        resolve({ status: res.statusCode ?? 0, body, at: performance.now() })
      })
    })
    req.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'ECONNREFUSED') resolve('refused')
      else reject(error)
    })
    req.end(options.body)
  })
}

const statusOf = (answer: Answer | 'refused'): number | 'refused' => answer === 'refused' ? 'refused' : answer.status

t.test('SIGTERM while requests wait on the database: they finish with 200, new ones are refused, exit 0 within the grace', async (t) => {
  await writeRow(db.admin, { lastPollAgo: 1, nextPollIn: 300 })
  const server = start(t, { DB_STATEMENT_TIMEOUT_MS: '8000' })
  const { address } = await server.ready()
  t.equal(statusOf(await request(address, '/livez')), 200)

  const lock = await holdTableLock(db.admin)
  t.teardown(lock.release)
  const patchBody = JSON.stringify({ status: 'stopping', paused_reason: 'sent before SIGTERM' })
  const inFlight = [
    request(address, '/heartbeat', { headers: reader }),
    request(address, '/heartbeat/liveness'),
    request(address, '/heartbeat/liveness'),
    request(address, '/heartbeat', { headers: service }),
    request(address, '/heartbeat', { method: 'PATCH', headers: { ...service, 'content-type': 'application/json' }, body: patchBody })
  ]
  // Readers share only a read that starts after they arrive (src/db/in-flight.ts): the token read, the first
  // liveness read, the service_role read and the PATCH each wait on a backend; the second liveness read waits for
  // the next public read, which starts when the first ends.
  await eventually(async () => await waitingOnLocks(db.admin) === 4, 10_000, 'the five wait on the lock, on four backends')

  const signalledAt = performance.now()
  server.child.kill('SIGTERM')
  await eventually(() => server.logLines().some((l) => l.msg === 'shutting down'), 5000, 'the shutting down line')
  await delay(300)
  // While the five are still waiting: a new connection is refused (or, in the instant before the listener closes,
  // answered 503 problem+json by plugins/closing.ts); never served.
  const late = await Promise.all([request(address, '/livez'), request(address, '/heartbeat/liveness')])
  t.comment(`new requests 300 ms after SIGTERM: ${late.map(statusOf).join(', ')}`)
  for (const answer of late) t.ok(answer === 'refused' || answer.status === 503, `refused or 503 (${statusOf(answer)})`)
  t.ok(server.running, 'still running while requests are in flight')

  await delay(700)
  const releasedAt = performance.now()
  await lock.release()
  const answers = await Promise.all(inFlight)
  t.same(answers.map(statusOf), [200, 200, 200, 200, 200], 'the five in flight finish with 200')
  const exit = await Promise.race([server.exited, delay(GRACE_MS + 5000).then(() => 'timeout' as const)])
  const exitMs = Math.round(performance.now() - signalledAt)
  t.same(exit, { code: 0, signal: null }, 'exit 0')
  t.ok(exitMs < GRACE_MS, `exited ${exitMs} ms after SIGTERM (grace ${GRACE_MS} ms)`)
  const finished = answers.map((a) => a === 'refused' ? NaN : Math.round(a.at - releasedAt))
  t.comment(`SIGTERM → lock released ${Math.round(releasedAt - signalledAt)} ms later → in-flight answered ${finished.join(', ')} ms after the release → exit ${exitMs} ms after SIGTERM`)
  t.match(server.logLines().find((l) => l.msg === 'shutting down'), { signal: 'SIGTERM' })
  t.equal(server.stderr, '', 'nothing on stderr')
  t.match(await rowText(db.admin), /"paused_reason":"sent before SIGTERM"/, 'the PATCH in flight was written')
})

t.test('the API\'s connections killed mid-request: the process lives on and serves', async (t) => {
  await writeRow(db.admin, { lastPollAgo: 1, nextPollIn: 300 })
  const server = start(t, { DB_STATEMENT_TIMEOUT_MS: '8000', DB_POOL_MAX: '3' })
  const { address } = await server.ready()
  for (let round = 1; round <= 3; round++) {
    const lock = await holdTableLock(db.admin)
    const inFlight = [
      request(address, '/heartbeat', { headers: reader }),
      request(address, '/heartbeat', { method: 'PATCH', headers: { ...service, 'content-type': 'application/json' }, body: '{"paused_reason":"never written"}' })
    ]
    await eventually(async () => await waitingOnLocks(db.admin) === 2, 10_000, 'both wait on the lock')
    await terminateApiBackends(db.admin, { wait: false })
    const write = await inFlight[1] as Answer | 'refused'
    t.equal(statusOf(write), 503, `round ${round}: the PATCH killed mid-request: 503`)
    await lock.release()
    const read = await inFlight[0] as Answer | 'refused'
    t.equal(statusOf(read), 200, `round ${round}: the GET killed mid-request is served on a new connection`)
    await delay(200)
    t.ok(server.running, `round ${round}: the process is still running`)
    t.equal(statusOf(await request(address, '/heartbeat/liveness')), 200, `round ${round}: and serving`)
  }
  t.notMatch(server.stderr, /TypeError|uncaught/i, 'no uncaught error')
  t.notMatch(await rowText(db.admin), /never written/, 'no killed PATCH was written')
})

t.test('embedded mode, SIGTERM while the demo scheduler waits on a lock: new connections are refused at once, exit 0', async (t) => {
  const dataDir = await embeddedDataDir(t, 'eva-faults-')
  const server = start(t, { DATA_DIR: dataDir, DEMO_INTERVAL_SECONDS: '0.2' }, true)
  const { address } = await server.ready()
  const port = await embeddedPort(server)
  t.ok(port, 'the banner names the embedded server\'s port')
  const admin = postgres(await embeddedAdminUrl(server, dataDir), { max: 2, onnotice: () => {} })
  t.teardown(async () => { await admin.end({ timeout: 1 }) })
  t.equal(statusOf(await request(address, '/livez')), 200)

  const lock = await holdTableLock(admin)
  t.teardown(lock.release)
  // The demo scheduler's next poll (every 0.2 s) waits on the lock: its stop will wait for it.
  await eventually(async () => {
    const [row] = await admin<Array<{ waiting: number }>>`
      select count(*)::int as waiting from pg_stat_activity where wait_event_type = 'Lock' and pid <> ${lock.pid}`
    return (row?.waiting ?? 0) > 0
  }, 10_000, 'the demo scheduler waits on the lock')

  const signalledAt = performance.now()
  server.child.kill('SIGTERM')
  await eventually(() => server.logLines().some((l) => l.msg === 'shutting down'), 5000, 'the shutting down line')
  await delay(300)
  const late = await Promise.all([request(address, '/livez'), request(address, '/heartbeat/liveness')])
  t.comment(`embedded mode, new requests 300 ms after SIGTERM while the demo waits: ${late.map(statusOf).join(', ')}`)
  for (const answer of late) t.ok(answer === 'refused' || answer.status === 503, `refused or 503, not served (${statusOf(answer)})`)

  await delay(700)
  await lock.release()
  const exit = await Promise.race([server.exited, delay(GRACE_MS + 5000).then(() => 'timeout' as const)])
  const exitMs = Math.round(performance.now() - signalledAt)
  t.same(exit, { code: 0, signal: null }, 'exit 0')
  t.ok(exitMs < GRACE_MS, `exited ${exitMs} ms after SIGTERM (grace ${GRACE_MS} ms)`)
  t.comment(`embedded mode: exit ${exitMs} ms after SIGTERM (lock released after ~1000 ms)`)
  t.equal(server.stderr, '', 'nothing on stderr')
  t.notOk(existsSync(path.join(dataDir, 'pg', 'postmaster.pid')), 'the embedded server was stopped with the process')
})
