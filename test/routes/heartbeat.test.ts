// GET/HEAD /heartbeat and /heartbeat/liveness against a real PostgreSQL server: every verdict state that a row can
// produce (unknown is in test/db/outage.test.ts), the query parameters, the cache validators and HEAD.
import type { LightMyRequestResponse } from 'fastify'
import t, { type Test } from 'tap'
import type { Liveness } from '../../src/domain/liveness.js'
import { bearer, deleteRow, startTestApp, writeRow, type RowShape } from '../helpers/app.js'

const { app, db } = await startTestApp(t)
const reader = await bearer('authenticated')

const LIVENESS_FIELDS = ['status', 'state', 'checked_at', 'last_poll_at', 'next_poll_at', 'seconds_since_last_poll', 'seconds_overdue', 'grace_seconds']
const HEARTBEAT_COLUMNS = ['id', 'instance_id', 'started_at', 'last_poll_at', 'next_poll_at', 'poll_count', 'dispatch_count',
  'error_count', 'circuit_breaker_state', 'paused_reason', 'status', 'metadata', 'updated_at']
const ISO_MS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/
const HEALTH_JSON = /^application\/health\+json(;|$)/
const PROBLEM_JSON = /^application\/problem\+json(;|$)/

type LivenessBody = Liveness
interface HeartbeatBody {
  heartbeat: Record<string, unknown>
  liveness: LivenessBody
}
interface ProblemBody { type: string, title: string, status: number, detail: string, code: string }

interface DbRow {
  instance_id: string
  started_at: Date
  last_poll_at: Date | null
  next_poll_at: Date | null
  updated_at: Date
  paused_reason: string | null
  circuit_breaker_state: string | null
  status: string
  poll_count: number
  dispatch_count: number
  error_count: number
  metadata: unknown
}

async function dbRow (): Promise<DbRow> {
  const [row] = await db.admin<DbRow[]>`select * from public.eva_scheduler_heartbeat where id = 1`
  if (row === undefined) throw new Error('no row')
  return row
}

async function dbNow (): Promise<number> {
  const [row] = await db.admin<Array<{ now: Date }>>`select now() as now`
  if (row === undefined) throw new Error('no now()')
  return row.now.getTime()
}

const liveness = async (query = '', method: 'GET' | 'HEAD' = 'GET'): Promise<LightMyRequestResponse> =>
  await app.inject({ method, url: `/heartbeat/liveness${query}` })
const heartbeat = async (query = '', headers: Record<string, string> = {}, method: 'GET' | 'HEAD' = 'GET'): Promise<LightMyRequestResponse> =>
  await app.inject({ method, url: `/heartbeat${query}`, headers: { ...reader, ...headers } })

/** Everything the contract says about a liveness answer, whatever the state. */
function checkLivenessAnswer (t: Test, res: LightMyRequestResponse, expected: { code: number, status: string, state: string }): LivenessBody {
  t.equal(res.statusCode, expected.code, 'HTTP status')
  t.match(res.headers['content-type'], HEALTH_JSON, 'application/health+json')
  t.equal(res.headers['cache-control'], 'no-store')
  if (expected.code === 503) {
    t.match(String(res.headers['retry-after']), /^[1-9]\d*$/, 'Retry-After is a whole number of seconds, at least 1')
  } else {
    t.notOk('retry-after' in res.headers, 'no Retry-After on a 200')
  }
  const body = res.json<LivenessBody>()
  t.equal(res.body, JSON.stringify(body), 'compact JSON')
  t.equal(body.status, expected.status)
  t.equal(body.state, expected.state)
  checkLivenessBody(t, body)
  return body
}

/** The liveness object's shape, in /heartbeat/liveness and inside /heartbeat alike. */
function checkLivenessBody (t: Test, body: LivenessBody): void {
  const fields = body.status === 'pass' ? LIVENESS_FIELDS : [...LIVENESS_FIELDS, 'output']
  t.same(Object.keys(body).sort(), [...fields].sort(), 'exactly the contract\'s fields (output iff not pass)')
  if (body.status !== 'pass') {
    t.type(body.output, 'string')
    t.ok((body.output ?? '').length > 10, 'output is a sentence')
    t.notMatch(JSON.stringify(body), /pass/i, 'the word pass never appears in a non-pass body')
  }
  t.match(body.checked_at, ISO_MS)
  for (const field of ['last_poll_at', 'next_poll_at'] as const) {
    const value = body[field]
    if (value !== null) t.match(value, ISO_MS, `${field} is ISO 8601 UTC with ms`)
  }
  for (const field of ['seconds_since_last_poll', 'seconds_overdue', 'grace_seconds'] as const) {
    const value = body[field]
    if (value !== null) {
      t.type(value, 'number')
      t.equal(Math.round(value * 1000) / 1000, value, `${field} has at most millisecond precision`)
    }
  }
}

