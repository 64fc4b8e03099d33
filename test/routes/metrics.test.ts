// GET /metrics against rows written in a real database: every verdict state, the row's values, counters across a
// scheduler restart, authentication, the API's own request metrics, and a scrape while the database is down.
import t from 'tap'
import { bearer, deleteRow, startTestApp, writeRow, type RowShape } from '../helpers/app.js'
import { parseSamples, series, stateSet, valueOf, type Sample } from '../helpers/prometheus.js'
import { LIVENESS_STATES } from '../../src/domain/schemas.js'

const PROMETHEUS_TEXT = 'text/plain; version=0.0.4; charset=utf-8'

const { app, db } = await startTestApp(t)
const reader = await bearer('authenticated')

async function scrape (): Promise<Sample[]> {
  const res = await app.inject({ url: '/metrics', headers: reader })
  if (res.statusCode !== 200) throw new Error(`/metrics answered ${res.statusCode}: ${res.body}`)
  return parseSamples(res.body)
}

async function livenessState (): Promise<string> {
  return (await app.inject({ url: '/heartbeat/liveness' })).json<{ state: string }>().state
}

t.test('authentication: a token by default', async (t) => {
  const anonymous = await app.inject({ url: '/metrics' })
  t.equal(anonymous.statusCode, 401)
  t.match(anonymous.headers['content-type'], /^application\/problem\+json/)
  t.match(String(anonymous.headers['www-authenticate']), /^Bearer/)
  t.equal(anonymous.json<{ code: string }>().code, 'missing_token')

  const unknownRole = await app.inject({ url: '/metrics', headers: await bearer('anon') })
  t.equal(unknownRole.statusCode, 403)

  for (const role of ['authenticated', 'service_role']) {
    const res = await app.inject({ url: '/metrics', headers: await bearer(role) })
    t.equal(res.statusCode, 200, role)
    t.equal(res.headers['content-type'], PROMETHEUS_TEXT, 'prom-client\'s registry content type')
    t.equal(res.headers['cache-control'], 'no-store')
    t.match(res.body, /^# HELP /m)
  }
})

t.test('METRICS_PUBLIC=true: no token needed', async (t) => {
  const { app: open } = await startTestApp(t, { db, env: { METRICS_PUBLIC: 'true' } })
  await writeRow(db.admin)
  const res = await open.inject({ url: '/metrics' })
  t.equal(res.statusCode, 200)
  t.equal(res.headers['content-type'], PROMETHEUS_TEXT)
  const samples = parseSamples(res.body)
  t.equal(valueOf(samples, 'scheduler_heartbeat_state', { state: 'alive' }), 1, 'the row is read for anonymous scrapes too')
  const docs = await open.inject({ url: '/openapi.json' })
  t.same(docs.json<{ paths: Record<string, { get: { security?: unknown } }> }>().paths['/metrics']?.get.security, [], 'documented as public (security: [])')
})

interface StateCase { state: string, shape: RowShape | 'none', status: string | null, breaker: string | null, up: 0 | 1, paused: 0 | 1 }

const STATE_CASES: StateCase[] = [
  { state: 'alive', shape: {}, status: 'running', breaker: 'CLOSED', up: 1, paused: 0 },
  { state: 'late', shape: { lastPollAgo: 70, nextPollIn: -10 }, status: 'running', breaker: 'CLOSED', up: 1, paused: 0 },
  { state: 'stale', shape: { lastPollAgo: 400, nextPollIn: -340 }, status: 'running', breaker: 'CLOSED', up: 0, paused: 0 },
  { state: 'stopped', shape: { status: 'stopped' }, status: 'stopped', breaker: 'CLOSED', up: 0, paused: 0 },
  { state: 'paused', shape: { status: 'stopping', paused_reason: 'deploy' }, status: 'stopping', breaker: 'CLOSED', up: 1, paused: 1 },
  { state: 'paused', shape: { status: 'stopped', paused_reason: 'maintenance', lastPollAgo: 4000, nextPollIn: -3940 }, status: 'stopped', breaker: 'CLOSED', up: 1, paused: 1 },
  { state: 'stopping', shape: { status: 'stopping' }, status: 'stopping', breaker: 'CLOSED', up: 1, paused: 0 },
  { state: 'circuit_open', shape: { circuit_breaker_state: 'OPEN', paused_reason: 'circuit_breaker_open' }, status: 'running', breaker: 'OPEN', up: 1, paused: 0 },
  { state: 'degraded', shape: { circuit_breaker_state: 'HALF_OPEN' }, status: 'running', breaker: 'HALF_OPEN', up: 1, paused: 0 },
  { state: 'degraded', shape: { circuit_breaker_state: 'open' }, status: 'running', breaker: 'other', up: 1, paused: 0 },
  { state: 'starting', shape: { lastPollAgo: null, nextPollIn: null, updatedAgo: 5, circuit_breaker_state: null }, status: 'running', breaker: null, up: 1, paused: 0 },
  { state: 'missing', shape: 'none', status: null, breaker: null, up: 0, paused: 0 }
]

t.test('every verdict state, as the routes see it', async (t) => {
  for (const c of STATE_CASES) {
    if (c.shape === 'none') await deleteRow(db.admin)
    else await writeRow(db.admin, c.shape)
    const samples = await scrape()
    const label = `${c.state} (${JSON.stringify(c.shape)})`

    const states = stateSet(samples, 'scheduler_heartbeat_state', 'state')
    t.same(states.current, [c.state], `${label}: exactly one state series is 1`)
    t.same(states.all, [...LIVENESS_STATES].sort(), `${label}: one series per state, always`)
    t.equal(await livenessState(), c.state, `${label}: the same verdict as /heartbeat/liveness`)
    t.equal(valueOf(samples, 'scheduler_heartbeat_up'), c.up, `${label}: up`)
    t.equal(valueOf(samples, 'scheduler_paused'), c.paused, `${label}: paused`)
    t.equal(valueOf(samples, 'eva_heartbeat_api_database_up'), 1, `${label}: database up`)

    const status = stateSet(samples, 'scheduler_status', 'status')
    t.same(status.all, ['running', 'stopped', 'stopping'], `${label}: one series per status`)
    t.same(status.current, c.status === null ? [] : [c.status], `${label}: status`)
    const breaker = stateSet(samples, 'scheduler_circuit_breaker_state', 'state')
    t.same(breaker.all, ['CLOSED', 'HALF_OPEN', 'OPEN', 'other'], `${label}: one series per breaker state`)
    t.same(breaker.current, c.breaker === null ? [] : [c.breaker], `${label}: breaker`)

    if (c.shape === 'none') {
      for (const name of ['scheduler_polls_total', 'scheduler_dispatches_total', 'scheduler_errors_total', 'scheduler_info',
        'scheduler_last_poll_timestamp_seconds', 'scheduler_next_poll_timestamp_seconds', 'scheduler_row_updated_timestamp_seconds',
        'scheduler_row_created_timestamp_seconds', 'scheduler_heartbeat_grace_seconds']) {
        t.same(series(samples, name), [], `${label}: no ${name} series without a row`)
      }
    }
  }
})

t.test('the row\'s values: timestamps in seconds since the epoch, counters, instance, grace', async (t) => {
  await writeRow(db.admin, { instance_id: 'scheduler-feedc0de', lastPollAgo: 20, nextPollIn: 40, poll_count: 1234, dispatch_count: 56, error_count: 7 })
  const [row] = await db.admin<Array<{ last: number, next: number, updated: number, created: number, now: number }>>`
    select extract(epoch from last_poll_at)::float8 as last, extract(epoch from next_poll_at)::float8 as next,
           extract(epoch from updated_at)::float8 as updated, extract(epoch from started_at)::float8 as created,
           extract(epoch from now())::float8 as now
    from public.eva_scheduler_heartbeat where id = 1`
  if (row === undefined) throw new Error('no row')
  const samples = await scrape()
  // The API holds timestamps as JavaScript dates (millisecond precision); PostgreSQL keeps microseconds.
  const close = (name: string, expected: number): void => {
    const actual = valueOf(samples, name)
    t.ok(actual !== undefined && Math.abs(actual - expected) < 0.001, `${name} ${String(actual)} ≈ ${expected}`)
  }
  close('scheduler_last_poll_timestamp_seconds', row.last)
  close('scheduler_next_poll_timestamp_seconds', row.next)
  close('scheduler_row_updated_timestamp_seconds', row.updated)
  close('scheduler_row_created_timestamp_seconds', row.created)
  // Compared in whole milliseconds: a read in the same millisecond as row.now is truncated below it.
  const checkedMs = Math.round((valueOf(samples, 'scheduler_heartbeat_checked_timestamp_seconds') ?? 0) * 1000)
  const nowMs = Math.floor(row.now * 1000)
  t.ok(checkedMs >= nowMs && checkedMs < nowMs + 60_000, `checked on the database clock, after the write (${checkedMs} ms, row read at ${nowMs} ms)`)
  t.equal(valueOf(samples, 'scheduler_polls_total'), 1234)
  t.equal(valueOf(samples, 'scheduler_dispatches_total'), 56)
  t.equal(valueOf(samples, 'scheduler_errors_total'), 7)
  t.same(series(samples, 'scheduler_info'), [{ name: 'scheduler_info', labels: { instance_id: 'scheduler-feedc0de' }, value: 1 }])
  t.equal(valueOf(samples, 'scheduler_heartbeat_grace_seconds'), 180, 'max(60, 3 × the announced 60 s interval)')

  await writeRow(db.admin, { lastPollAgo: null, nextPollIn: null, updatedAgo: 1 })
  const starting = await scrape()
  t.same(series(starting, 'scheduler_last_poll_timestamp_seconds'), [], 'a null last_poll_at has no series (not 0, which is 1970)')
  t.same(series(starting, 'scheduler_next_poll_timestamp_seconds'), [], 'a null next_poll_at has no series')
  t.equal(valueOf(starting, 'scheduler_heartbeat_grace_seconds'), 60, 'no announced interval: the floor')
})

t.test('a scheduler restart: a new instance_id, counters drop back, one info series', async (t) => {
  await writeRow(db.admin, { instance_id: 'scheduler-aaaaaaaa', poll_count: 900, dispatch_count: 300, error_count: 12 })
  const before = await scrape()
  t.equal(valueOf(before, 'scheduler_polls_total'), 900)
  t.equal(valueOf(before, 'scheduler_info', { instance_id: 'scheduler-aaaaaaaa' }), 1)

  await writeRow(db.admin, { instance_id: 'scheduler-bbbbbbbb', poll_count: 1, dispatch_count: 0, error_count: 0 })
  const after = await scrape()
  t.equal(valueOf(after, 'scheduler_polls_total'), 1, 'polls dropped: rate() reads a drop as a counter reset')
  t.equal(valueOf(after, 'scheduler_dispatches_total'), 0, 'a counter at 0 is still a series')
  t.equal(valueOf(after, 'scheduler_errors_total'), 0)
  t.same(series(after, 'scheduler_info'), [{ name: 'scheduler_info', labels: { instance_id: 'scheduler-bbbbbbbb' }, value: 1 }],
    'the old instance\'s series is gone, not left beside the new one')
})

t.test('the API\'s own requests: labelled by route template, never by the raw URL', async (t) => {
  await writeRow(db.admin)
  const countOf = (samples: Sample[], labels: Record<string, string>): number =>
    valueOf(samples, 'http_requests_total', labels) ?? 0
  const before = await scrape()
  await app.inject({ url: '/heartbeat/liveness?grace=100&cachebust=123' })
  await app.inject({ url: '/heartbeat/liveness' })
  await app.inject({ url: '/no/such/path/8f3a' })
  await app.inject({ url: '/heartbeat' })
  const after = await scrape()

  t.equal(countOf(after, { method: 'GET', route: '/heartbeat/liveness', status: '200' }) -
    countOf(before, { method: 'GET', route: '/heartbeat/liveness', status: '200' }), 2, 'both liveness requests, one series')
  t.equal(countOf(after, { method: 'GET', route: 'unmatched', status: '404' }) -
    countOf(before, { method: 'GET', route: 'unmatched', status: '404' }), 1, 'a 404 counts under route="unmatched"')
  t.equal(countOf(after, { method: 'GET', route: '/heartbeat', status: '401' }) -
    countOf(before, { method: 'GET', route: '/heartbeat', status: '401' }), 1, 'refusals count with their status')
  const routes = new Set(series(after, 'http_requests_total').map((s) => s.labels.route))
  t.notOk([...routes].some((route) => route?.includes('?') === true || route?.includes('8f3a') === true), `routes: ${[...routes].join(', ')}`)

  const histogram = series(after, 'http_request_duration_seconds_count', { method: 'GET', route: '/heartbeat/liveness', status: '200' })
  t.equal(histogram.length, 1, 'a latency histogram per route')
  t.ok((histogram[0]?.value ?? 0) >= 2)
  t.ok(series(after, 'http_request_duration_seconds_bucket', { route: '/heartbeat/liveness', le: '+Inf' }).length > 0)
  t.ok(valueOf(after, 'process_cpu_seconds_total') !== undefined, 'default process metrics are there, unprefixed')
  t.ok(series(after, 'nodejs_eventloop_lag_seconds').length === 1)
})

t.test('with the database down, a scrape still answers 200: database_up 0, state unknown', async (t) => {
  await writeRow(db.admin, { lastPollAgo: 1, nextPollIn: 300 })
  t.equal(valueOf(await scrape(), 'scheduler_polls_total'), 7)
  await db.server.stop()
  try {
    const started = performance.now()
    const res = await app.inject({ url: '/metrics', headers: reader })
    t.ok(performance.now() - started < 10_000, 'answered within the statement timeout and a margin')
    t.equal(res.statusCode, 200)
    t.equal(res.headers['content-type'], PROMETHEUS_TEXT)
    const samples = parseSamples(res.body)
    t.equal(valueOf(samples, 'eva_heartbeat_api_database_up'), 0)
    t.same(stateSet(samples, 'scheduler_heartbeat_state', 'state').current, ['unknown'])
    t.equal(valueOf(samples, 'scheduler_heartbeat_up'), 0)
    t.same(stateSet(samples, 'scheduler_status', 'status').current, [], 'nothing is claimed about the row')
    for (const name of ['scheduler_polls_total', 'scheduler_errors_total', 'scheduler_info', 'scheduler_last_poll_timestamp_seconds']) {
      t.same(series(samples, name), [], `no ${name}: an outage must not look like a counter reset or a 1970 timestamp`)
    }
  } finally {
    await db.server.start()
  }
  let samples = await scrape()
  const deadline = Date.now() + 15_000
  while (valueOf(samples, 'eva_heartbeat_api_database_up') !== 1 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 250))
    samples = await scrape()
  }
  t.equal(valueOf(samples, 'eva_heartbeat_api_database_up'), 1, 'back by itself')
  t.same(stateSet(samples, 'scheduler_heartbeat_state', 'state').current, ['alive'])
  t.equal(valueOf(samples, 'scheduler_polls_total'), 7)
})
