// What the API answers does not depend on the session's DateStyle, TimeZone or IntervalStyle, wherever they are set:
// on the server (ALTER SYSTEM), on the database, or on the login role (as in issue 13: `SQL, DMY` served a row
// written on 2 December as 12 February). Timestamps on both sides of the 12th, so that a swap of day and month shows
// (or fails to parse), and zones with odd offsets.
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { bearer, startTestApp } from '../helpers/app.js'
import { startTestDatabase } from '../helpers/database.js'
import { connectSse, dataOf, isHeartbeat } from '../helpers/sse.js'

const db = await startTestDatabase()
t.teardown(db.close)

const DAY = 86_400_000
// Rounded to the millisecond as the API shows it; next_poll_at in the future so that the verdict stays `alive`.
const next = new Date(Math.floor(Date.now() / 1000) * 1000 + 30 * DAY + 321)
const ROW = {
  started_at: '2026-11-13T01:02:03.456Z', // the 13th: no such month under DMY
  last_poll_at: '2026-12-02T00:00:00.789Z', // the 2nd: 12 February under DMY
  next_poll_at: next.toISOString(),
  updated_at: '2026-10-05T23:59:59.999Z' // late on the 5th: the 6th in any zone east of UTC
}

await db.admin`
  insert into public.eva_scheduler_heartbeat (id, instance_id, started_at, last_poll_at, next_poll_at, status, circuit_breaker_state, updated_at)
  values (1, 'scheduler-datestyle', ${ROW.started_at}::timestamptz, ${ROW.last_poll_at}::timestamptz, ${ROW.next_poll_at}::timestamptz,
          'running', 'CLOSED', ${ROW.updated_at}::timestamptz)
  on conflict (id) do update set started_at = excluded.started_at, last_poll_at = excluded.last_poll_at,
    next_poll_at = excluded.next_poll_at, status = excluded.status, circuit_breaker_state = excluded.circuit_breaker_state,
    updated_at = excluded.updated_at`

interface Shown {
  etag: string | undefined
  lastModified: string | undefined
  heartbeat: Record<string, unknown>
  liveness: Record<string, unknown>
  checkedAt: string
  metrics: Record<string, number>
  event: Record<string, unknown> | null
}

const reader = await bearer('authenticated')
const service = await bearer('service_role')

/** Every place the API shows a time: /heartbeat (body, ETag, Last-Modified), liveness, metrics, the event stream. */
async function shown (app: FastifyInstance): Promise<Shown> {
  const res = await app.inject({ url: '/heartbeat', headers: reader })
  if (res.statusCode !== 200) throw new Error(`GET /heartbeat answered ${res.statusCode}: ${res.body}`)
  const body = res.json<{ heartbeat: Record<string, unknown>, liveness: Record<string, unknown> }>()
  const liveness = await app.inject({ url: '/heartbeat/liveness' })
  const metricsText = (await app.inject({ url: '/metrics', headers: service })).body
  const metrics: Record<string, number> = {}
  for (const name of ['scheduler_last_poll_timestamp_seconds', 'scheduler_next_poll_timestamp_seconds', 'scheduler_row_updated_timestamp_seconds',
    'scheduler_row_created_timestamp_seconds', 'scheduler_heartbeat_checked_timestamp_seconds']) {
    const match = new RegExp(`^${name} (\\S+)$`, 'm').exec(metricsText)
    if (match?.[1] === undefined) throw new Error(`no ${name} in /metrics`)
    metrics[name] = Number(match[1])
  }
  const address = await app.listen({ host: '127.0.0.1', port: 0 })
  const stream = await connectSse(`${address}/heartbeat/events`, reader)
  const event = dataOf(await stream.next(isHeartbeat, 10_000, 0)).heartbeat
  stream.close()
  return {
    etag: res.headers.etag as string | undefined,
    lastModified: res.headers['last-modified'] as string | undefined,
    heartbeat: body.heartbeat,
    liveness: body.liveness,
    checkedAt: liveness.json<{ checked_at: string }>().checked_at,
    metrics,
    event
  }
}

function assertShown (t: Tap, seen: Shown, baseline: Shown): void {
  for (const column of ['started_at', 'last_poll_at', 'next_poll_at', 'updated_at'] as const) {
    t.equal(seen.heartbeat[column], ROW[column], `${column} as written`)
    t.equal(seen.event?.[column], ROW[column], `${column} in the event stream`)
  }
  t.equal(seen.liveness.last_poll_at, ROW.last_poll_at, 'liveness.last_poll_at as written')
  t.equal(seen.liveness.next_poll_at, ROW.next_poll_at, 'liveness.next_poll_at as written')
  t.equal(seen.liveness.state, 'alive')
  for (const checked of [seen.liveness.checked_at, seen.checkedAt]) {
    t.match(checked, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, 'checked_at is ISO 8601 UTC')
    t.ok(Math.abs(Date.parse(String(checked)) - Date.now()) < 60_000, `checked_at (${String(checked)}) is now, not another day`)
  }
  t.equal(seen.lastModified, new Date(ROW.updated_at).toUTCString(), 'Last-Modified is updated_at')
  t.equal(seen.etag, baseline.etag, 'the ETag is the one an ISO/UTC session gives')
  t.equal(seen.metrics.scheduler_last_poll_timestamp_seconds, Date.parse(ROW.last_poll_at) / 1000)
  t.equal(seen.metrics.scheduler_next_poll_timestamp_seconds, Date.parse(ROW.next_poll_at) / 1000)
  t.equal(seen.metrics.scheduler_row_updated_timestamp_seconds, Date.parse(ROW.updated_at) / 1000)
  t.equal(seen.metrics.scheduler_row_created_timestamp_seconds, Date.parse(ROW.started_at) / 1000)
  t.ok(Math.abs((seen.metrics.scheduler_heartbeat_checked_timestamp_seconds ?? 0) * 1000 - Date.now()) < 60_000, 'the verdict\'s clock is now')
}

