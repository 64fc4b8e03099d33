// The database goes away under a running app and comes back on the same port: every route answers quickly with what
// it knows (503 unknown / database_unavailable, /livez still 200), and the app recovers without a restart.
import type { LightMyRequestResponse } from 'fastify'
import t from 'tap'
import { READINESS_REUSE_MS } from '../../src/db/readiness.js'
import { bearer, startTestApp, writeRow } from '../helpers/app.js'
import { LOADED_MARGIN_MS } from '../helpers/wait.js'

const STATEMENT_TIMEOUT_MS = 1000
// The statement timeout plus a margin no loaded machine reaches (the same bound as the lock and kill cases in
// test/faults/): it tells an answer from a request left waiting for the database to come back.
const ANSWER_WITHIN_MS = STATEMENT_TIMEOUT_MS + LOADED_MARGIN_MS
const RECOVERY_WITHIN_MS = 15_000

const { app, db } = await startTestApp(t, { env: { DB_STATEMENT_TIMEOUT_MS: String(STATEMENT_TIMEOUT_MS) } })
const reader = await bearer('authenticated')

interface LivenessBody { status: string, state: string, checked_at: string, output?: string, [field: string]: unknown }
interface ProblemBody { type: string, title: string, status: number, detail: string, code: string }

async function timed (request: () => Promise<LightMyRequestResponse>): Promise<{ res: LightMyRequestResponse, ms: number }> {
  const started = performance.now()
  const res = await request()
  return { res, ms: performance.now() - started }
}

const liveness = async (): Promise<LightMyRequestResponse> => await app.inject({ url: '/heartbeat/liveness' })

t.test('a database outage: quick 503s, /livez unaffected, recovery without a restart', async (t) => {
  // Far from due, so the row stays alive through the whole outage.
  await writeRow(db.admin, { lastPollAgo: 1, nextPollIn: 300 })
  const before = await liveness()
  t.equal(before.statusCode, 200)
  t.equal(before.json<LivenessBody>().state, 'alive', 'alive before the outage')
  const port = db.server.port

  await db.server.stop()

  await t.test('liveness is unknown, with Retry-After', async (t) => {
    const { res, ms } = await timed(liveness)
    t.ok(ms < ANSWER_WITHIN_MS, `answered in ${Math.round(ms)} ms`)
    t.equal(res.statusCode, 503)
    t.match(res.headers['content-type'], /^application\/health\+json(;|$)/)
    t.equal(res.headers['cache-control'], 'no-store')
    t.match(String(res.headers['retry-after']), /^[1-9]\d*$/)
    const body = res.json<LivenessBody>()
    t.same(body, {
      status: 'fail',
      state: 'unknown',
      checked_at: body.checked_at,
      last_poll_at: null,
      next_poll_at: null,
      seconds_since_last_poll: null,
      seconds_overdue: null,
      grace_seconds: null,
      output: body.output
    }, 'nothing is claimed about the row')
    t.match(body.checked_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
    t.type(body.output, 'string')
    t.notMatch(res.body, /pass/i)

    const head = await app.inject({ method: 'HEAD', url: '/heartbeat/liveness' })
    t.equal(head.statusCode, 503)
    t.equal(head.body, '')
    t.match(String(head.headers['retry-after']), /^[1-9]\d*$/)
  })

  await t.test('/heartbeat is a database_unavailable problem', async (t) => {
    const { res, ms } = await timed(async () => await app.inject({ url: '/heartbeat', headers: reader }))
    t.ok(ms < ANSWER_WITHIN_MS, `answered in ${Math.round(ms)} ms`)
    t.equal(res.statusCode, 503)
    t.match(res.headers['content-type'], /^application\/problem\+json(;|$)/)
    t.match(String(res.headers['retry-after']), /^[1-9]\d*$/)
    t.notOk('etag' in res.headers, 'no validator for an answer that holds no row')
    const body = res.json<ProblemBody>()
    t.equal(body.code, 'database_unavailable')
    t.equal(body.status, 503)
    t.notMatch(res.body, /ECONNREFUSED|127\.0\.0\.1|postgres|stack|at .*\.js/i, 'nothing internal leaks')
  })

  await t.test('/readyz fails its database check', async (t) => {
    const { res, ms } = await timed(async () => await app.inject({ url: '/readyz' }))
    t.ok(ms < ANSWER_WITHIN_MS, `answered in ${Math.round(ms)} ms`)
    t.equal(res.statusCode, 503)
    t.match(res.headers['content-type'], /^application\/health\+json(;|$)/)
    const body = res.json<{ status: string, checks: Record<string, { status: string, output?: string }> }>()
    t.equal(body.status, 'fail')
    t.equal(body.checks.database?.status, 'fail')
  })

  await t.test('/livez still passes', async (t) => {
    const { res, ms } = await timed(async () => await app.inject({ url: '/livez' }))
    t.ok(ms < ANSWER_WITHIN_MS, `answered in ${Math.round(ms)} ms`)
    t.equal(res.statusCode, 200)
    t.equal(res.body, '{"status":"pass"}')
  })

  await t.test('many requests at once during the outage all answer 503, none 500', async (t) => {
    const started = performance.now()
    const answers = await Promise.all(Array.from({ length: 20 }, async (_, i) =>
      await (i % 2 === 0 ? liveness() : app.inject({ url: '/heartbeat', headers: reader }))))
    const ms = performance.now() - started
    t.ok(ms < ANSWER_WITHIN_MS, `all answered in ${Math.round(ms)} ms`)
    t.same(answers.map((res) => res.statusCode), answers.map(() => 503))
  })

  await t.test('the server comes back on the same port and the app recovers by itself', async (t) => {
    await db.server.start()
    t.equal(db.server.port, port, 'same port')
    const deadline = Date.now() + RECOVERY_WITHIN_MS
    let last = await liveness()
    while (last.statusCode !== 200 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 250))
      last = await liveness()
    }
    t.equal(last.statusCode, 200, `liveness recovered within ${RECOVERY_WITHIN_MS / 1000} s`)
    t.equal(last.json<LivenessBody>().state, 'alive')

    const heartbeat = await app.inject({ url: '/heartbeat', headers: reader })
    t.equal(heartbeat.statusCode, 200)
    t.equal(heartbeat.json<{ heartbeat: { id: number } }>().heartbeat.id, 1)
    await new Promise((resolve) => setTimeout(resolve, READINESS_REUSE_MS)) // the outage's failed check is reused that long
    const ready = await app.inject({ url: '/readyz' })
    t.equal(ready.statusCode, 200)
  })
})

