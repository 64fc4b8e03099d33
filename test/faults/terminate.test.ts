// The API's database connections killed under it with pg_terminate_backend, as an operator (or a failover, or a
// pooler's restart) does: mid-request, the request gets 503, never 500; between requests, the next one is served.
import type { LightMyRequestResponse } from 'fastify'
import t from 'tap'
import { bearer, rowText, startTestApp, writeRow } from '../helpers/app.js'
import { apiBackends, holdTableLock, terminateApiBackends, waitingOnLocks } from '../helpers/faults.js'
import { eventually, LOADED_MARGIN_MS } from '../helpers/wait.js'

// Long enough that the kill, not the timeout, ends the statements that wait on the lock.
const STATEMENT_TIMEOUT_MS = 4000
const POOL_MAX = 4
// Only tells an answer from a hang: every request here answers while the lock is still held.
const BOUND_MS = STATEMENT_TIMEOUT_MS + LOADED_MARGIN_MS

const { app, db } = await startTestApp(t, { env: { DB_STATEMENT_TIMEOUT_MS: String(STATEMENT_TIMEOUT_MS), DB_POOL_MAX: String(POOL_MAX) } })
const reader = await bearer('authenticated')
const service = await bearer('service_role')

interface ProblemBody { code: string }
interface Timed { res: LightMyRequestResponse, ms: number, at: number }

async function timed (request: () => Promise<LightMyRequestResponse>): Promise<Timed> {
  const started = performance.now()
  const res = await request()
  return { res, ms: Math.round(performance.now() - started), at: performance.now() }
}

const getHeartbeat = async (): Promise<LightMyRequestResponse> => await app.inject({ url: '/heartbeat', headers: reader })
const getAsService = async (): Promise<LightMyRequestResponse> => await app.inject({ url: '/heartbeat', headers: service })
const getLiveness = async (): Promise<LightMyRequestResponse> => await app.inject({ url: '/heartbeat/liveness' })
const patch = async (body: Record<string, unknown>): Promise<LightMyRequestResponse> => await app.inject({
  method: 'PATCH', url: '/heartbeat', headers: { ...service, 'content-type': 'application/json' }, payload: JSON.stringify(body)
})

t.beforeEach(async () => {
  await writeRow(db.admin, { lastPollAgo: 1, nextPollIn: 300 })
})

/**
 * A GET, a liveness, a GET as service_role and a PATCH, sent together. Each has its own role or claims, so each has
 * its own read (see HeartbeatStore): four of the API's backends in all, the pool.
 */
function sendFour (): [Promise<Timed>, Promise<Timed>, Promise<Timed>, Promise<Timed>] {
  return [timed(getHeartbeat), timed(getLiveness), timed(getAsService), timed(async () => await patch({ paused_reason: 'never written' }))]
}

t.test('backends killed while their statements wait on a lock: 503, never 500; then served on fresh connections', async (t) => {
  const before = await rowText(db.admin)
  const lock = await holdTableLock(db.admin)
  t.teardown(lock.release)

  const inFlight = sendFour()
  await eventually(async () => await waitingOnLocks(db.admin) === POOL_MAX, 5000, 'every backend of the pool waits on the lock')
  const killed = (await apiBackends(db.admin)).map((b) => b.pid)
  const killedAt = performance.now()
  t.equal(await terminateApiBackends(db.admin), POOL_MAX, 'every backend of the pool terminated')
  const [read, live, serviceRead, write] = await Promise.all(inFlight)
  const all = [read, live, serviceRead, write]
  t.comment(`answers after the kill (GET, liveness, GET as service_role, PATCH): ${all.map((a) => a.res.statusCode).join(', ')}; ` +
    `${all.map((a) => Math.round(a.at - killedAt)).join(', ')} ms after it; ${all.map((a) => a.ms).join(', ')} ms in all`)
  t.equal(read.res.statusCode, 503, 'GET 503')
  t.equal(read.res.json<ProblemBody>().code, 'database_unavailable')
  t.equal(live.res.statusCode, 503, 'liveness 503')
  t.equal(live.res.json<{ state: string }>().state, 'unknown')
  t.equal(serviceRead.res.statusCode, 503, 'GET as service_role 503')
  t.equal(write.res.statusCode, 503, 'PATCH 503')
  t.equal(write.res.json<ProblemBody>().code, 'database_unavailable')
  for (const answer of all) t.ok(answer.ms < BOUND_MS, `answered in ${answer.ms} ms`)

  await lock.release()
  const after = await Promise.all([timed(getHeartbeat), timed(getLiveness), timed(getHeartbeat)])
  t.same(after.map((a) => a.res.statusCode), [200, 200, 200], 'the next requests are served')
  const fresh = (await apiBackends(db.admin)).map((b) => b.pid)
  t.ok(fresh.length > 0 && fresh.every((pid) => !killed.includes(pid)), 'on fresh connections')
  t.equal(await rowText(db.admin), before, 'the killed PATCH changed nothing')
})