/** The row's columns as /heartbeat must show them. */
function checkHeartbeatMatchesRow (t: Test, shown: Record<string, unknown>, row: DbRow): void {
  t.same(Object.keys(shown).sort(), [...HEARTBEAT_COLUMNS].sort(), 'all 13 columns')
  const iso = (date: Date | null): string | null => date === null ? null : date.toISOString()
  t.same(shown, {
    id: 1,
    instance_id: row.instance_id,
    started_at: iso(row.started_at),
    last_poll_at: iso(row.last_poll_at),
    next_poll_at: iso(row.next_poll_at),
    poll_count: row.poll_count,
    dispatch_count: row.dispatch_count,
    error_count: row.error_count,
    circuit_breaker_state: row.circuit_breaker_state,
    paused_reason: row.paused_reason,
    status: row.status,
    metadata: row.metadata,
    updated_at: iso(row.updated_at)
  }, 'the row as stored')
  for (const column of ['started_at', 'last_poll_at', 'next_poll_at', 'updated_at']) {
    const value = shown[column]
    if (value !== null) t.match(value, ISO_MS, `${column} is ISO 8601 UTC with ms`)
  }
}

// --- every state a row can produce ------------------------------------------------------------------------------

interface StateCase {
  name: string
  shape: RowShape
  state: string
  status: 'pass' | 'warn' | 'fail'
  code: 200 | 503
  /** Numbers that follow from the row, in seconds; ages grow while the test runs, so those are lower bounds. */
  grace: number
  /** null: the field must be null because its input is. */
  sinceAtLeast: number | null
  overdueAtLeast: number | null
}

const PAUSE_REASON = 'deploy-7f3a9c'

const STATES: StateCase[] = [
  {
    name: 'an operator pause of a stopping scheduler',
    shape: { status: 'stopping', paused_reason: PAUSE_REASON },
    state: 'paused', status: 'warn', code: 200, grace: 180, sinceAtLeast: 10, overdueAtLeast: 0
  },
  {
    name: 'an operator pause of a stopped scheduler with old timestamps (the pause silences staleness)',
    shape: { status: 'stopped', paused_reason: PAUSE_REASON, lastPollAgo: 4000, nextPollIn: -3940 },
    state: 'paused', status: 'warn', code: 200, grace: 180, sinceAtLeast: 4000, overdueAtLeast: 3940
  },
  {
    name: 'a graceful stop without a pause',
    shape: { status: 'stopped', lastPollAgo: 1, nextPollIn: 59 },
    state: 'stopped', status: 'fail', code: 503, grace: 180, sinceAtLeast: 1, overdueAtLeast: 0
  },
  {
    name: 'a crashed scheduler: running, timestamps long past',
    shape: { lastPollAgo: 9_072_000, nextPollIn: -9_071_940 },
    state: 'stale', status: 'fail', code: 503, grace: 180, sinceAtLeast: 9_072_000, overdueAtLeast: 9_071_940
  },
  {
    name: 'a scheduler that died with its breaker open still goes stale',
    shape: { circuit_breaker_state: 'OPEN', paused_reason: 'circuit_breaker_open', lastPollAgo: 600, nextPollIn: -540 },
    state: 'stale', status: 'fail', code: 503, grace: 180, sinceAtLeast: 600, overdueAtLeast: 540
  },
  {
    name: 'no next poll announced and updated_at older than the grace',
    shape: { lastPollAgo: null, nextPollIn: null, updatedAgo: 120 },
    state: 'stale', status: 'fail', code: 503, grace: 60, sinceAtLeast: null, overdueAtLeast: null
  },
  {
    name: 'a scheduler shutting down',
    shape: { status: 'stopping' },
    state: 'stopping', status: 'warn', code: 200, grace: 180, sinceAtLeast: 10, overdueAtLeast: 0
  },
  {
    name: 'an open circuit breaker (written by the scheduler, not a pause)',
    shape: { circuit_breaker_state: 'OPEN', paused_reason: 'circuit_breaker_open' },
    state: 'circuit_open', status: 'warn', code: 200, grace: 180, sinceAtLeast: 10, overdueAtLeast: 0
  },
  {
    name: 'a half-open circuit breaker',
    shape: { circuit_breaker_state: 'HALF_OPEN' },
    state: 'degraded', status: 'warn', code: 200, grace: 180, sinceAtLeast: 10, overdueAtLeast: 0
  },
  {
    name: 'a breaker value nobody declared',
    shape: { circuit_breaker_state: 'WOBBLY' },
    state: 'degraded', status: 'warn', code: 200, grace: 180, sinceAtLeast: 10, overdueAtLeast: 0
  },
  {
    name: 'a scheduler that has not announced its first poll yet',
    shape: { lastPollAgo: null, nextPollIn: null, updatedAgo: 5 },
    state: 'starting', status: 'pass', code: 200, grace: 60, sinceAtLeast: null, overdueAtLeast: null
  },
  {
    name: 'a poll a little overdue',
    shape: { lastPollAgo: 70, nextPollIn: -10 },
    state: 'late', status: 'warn', code: 200, grace: 180, sinceAtLeast: 70, overdueAtLeast: 10
  },
  {
    name: 'a healthy scheduler',
    shape: {},
    state: 'alive', status: 'pass', code: 200, grace: 180, sinceAtLeast: 10, overdueAtLeast: 0
  },
  {
    name: 'a null breaker state is not degraded',
    shape: { circuit_breaker_state: null },
    state: 'alive', status: 'pass', code: 200, grace: 180, sinceAtLeast: 10, overdueAtLeast: 0
  }
]

