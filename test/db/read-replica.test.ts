// A read replica as DATABASE_URL: a real hot standby streaming from a real primary (test/helpers/standby.ts), and a
// primary whose API login role has default_transaction_read_only on. Reads are served; a PATCH gets 503
// database_read_only (never a 500), nothing is written, the process keeps serving; /readyz says writes are impossible.
import type { LightMyRequestResponse } from 'fastify'
import t from 'tap'
import { assertHeartbeatAnswer, assertLivenessAnswer, fromFetch, fromInject, type Answer, type Problem } from '../helpers/answers.js'
import { bearer, rowText, startTestApp, TEST_SECRET, writeRow } from '../helpers/app.js'
import { startTestDatabase } from '../helpers/database.js'
import { startServer } from '../helpers/server-process.js'
import { connectSse, dataOf, isHeartbeat } from '../helpers/sse.js'
import { startStandby } from '../helpers/standby.js'
import { eventually } from '../helpers/wait.js'

const primary = await startTestDatabase()
t.teardown(primary.close)
const standby = await startStandby(primary)
t.teardown(standby.close)

const reader = await bearer('authenticated')
const service = await bearer('service_role')
const PAUSE = { status: 'stopping', paused_reason: 'deploy' }

interface Readiness { status: string, checks: Record<string, { status: string, output?: string }> }

/** The answer to a write on a read-only database: 503 problem+json that names it and says what to do. */
function assertReadOnlyProblem (t: Tap, answer: Answer): Problem {
  t.equal(answer.status, 503, `503 expected, got ${answer.status}: ${answer.body.slice(0, 300)}`)
  t.match(answer.headers['content-type'], /^application\/problem\+json(;|$)/)
  const problem = JSON.parse(answer.body) as Problem
  t.match(problem, { status: 503, code: 'database_read_only', type: 'urn:eva-heartbeat-api:problem:database_read_only' })
  t.match(problem.detail, /database at DATABASE_URL is read-only/)
  t.match(problem.detail, /hot standby or read replica/)
  t.match(problem.detail, /nothing was written/)
  t.match(problem.detail, /Point DATABASE_URL at the primary/)
  return problem
}

type Tap = Parameters<Parameters<typeof t.test>[0]>[0]

const patchHeartbeat = async (app: { inject: (o: object) => Promise<LightMyRequestResponse> }): Promise<Answer> =>
  fromInject(await app.inject({ method: 'PATCH', url: '/heartbeat', headers: { ...service, 'content-type': 'application/json' }, payload: PAUSE }))