t.test('backends killed while waiting, the lock released at once: reads are served on a new connection, the write is not retried', async (t) => {
  const before = await rowText(db.admin)
  const lock = await holdTableLock(db.admin)
  t.teardown(lock.release)

  const inFlight = sendFour()
  await eventually(async () => await waitingOnLocks(db.admin) === POOL_MAX, 5000, 'every backend of the pool waits on the lock')
  t.equal(await terminateApiBackends(db.admin), POOL_MAX)
  await lock.release()
  const [read, live, serviceRead, write] = await Promise.all(inFlight)
  t.comment(`killed mid-request, lock released: GET ${read.res.statusCode} (${read.ms} ms), liveness ${live.res.statusCode} (${live.ms} ms), ` +
    `GET as service_role ${serviceRead.res.statusCode} (${serviceRead.ms} ms), PATCH ${write.res.statusCode} (${write.ms} ms)`)
  t.equal(read.res.statusCode, 200, 'GET: tried again on a new connection, served')
  t.equal(live.res.statusCode, 200, 'liveness: likewise')
  t.equal(live.res.json<{ state: string }>().state, 'alive')
  t.equal(serviceRead.res.statusCode, 200, 'GET as service_role: likewise')
  t.equal(write.res.statusCode, 503, 'PATCH: 503, never tried again (the client decides)')
  t.equal(write.res.json<ProblemBody>().code, 'database_unavailable')
  t.equal(await rowText(db.admin), before, 'and nothing was written')
})

for (const wait of [true, false]) {
  const how = wait ? 'and gone' : 'signalled only, the request sent at once'
  t.test(`idle connections killed between requests (${how}): the next request is served`, async (t) => {
    const rounds = 20
    const statuses: number[] = []
    for (let round = 0; round < rounds; round++) {
      // Fill the pool (three readers' reads and a write at once: four connections), let it go idle, kill every idle
      // connection, then ask.
      const warm = await Promise.all([getHeartbeat(), getLiveness(), getAsService(), patch({ paused_reason: null })])
      t.same(warm.map((r) => r.statusCode), warm.map(() => 200))
      await eventually(async () => (await apiBackends(db.admin)).every((b) => b.state === 'idle'), 5000, 'idle')
      const terminated = await terminateApiBackends(db.admin, { states: ['idle'], wait })
      const res = await (round % 2 === 0 ? getHeartbeat() : getLiveness())
      statuses.push(res.statusCode)
      if (terminated === 0) t.fail('nothing was terminated')
    }
    const served = statuses.filter((s) => s === 200).length
    t.comment(`idle connections killed (${how}), ${rounds} rounds: ${served} served, ${rounds - served} 503 (${statuses.join(' ')})`)
    t.notOk(statuses.includes(500), 'never 500')
    t.equal(served, rounds, 'every request after the kill is served')
  })
}

t.test('the server stopped while requests wait on a lock: 503 in the bound, never 500; started again: served', async (t) => {
  const lock = await holdTableLock(db.admin)
  t.teardown(lock.release)
  const inFlight = sendFour()
  await eventually(async () => await waitingOnLocks(db.admin) === POOL_MAX, 5000, 'every backend of the pool waits on the lock')
  const port = db.server.port
  const stoppedAt = performance.now()
  await db.server.stop()
  const answers = await Promise.all(inFlight)
  t.comment(`server stopped mid-request (GET, liveness, GET as service_role, PATCH): ${answers.map((a) => a.res.statusCode).join(', ')}; ` +
    `${answers.map((a) => Math.round(a.at - stoppedAt)).join(', ')} ms after the stop began`)
  t.same(answers.map((a) => a.res.statusCode), [503, 503, 503, 503], 'all 503')
  for (const answer of answers) t.ok(answer.ms < BOUND_MS, `answered in ${answer.ms} ms`)
  t.equal(answers[3]?.res.json<ProblemBody>().code, 'database_unavailable')

  await db.server.start()
  t.equal(db.server.port, port)
  const startedAt = performance.now()
  let res = await getHeartbeat()
  while (res.statusCode !== 200 && performance.now() - startedAt < 15_000) res = await getHeartbeat()
  t.equal(res.statusCode, 200, 'served again once the server is back')
  t.comment(`first 200 ${Math.round(performance.now() - startedAt)} ms after the server was back`)
  t.notMatch(await rowText(db.admin), /never written/)
})