// A loaded machine may take a while between the write and the read; ages may only grow by this much.
const SLACK_SECONDS = 30

for (const c of STATES) {
  t.test(`${c.state}: ${c.name}`, async (t) => {
    await writeRow(db.admin, { ...c.shape, paused_reason: c.shape.paused_reason ?? null })
    const row = await dbRow()
    const before = await dbNow()

    const live = checkLivenessAnswer(t, await liveness(), c)
    t.notOk(JSON.stringify(live).includes(PAUSE_REASON), 'no paused_reason in the liveness body')
    t.notOk(JSON.stringify(live).includes('scheduler-0a1b2c3d'), 'no instance_id in the liveness body')
    t.equal(live.last_poll_at, row.last_poll_at === null ? null : row.last_poll_at.toISOString())
    t.equal(live.next_poll_at, row.next_poll_at === null ? null : row.next_poll_at.toISOString())
    t.equal(live.grace_seconds, c.grace, 'grace_seconds')
    for (const [field, least] of [['seconds_since_last_poll', c.sinceAtLeast], ['seconds_overdue', c.overdueAtLeast]] as const) {
      const value = live[field]
      if (least === null) {
        t.equal(value, null, `${field} is null when its input is`)
        continue
      }
      t.ok(value !== null && value >= least && value <= least + SLACK_SECONDS, `${field} ${String(value)} is about ${least}`)
    }
    const checkedAt = Date.parse(live.checked_at)
    const after = await dbNow()
    t.ok(checkedAt >= before && checkedAt <= after, 'checked_at is the database\'s now()')

    const strict = await liveness('?strict=true')
    const strictCode = c.status === 'pass' ? 200 : 503
    checkLivenessAnswer(t, strict, { ...c, code: strictCode })

    const res = await heartbeat()
    t.equal(res.statusCode, 200)
    t.match(res.headers['content-type'], /^application\/json(;|$)/)
    const body = res.json<HeartbeatBody>()
    t.same(Object.keys(body).sort(), ['heartbeat', 'liveness'])
    checkHeartbeatMatchesRow(t, body.heartbeat, row)
    t.equal(body.liveness.state, c.state)
    t.equal(body.liveness.status, c.status)
    checkLivenessBody(t, body.liveness)
    t.equal(res.headers['last-modified'], row.updated_at.toUTCString(), 'Last-Modified is updated_at')
  })
}