type Tap = Parameters<Parameters<typeof t.test>[0]>[0]

const { app: plain } = await startTestApp(t, { db })
const baseline = await shown(plain)
await plain.close()

t.test('the baseline (ISO, UTC) shows the row as written', async (t) => {
  assertShown(t, baseline, baseline)
})

const SETTINGS = [
  { where: 'the server (ALTER SYSTEM)', style: 'Postgres, DMY', zone: 'Asia/Kathmandu', interval: 'sql_standard' },
  { where: 'the database', style: 'German', zone: 'America/St_Johns', interval: 'postgres_verbose' },
  { where: 'the login role (authenticator)', style: 'SQL, DMY', zone: 'Pacific/Chatham', interval: 'iso_8601' }
] as const

async function apply (where: string, style: string, zone: string, interval: string): Promise<void> {
  const values = `datestyle = '${style}'`
  if (where.startsWith('the server')) {
    await db.admin.unsafe(`alter system set ${values}`)
    await db.admin.unsafe(`alter system set timezone = '${zone}'`)
    await db.admin.unsafe(`alter system set intervalstyle = '${interval}'`)
    await db.admin`select pg_reload_conf()`
  } else if (where.startsWith('the database')) {
    await db.admin.unsafe(`alter database postgres set ${values}`)
    await db.admin.unsafe(`alter database postgres set timezone = '${zone}'`)
    await db.admin.unsafe(`alter database postgres set intervalstyle = '${interval}'`)
  } else {
    await db.admin.unsafe(`alter role authenticator set ${values}`)
    await db.admin.unsafe(`alter role authenticator set timezone = '${zone}'`)
    await db.admin.unsafe(`alter role authenticator set intervalstyle = '${interval}'`)
  }
}

t.teardown(async () => {
  await db.admin.unsafe('alter system reset all')
  await db.admin`select pg_reload_conf()`
  await db.admin.unsafe('alter database postgres reset all')
  await db.admin.unsafe('alter role authenticator reset all')
})

for (const { where, style, zone, interval } of SETTINGS) {
  t.test(`DateStyle '${style}', TimeZone ${zone}, IntervalStyle ${interval} set on ${where}`, async (t) => {
    await apply(where, style, zone, interval)
    const { app } = await startTestApp(t, { db })
    const [session] = await app.sql.begin(async (tx) => await tx<Array<{ style: string, zone: string, text: string }>>`
      select current_setting('datestyle') as style, current_setting('timezone') as zone,
             ${ROW.started_at}::timestamptz::text as text`)
    t.equal(session?.style, style.includes(',') ? style : `${style}, DMY`, `the API's sessions run with DateStyle ${session?.style ?? ''}`)
    t.equal(session?.zone, zone, `and TimeZone ${session?.zone ?? ''}`)
    t.not(session?.text, '2026-11-13 01:02:03.456+00', `where a timestamptz reads ${session?.text ?? ''}`)
    assertShown(t, await shown(app), baseline)

    const patched = await app.inject({
      method: 'PATCH', url: '/heartbeat', headers: { ...service, 'content-type': 'application/json', 'if-match': baseline.etag ?? '' },
      payload: JSON.stringify({ circuit_breaker_state: 'CLOSED' })
    })
    t.equal(patched.statusCode, 200, 'a PATCH with the ISO/UTC ETag in If-Match is accepted')
    const after = patched.json<{ heartbeat: Record<string, string> }>().heartbeat
    t.equal(after.started_at, ROW.started_at, 'the PATCH answer shows started_at as written')
    t.ok(Math.abs(Date.parse(after.updated_at ?? '') - Date.now()) < 60_000, `and updated_at now (${after.updated_at ?? ''})`)
    t.equal(patched.headers['last-modified'], new Date(after.updated_at ?? '').toUTCString())
    await db.admin`update public.eva_scheduler_heartbeat set updated_at = ${ROW.updated_at}::timestamptz`
  })
}

// float8's text drops significant digits at extra_float_digits ≤ -3 (at -15 every epoch in milliseconds reads 2e+12):
// the API's timestamps are read as numbers, so the setting must not reach them, wherever it is set.
const FLOAT_DIGITS = [
  { where: 'the database', target: 'database postgres', digits: -3 },
  { where: 'the database', target: 'database postgres', digits: -15 },
  { where: 'the login role (authenticator)', target: 'role authenticator', digits: -3 },
  { where: 'the login role (authenticator)', target: 'role authenticator', digits: -15 }
] as const

for (const { where, target, digits } of FLOAT_DIGITS) {
  t.test(`extra_float_digits = ${digits} set on ${where}`, async (t) => {
    await db.admin.unsafe(`alter ${target} set extra_float_digits = ${digits}`)
    t.teardown(async () => { await db.admin.unsafe(`alter ${target} reset extra_float_digits`) })
    const { app } = await startTestApp(t, { db })
    const [session] = await app.sql.begin(async (tx) => await tx<Array<{ digits: string, text: string }>>`
      select current_setting('extra_float_digits') as digits, 1764633600789::float8::text as text`)
    t.equal(session?.digits, String(digits), `the API's sessions run with extra_float_digits ${session?.digits ?? ''}`)
    t.not(session?.text, '1764633600789', `where a float8 reads ${session?.text ?? ''}`)
    assertShown(t, await shown(app), baseline)
  })
}
