// Slow queries made slow for real: a superuser holds a lock on the table (or on the row) in an open transaction, and the
// API's statements wait for it. The statement timeout answers 503 in bounded time, the small pool is not exhausted,
// /livez keeps answering, and the service recovers the moment the lock is released.
import type { LightMyRequestResponse } from 'fastify'
import t from 'tap'
import { bearer, rowText, startTestApp, writeRow } from '../helpers/app.js'
import { apiBackends, holdRowLock, holdTableLock, waitingOnLocks } from '../helpers/faults.js'
import { eventually, LOADED_MARGIN_MS } from '../helpers/wait.js'

const STATEMENT_TIMEOUT_MS = 1000
const POOL_MAX = 3
// The bound asserted: the statement timeout plus a margin no loaded machine reaches; each request also answers while
// the lock is still held (the test releases it only afterwards), which is the property.
const BOUND_MS = STATEMENT_TIMEOUT_MS + LOADED_MARGIN_MS

const { app, db } = await startTestApp(t, { env: { DB_STATEMENT_TIMEOUT_MS: String(STATEMENT_TIMEOUT_MS), DB_POOL_MAX: String(POOL_MAX) } })
const reader = await bearer('authenticated')
const service = await bearer('service_role')

interface ProblemBody { code: string, status: number }
interface LivenessBody { state: string, status: string }
interface Timed { res: LightMyRequestResponse, ms: number }

async function timed (request: () => Promise<LightMyRequestResponse>): Promise<Timed> {
  const started = performance.now()
  const res = await request()
  return { res, ms: Math.round(performance.now() - started) }
}

const getHeartbeat = async (): Promise<LightMyRequestResponse> => await app.inject({ url: '/heartbeat', headers: reader })
const getLiveness = async (): Promise<LightMyRequestResponse> => await app.inject({ url: '/heartbeat/liveness' })
const patch = async (body: Record<string, unknown>): Promise<LightMyRequestResponse> => await app.inject({
  method: 'PATCH', url: '/heartbeat', headers: { ...service, 'content-type': 'application/json' }, payload: JSON.stringify(body)
})

type Tap = Parameters<Parameters<typeof t.test>[0]>[0]

/** A 503 database_unavailable problem, in the bound, after the statement timeout had time to fire (it waited). */
function unavailable (t: Tap, { res, ms }: Timed, what: string): void {
  t.equal(res.statusCode, 503, `${what}: 503`)
  t.match(res.headers['content-type'], /^application\/problem\+json(;|$)/, `${what}: problem+json`)
  t.equal(res.json<ProblemBody>().code, 'database_unavailable', `${what}: database_unavailable`)
  t.match(String(res.headers['retry-after']), /^[1-9]\d*$/, `${what}: Retry-After`)
  t.ok(ms < BOUND_MS, `${what}: answered in ${ms} ms (bound ${BOUND_MS} ms)`)
}

t.beforeEach(async () => { await writeRow(db.admin, { lastPollAgo: 1, nextPollIn: 300 }) })

t.test('a table lock: the read waits, the statement timeout answers 503, the rest of the service goes on', async (t) => {
  const before = await rowText(db.admin)
  const lock = await holdTableLock(db.admin)
  t.teardown(lock.release)

  let readAnswered = false
  const reading = timed(getHeartbeat).finally(() => { readAnswered = true })
  await eventually(async () => await waitingOnLocks(db.admin) === 1, 5000, 'the read waits on the lock')
  // While it waits: the process is up, and answers without waiting for the database.
  const livez = await timed(async () => await app.inject({ url: '/livez' }))
  t.equal(livez.res.statusCode, 200)
  t.comment(`/livez while a read waits on the lock: ${livez.ms} ms`)
  t.notOk(readAnswered, '/livez answered while the read still waited on the lock')

  // It waited on the lock (seen above) until the statement timeout: 503, not an early failure.
  const read = await reading
  unavailable(t, read, 'GET /heartbeat')
  t.notOk('etag' in read.res.headers)

  const live = await timed(getLiveness)
  t.equal(live.res.statusCode, 503)
  t.match(live.res.headers['content-type'], /^application\/health\+json(;|$)/)
  t.equal(live.res.json<LivenessBody>().state, 'unknown', 'liveness unknown, not a guess')
  t.ok(live.ms < BOUND_MS, `liveness answered in ${live.ms} ms`)

  const ready = await timed(async () => await app.inject({ url: '/readyz' }))
  t.comment(`/readyz under the table lock: ${ready.res.statusCode} in ${ready.ms} ms`)
  t.ok(ready.ms < BOUND_MS, `/readyz answered in ${ready.ms} ms`)

  const write = await timed(async () => await patch({ paused_reason: 'never written' }))
  unavailable(t, write, 'PATCH /heartbeat')

  await lock.release()
  const after = await timed(getHeartbeat)
  t.equal(after.res.statusCode, 200, 'served again once the lock is released')
  t.comment(`first read after the release: ${after.ms} ms`)
  t.equal(await rowText(db.admin), before, 'the PATCH that timed out changed nothing')
})