t.test('missing: no row', async (t) => {
  await deleteRow(db.admin)
  const live = checkLivenessAnswer(t, await liveness(), { code: 503, status: 'fail', state: 'missing' })
  t.same({ ...live, checked_at: 'x', output: 'x' }, {
    status: 'fail',
    state: 'missing',
    checked_at: 'x',
    last_poll_at: null,
    next_poll_at: null,
    seconds_since_last_poll: null,
    seconds_overdue: null,
    grace_seconds: null,
    output: 'x'
  }, 'every field whose input is null is null')

  const res = await heartbeat()
  t.equal(res.statusCode, 404)
  t.match(res.headers['content-type'], PROBLEM_JSON)
  const problem = res.json<ProblemBody>()
  t.equal(problem.code, 'heartbeat_not_found')
  t.equal(problem.status, 404)
  t.type(problem.type, 'string')
  t.type(problem.title, 'string')
  t.type(problem.detail, 'string')
  t.notOk('etag' in res.headers, 'no ETag without a row')

  const head = await heartbeat('', {}, 'HEAD')
  t.equal(head.statusCode, 404)
  t.equal(head.body, '')
  const headLive = await liveness('', 'HEAD')
  t.equal(headLive.statusCode, 503)
  t.equal(headLive.body, '')
  t.match(String(headLive.headers['retry-after']), /^[1-9]\d*$/)
})

// --- specific numbers from the contract and domain.md ----------------------------------------------------------------

t.test('an idle scheduler (interval stretched to 3x, next_poll_at 170 s past) is late, not stale', async (t) => {
  await writeRow(db.admin, { lastPollAgo: 230, nextPollIn: -170 })
  const body = checkLivenessAnswer(t, await liveness(), { code: 200, status: 'warn', state: 'late' })
  t.equal(body.grace_seconds, 180, 'grace = 3 x the announced 60 s interval')
  t.ok(body.seconds_overdue !== null && body.seconds_overdue >= 170 && body.seconds_overdue < 180, 'about 170 s overdue')
  t.ok(body.seconds_since_last_poll !== null && body.seconds_since_last_poll >= 230, 'about 230 s since the last poll')
  t.match(body.output, /late/)
})

t.test('clock skew: a last poll in the future is reported as a negative age', async (t) => {
  await writeRow(db.admin, { lastPollAgo: -30, nextPollIn: 90 })
  const body = checkLivenessAnswer(t, await liveness(), { code: 200, status: 'pass', state: 'alive' })
  t.ok(body.seconds_since_last_poll !== null && body.seconds_since_last_poll < 0 && body.seconds_since_last_poll >= -30,
    `seconds_since_last_poll ${String(body.seconds_since_last_poll)} is negative`)
  const res = await heartbeat()
  t.equal(res.statusCode, 200)
  const hb = res.json<HeartbeatBody>()
  t.ok(hb.liveness.seconds_since_last_poll !== null && hb.liveness.seconds_since_last_poll < 0, 'negative in /heartbeat too')

  await writeRow(db.admin, { status: 'stopping', lastPollAgo: -30, nextPollIn: 90 })
  const warn = checkLivenessAnswer(t, await liveness(), { code: 200, status: 'warn', state: 'stopping' })
  t.match(warn.output, /clock/, 'the sentence mentions the skew')
})

// --- query parameters ----------------------------------------------------------------------------------------------

t.test('?strict=true turns warn into 503; strict=false and pass stay 200', async (t) => {
  await writeRow(db.admin, { lastPollAgo: 70, nextPollIn: -10 })
  checkLivenessAnswer(t, await liveness(), { code: 200, status: 'warn', state: 'late' })
  checkLivenessAnswer(t, await liveness('?strict=false'), { code: 200, status: 'warn', state: 'late' })
  checkLivenessAnswer(t, await liveness('?strict=true'), { code: 503, status: 'warn', state: 'late' })
  await writeRow(db.admin)
  checkLivenessAnswer(t, await liveness('?strict=true'), { code: 200, status: 'pass', state: 'alive' })
})