t.test('a login the server refuses reads as unavailable, not as a crash', async (t) => {
  const url = new URL(db.apiUrl)
  for (const [what, login] of [['an unknown role', 'nobody_here'], ['an unknown database', undefined]] as const) {
    const target = new URL(url)
    if (login !== undefined) target.username = login
    else target.pathname = '/no_such_database'
    const { app: refused } = await startTestApp(t, { db, env: { DATABASE_URL: target.toString(), DB_STATEMENT_TIMEOUT_MS: String(STATEMENT_TIMEOUT_MS) } })
    const { res: live, ms } = await timed(async () => await refused.inject({ url: '/heartbeat/liveness' }))
    t.ok(ms < ANSWER_WITHIN_MS, `${what}: answered in ${Math.round(ms)} ms`)
    t.equal(live.statusCode, 503, `${what}: liveness 503`)
    t.equal(live.json<LivenessBody>().state, 'unknown', `${what}: state unknown`)
    t.match(String(live.headers['retry-after']), /^[1-9]\d*$/)
    const { res: read, ms: readMs } = await timed(async () => await refused.inject({ url: '/heartbeat', headers: reader }))
    t.ok(readMs < ANSWER_WITHIN_MS, `${what}: answered in ${Math.round(readMs)} ms`)
    t.equal(read.statusCode, 503, `${what}: /heartbeat 503`)
    t.equal(read.json<ProblemBody>().code, 'database_unavailable')
    const { res: ready, ms: readyMs } = await timed(async () => await refused.inject({ url: '/readyz' }))
    t.ok(readyMs < ANSWER_WITHIN_MS, `${what}: answered in ${Math.round(readyMs)} ms`)
    t.equal(ready.statusCode, 503, `${what}: /readyz 503`)
  }
})