t.test('more requests than the pool under a table lock: every one 503 in the bound, none 500, recovery at the release', async (t) => {
  const before = await rowText(db.admin)
  const lock = await holdTableLock(db.admin)
  t.teardown(lock.release)
  const requests = 4 * POOL_MAX
  let mostConnections = 0
  let watching = true
  const watcher = (async () => {
    while (watching) {
      mostConnections = Math.max(mostConnections, (await apiBackends(db.admin)).length)
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  })()

  const started = performance.now()
  const answers = await Promise.all(Array.from({ length: requests }, async (_, i) =>
    await timed([getHeartbeat, getLiveness, async () => await patch({ paused_reason: 'never written' })][i % 3] as () => Promise<LightMyRequestResponse>)))
  const wall = Math.round(performance.now() - started)
  const slowest = Math.max(...answers.map((a) => a.ms))
  t.comment(`${requests} requests, pool ${POOL_MAX}: all answered in ${wall} ms; slowest ${slowest} ms; each ${answers.map((a) => a.ms).join(', ')}`)
  t.same(answers.map((a) => a.res.statusCode), answers.map(() => 503), 'every one 503')
  t.ok(slowest < BOUND_MS, `each answered within ${BOUND_MS} ms (slowest ${slowest} ms)`)

  const livez = await timed(async () => await app.inject({ url: '/livez' }))
  t.equal(livez.res.statusCode, 200, '/livez')

  await lock.release()
  const released = performance.now()
  let first = await getHeartbeat()
  while (first.statusCode !== 200 && performance.now() - released < 10_000) first = await getHeartbeat()
  const recoveredMs = Math.round(performance.now() - released)
  t.equal(first.statusCode, 200, 'served again')
  t.comment(`first 200 ${recoveredMs} ms after the release`)
  const after = await Promise.all(Array.from({ length: requests }, async () => await timed(getHeartbeat)))
  t.same(after.map((a) => a.res.statusCode), after.map(() => 200), `then ${requests} at once all 200`)
  t.comment(`${requests} at once after the release: slowest ${Math.max(...after.map((a) => a.ms))} ms`)
  watching = false
  await watcher
  t.comment(`most API connections seen: ${mostConnections}`)
  t.ok(mostConnections <= POOL_MAX, `never more than DB_POOL_MAX connections (${mostConnections})`)
  t.ok((await apiBackends(db.admin)).length <= POOL_MAX)
  await eventually(async () => (await apiBackends(db.admin)).every((b) => b.state === 'idle'), 10_000, 'the pool idle')
  t.equal(await rowText(db.admin), before, 'no PATCH answered 503 was written later')
})

t.test('/readyz more times than the pool under a table lock: no probe leaves a connection waiting on the lock', async (t) => {
  // The catalog reads (pg_get_expr, pg_policies) take ACCESS SHARE on the table: without a statement timeout each
  // probe answered 503 at its deadline but left its statement waiting on the server, holding a pool connection.
  const lock = await holdTableLock(db.admin)
  t.teardown(lock.release)
  const probes = await Promise.all(Array.from({ length: POOL_MAX + 2 }, async () => await timed(async () => await app.inject({ url: '/readyz' }))))
  t.same(probes.map((p) => p.res.statusCode), probes.map(() => 503), 'every probe 503')
  t.ok(probes.every((p) => p.ms < BOUND_MS * 2), `each in the bound (${probes.map((p) => p.ms).join(', ')} ms)`)
  // Every probe was answered, so every one of their statements has passed the timeout by now (give it one margin).
  await eventually(async () => await waitingOnLocks(db.admin) === 0, BOUND_MS, 'no API statement still waiting on the lock')
  t.equal(await waitingOnLocks(db.admin), 0, 'no API session waits on the lock while it is still held')

  await lock.release()
  const after = await getHeartbeat()
  t.equal(after.statusCode, 200, '/heartbeat served right after the release')
  const ready = await app.inject({ url: '/readyz' })
  t.equal(ready.statusCode, 200, '/readyz ready again')
})

t.test('a row lock (SELECT … FOR UPDATE, not committed): reads go on, a PATCH waits out the statement timeout and writes nothing', async (t) => {
  const before = await rowText(db.admin)
  const lock = await holdRowLock(db.admin)
  t.teardown(lock.release)

  const read = await timed(getHeartbeat)
  // Served at all means it did not wait: a wait on the lock ends in a 503 at the statement timeout.
  t.equal(read.res.statusCode, 200, 'GET is served: readers do not wait for row locks (MVCC)')
  t.comment(`GET under the row lock: ${read.ms} ms`)
  const live = await getLiveness()
  t.equal(live.statusCode, 200)
  t.equal(live.json<LivenessBody>().state, 'alive')

  const writing = timed(async () => await patch({ status: 'stopped', paused_reason: 'blocked by the row lock' }))
  await eventually(async () => await waitingOnLocks(db.admin) === 1, 5000, 'the PATCH waits on the row lock')
  const write = await writing
  unavailable(t, write, 'PATCH /heartbeat')
  t.comment(`PATCH under the row lock: ${write.res.statusCode} in ${write.ms} ms`)

  await lock.release()
  t.equal(await rowText(db.admin), before, 'the row is unchanged')
  const again = await patch({ status: 'stopped', paused_reason: 'after the release' })
  t.equal(again.statusCode, 200, 'the same PATCH succeeds once the lock is released')
  t.match(await rowText(db.admin), /"paused_reason":"after the release"/)
})