t.test('?grace=SECONDS replaces the grace rule', async (t) => {
  // 100 s overdue on a 60 s interval: late with the default grace of 180 s.
  await writeRow(db.admin, { lastPollAgo: 160, nextPollIn: -100 })
  const byDefault = checkLivenessAnswer(t, await liveness(), { code: 200, status: 'warn', state: 'late' })
  t.equal(byDefault.grace_seconds, 180)
  const short = checkLivenessAnswer(t, await liveness('?grace=10'), { code: 503, status: 'fail', state: 'stale' })
  t.equal(short.grace_seconds, 10)
  const long = checkLivenessAnswer(t, await liveness('?grace=3600'), { code: 200, status: 'warn', state: 'late' })
  t.equal(long.grace_seconds, 3600)
  const fractional = checkLivenessAnswer(t, await liveness('?grace=99.5'), { code: 503, status: 'fail', state: 'stale' })
  t.equal(fractional.grace_seconds, 99.5)

  const res = await heartbeat('?grace=10')
  t.equal(res.statusCode, 200)
  t.equal(res.json<HeartbeatBody>().liveness.state, 'stale', '/heartbeat takes ?grace= too')
  t.equal(res.json<HeartbeatBody>().liveness.grace_seconds, 10)

  // The bounds themselves are accepted.
  const zero = checkLivenessAnswer(t, await liveness('?grace=0'), { code: 503, status: 'fail', state: 'stale' })
  t.equal(zero.grace_seconds, 0)
  const most = checkLivenessAnswer(t, await liveness('?grace=86400'), { code: 200, status: 'warn', state: 'late' })
  t.equal(most.grace_seconds, 86400)

  // A grace smaller than the configured floor still wins: it replaces the rule, it is not a minimum.
  await writeRow(db.admin, { lastPollAgo: 65, nextPollIn: -5 })
  checkLivenessAnswer(t, await liveness('?grace=1'), { code: 503, status: 'fail', state: 'stale' })
})

for (const query of ['?grace=abc', '?grace=-1', '?grace=86401', '?grace=', '?grace=NaN', '?grace=Infinity', '?grace=1e999', '?grace=0x10', '?grace=%2B5', '?strict=maybe', '?grace=10&grace=20']) {
  t.test(`${query} is a 400 problem on both routes`, async (t) => {
    await writeRow(db.admin)
    for (const res of [await liveness(query), await heartbeat(query)]) {
      t.equal(res.statusCode, 400, `${String(res.raw.req.url)}`)
      t.match(res.headers['content-type'], PROBLEM_JSON)
      const problem = res.json<ProblemBody>()
      t.equal(problem.code, 'invalid_request')
      t.equal(problem.status, 400)
      t.match(problem.detail, query.startsWith('?strict') ? /strict/ : /grace/, 'the detail names the parameter')
    }
  })
}

// --- HEAD ------------------------------------------------------------------------------------------------------------

const COMPARED_HEADERS = ['content-type', 'cache-control', 'retry-after', 'etag', 'last-modified']
function checkHeadLikeGet (t: Test, head: LightMyRequestResponse, get: LightMyRequestResponse): void {
  t.equal(head.statusCode, get.statusCode, 'same status')
  t.equal(head.body, '', 'empty body')
  for (const name of COMPARED_HEADERS) t.equal(head.headers[name], get.headers[name], `same ${name}`)
}

t.test('HEAD answers like GET without a body', async (t) => {
  // Stable verdicts (alive well before next_poll_at; stale whose Retry-After is the announced interval).
  await writeRow(db.admin)
  checkHeadLikeGet(t, await liveness('', 'HEAD'), await liveness())
  checkHeadLikeGet(t, await heartbeat('', {}, 'HEAD'), await heartbeat())

  await writeRow(db.admin, { lastPollAgo: 1000, nextPollIn: -940 })
  const get = await liveness()
  t.equal(get.statusCode, 503)
  checkHeadLikeGet(t, await liveness('', 'HEAD'), get)
  checkHeadLikeGet(t, await heartbeat('', {}, 'HEAD'), await heartbeat())
  checkHeadLikeGet(t, await liveness('?grace=abc', 'HEAD'), await liveness('?grace=abc'))

  const etag = String((await heartbeat()).headers.etag)
  const notModified = await heartbeat('', { 'if-none-match': etag }, 'HEAD')
  t.equal(notModified.statusCode, 304)
  t.equal(notModified.headers.etag, etag)
  t.equal(notModified.body, '')
})

// --- validators --------------------------------------------------------------------------------------------------------