t.test('the API on a hot standby', async (t) => {
  const { app } = await startTestApp(t, { db: primary, env: { DATABASE_URL: standby.apiUrl } })
  await writeRow(primary.admin, { instance_id: 'written-on-the-primary' })
  await standby.caughtUp()

  t.test('reads the row replicated from the primary', async (t) => {
    const [recovery] = await standby.admin<Array<{ in: boolean }>>`select pg_is_in_recovery() as in`
    t.equal(recovery?.in, true, 'the database is a real hot standby')
    const heartbeat = assertHeartbeatAnswer(fromInject(await app.inject({ url: '/heartbeat', headers: reader })))
    t.equal(heartbeat.heartbeat.instance_id, 'written-on-the-primary')
    t.equal(assertLivenessAnswer(fromInject(await app.inject({ url: '/heartbeat/liveness' })), false).state, 'alive')
    const metrics = await app.inject({ url: '/metrics', headers: reader })
    t.equal(metrics.statusCode, 200)
    t.match(metrics.body, /eva_heartbeat_api_database_up 1/)
  })

  t.test('a PATCH: 503 database_read_only, the row unchanged on the primary and the standby, still serving', async (t) => {
    const before = await rowText(primary.admin)
    t.equal(await rowText(standby.admin), before)
    assertReadOnlyProblem(t, await patchHeartbeat(app))
    // An If-Match does not turn it into a 412: nothing can be written whatever the precondition says.
    assertReadOnlyProblem(t, fromInject(await app.inject({
      method: 'PATCH', url: '/heartbeat', headers: { ...service, 'content-type': 'application/json', 'if-match': '"stale"' }, payload: PAUSE
    })))
    await standby.caughtUp()
    t.equal(await rowText(primary.admin), before, 'the primary\'s row is unchanged')
    t.equal(await rowText(standby.admin), before, 'the standby\'s row is unchanged')
    const after = assertHeartbeatAnswer(fromInject(await app.inject({ url: '/heartbeat', headers: reader })))
    t.equal(after.heartbeat.status, 'running', 'reads still served, the row as it was')
  })

  t.test('/readyz: ready (reads are served), and writes are impossible', async (t) => {
    const anonymous = await app.inject({ url: '/readyz' })
    t.equal(anonymous.statusCode, 200)
    t.same(anonymous.json(), { status: 'pass', checks: { database: { status: 'pass' }, table: { status: 'pass' }, policies: { status: 'pass' }, writes: { status: 'warn' } } }, 'anyone: the warn')
    const res = await app.inject({ url: '/readyz', headers: service })
    t.equal(res.statusCode, 200)
    const body = res.json<Readiness>()
    t.match(body, { status: 'pass', checks: { database: { status: 'pass' }, table: { status: 'pass' }, policies: { status: 'pass' }, writes: { status: 'warn' } } })
    t.match(body.checks.writes?.output, /^impossible: the database is read-only \(hot standby/)
    t.match(body.checks.writes?.output, /database_read_only/)
    t.match(body.checks.writes?.output, /Point DATABASE_URL at the primary/)
  })
})

t.test('the process started with a hot standby as DATABASE_URL', async (t) => {
  await writeRow(primary.admin, { instance_id: 'seen-by-the-process' })
  await standby.caughtUp()
  const before = await rowText(primary.admin)
  const server = startServer(t, { DATABASE_URL: standby.apiUrl, JWT_SECRET: TEST_SECRET, PORT: '0', LOG_LEVEL: 'info' })
  const { address } = await server.ready(60_000)
  const warning = server.logLines().find((line) => line.code === 'database_read_only')
  t.match(warning, { level: 40, msg: /^DATABASE_URL: writes impossible: the database is read-only \(hot standby/ }, 'the start says so, once')

  const ready = await fetch(`${address}/readyz`, { headers: service })
  t.equal(ready.status, 200, 'the start\'s table and policy check passed, and it is ready for reads')
  t.match(await ready.json(), { status: 'pass', checks: { writes: { status: 'warn', output: /^impossible: the database is read-only/ } } })

  const events = await connectSse(`${address}/heartbeat/events`, reader)
  t.teardown(events.close)
  t.equal(events.status, 200)
  t.equal(dataOf(await events.next(isHeartbeat, 15_000, 0)).heartbeat?.instance_id, 'seen-by-the-process', 'the event stream reads the replica')

  assertReadOnlyProblem(t, await fromFetch(await fetch(`${address}/heartbeat`, {
    method: 'PATCH', headers: { ...service, 'content-type': 'application/json' }, body: JSON.stringify(PAUSE)
  })))
  await eventually(() => server.logLines().some((line) => line.level === 40 && line.code === 'database_read_only' && line.status === 503), 10_000, 'the refusal logged at warn')
  t.notOk(server.logLines().some((line) => Number(line.level) >= 50), 'nothing logged as an error')
  t.ok(server.running, 'the process keeps serving')
  assertHeartbeatAnswer(await fromFetch(await fetch(`${address}/heartbeat`, { headers: reader })))
  t.equal(await rowText(primary.admin), before, 'nothing written')
})

// Last: the setting is replicated to the standby too (harmless there: it is read-only anyway).
t.test('a primary whose API login role has default_transaction_read_only on: the same answers', async (t) => {
  await primary.admin.unsafe('alter role authenticator set default_transaction_read_only = on')
  t.teardown(async () => { await primary.admin.unsafe('alter role authenticator reset default_transaction_read_only') })
  const { app } = await startTestApp(t, { db: primary })
  const before = await rowText(primary.admin)

  assertHeartbeatAnswer(fromInject(await app.inject({ url: '/heartbeat', headers: reader })))
  assertReadOnlyProblem(t, await patchHeartbeat(app))
  t.equal(await rowText(primary.admin), before, 'the row is unchanged')

  const res = await app.inject({ url: '/readyz', headers: service })
  t.equal(res.statusCode, 200)
  const body = res.json<Readiness>()
  t.match(body, { status: 'pass', checks: { writes: { status: 'warn' } } })
  t.match(body.checks.writes?.output, /^impossible: the database is read-only \(default_transaction_read_only is on/)
})