t.test('/heartbeat validators: strong ETag, Last-Modified, no-cache, 304', async (t) => {
  await writeRow(db.admin, { updatedAgo: 42 })
  const row = await dbRow()
  const first = await heartbeat()
  t.equal(first.statusCode, 200)
  const etag = first.headers.etag
  t.match(etag, /^"[^"]+"$/, 'a strong ETag')
  t.equal(first.headers['cache-control'], 'no-cache')
  t.equal(first.headers['last-modified'], row.updated_at.toUTCString())
  t.match(first.headers['last-modified'], /^[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT$/, 'an HTTP-date')

  const again = await heartbeat()
  t.equal(again.headers.etag, etag, 'an unchanged row keeps its ETag')

  const hit = await heartbeat('', { 'if-none-match': String(etag) })
  t.equal(hit.statusCode, 304)
  t.equal(hit.headers.etag, etag, '304 carries the ETag')
  t.equal(hit.headers['cache-control'], 'no-cache')
  t.equal(hit.body, '')
  t.notOk('content-length' in hit.headers, 'no Content-Length: a 304 announces no body (a fetch client would wait for it)')

  const listed = await heartbeat('', { 'if-none-match': `"something-else", ${String(etag)}` })
  t.equal(listed.statusCode, 304, 'a list of tags that holds the current one')

  const weak = await heartbeat('', { 'if-none-match': `W/${String(etag)}` })
  t.equal(weak.statusCode, 304, 'If-None-Match compares weakly')

  const miss = await heartbeat('', { 'if-none-match': '"an-old-etag"' })
  t.equal(miss.statusCode, 200)
  t.equal(miss.json<HeartbeatBody>().heartbeat.id, 1)

  // The scheduler writes again: a new row is a new ETag, the old one no longer matches.
  await writeRow(db.admin, { updatedAgo: 0, poll_count: 8 })
  const written = await heartbeat()
  t.not(written.headers.etag, etag, 'a new write gives a new ETag')
  const stale = await heartbeat('', { 'if-none-match': String(etag) })
  t.equal(stale.statusCode, 200, 'the old ETag is no longer current')
  t.equal(stale.json<HeartbeatBody>().heartbeat.poll_count, 8)
  t.equal(written.headers['last-modified'], (await dbRow()).updated_at.toUTCString(), 'Last-Modified follows updated_at')
})

t.test('the ETag follows the row: alive → late by moving next_poll_at', async (t) => {
  await writeRow(db.admin)
  const alive = await heartbeat()
  t.equal(alive.json<HeartbeatBody>().liveness.state, 'alive')
  await db.admin`update public.eva_scheduler_heartbeat set next_poll_at = now() - interval '5 seconds' where id = 1`
  const late = await heartbeat()
  t.equal(late.json<HeartbeatBody>().liveness.state, 'late')
  t.not(late.headers.etag, alive.headers.etag)
  t.equal((await heartbeat('', { 'if-none-match': String(alive.headers.etag) })).statusCode, 200)
})

t.test('the ETag follows the verdict when the row stays the same', async (t) => {
  await writeRow(db.admin, { lastPollAgo: 160, nextPollIn: -100 })
  const rowBefore = await dbRow()
  const late = await heartbeat('?grace=3600')
  const stale = await heartbeat('?grace=10')
  t.same(await dbRow(), rowBefore, 'the row did not change')
  t.equal(late.json<HeartbeatBody>().liveness.state, 'late')
  t.equal(stale.json<HeartbeatBody>().liveness.state, 'stale')
  t.same(late.json<HeartbeatBody>().heartbeat, stale.json<HeartbeatBody>().heartbeat, 'the same row shown')
  t.not(late.headers.etag, stale.headers.etag, 'another verdict, another ETag')
  t.equal((await heartbeat('?grace=10', { 'if-none-match': String(late.headers.etag) })).statusCode, 200,
    'a tag taken while late does not match once stale')
  t.equal((await heartbeat('?grace=10', { 'if-none-match': String(stale.headers.etag) })).statusCode, 304)
})

t.test('service_role reads /heartbeat too', async (t) => {
  await writeRow(db.admin)
  const res = await app.inject({ url: '/heartbeat', headers: await bearer('service_role') })
  t.equal(res.statusCode, 200)
  t.equal(res.json<HeartbeatBody>().liveness.state, 'alive')
})
