// /livez, /readyz (policy and table drift read from the real catalog), the 404 problem, /openapi.json and /docs.
import type { LightMyRequestResponse } from 'fastify'
import t, { type Test } from 'tap'
import { startTestApp } from '../helpers/app.js'
import { startTestDatabase } from '../helpers/database.js'

const { app, db } = await startTestApp(t)

const HEALTH_JSON = /^application\/health\+json(;|$)/
const SELECT_POLICY = 'eva_scheduler_heartbeat_authenticated_select'

interface Check { status: 'pass' | 'warn' | 'fail', output?: string }
interface Readiness { status: 'pass' | 'fail', checks: { database: Check, table: Check, policies: Check, writes: Check } }

const ALL_PASS: Readiness = {
  status: 'pass',
  checks: { database: { status: 'pass' }, table: { status: 'pass' }, policies: { status: 'pass' }, writes: { status: 'pass' } }
}

function readiness (t: Test, res: LightMyRequestResponse, code: 200 | 503): Readiness {
  t.equal(res.statusCode, code)
  t.match(res.headers['content-type'], HEALTH_JSON)
  t.equal(res.headers['cache-control'], 'no-store')
  return res.json<Readiness>()
}

t.test('/livez answers pass without touching the database', async (t) => {
  const res = await app.inject({ url: '/livez' })
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], HEALTH_JSON)
  t.equal(res.body, '{"status":"pass"}')
  const head = await app.inject({ method: 'HEAD', url: '/livez' })
  t.equal(head.statusCode, 200)
  t.equal(head.body, '')
  t.match(head.headers['content-type'], HEALTH_JSON)
})

t.test('/readyz passes every check on a migrated database', async (t) => {
  t.same(readiness(t, await app.inject({ url: '/readyz' }), 200), ALL_PASS)
  const head = await app.inject({ method: 'HEAD', url: '/readyz' })
  t.equal(head.statusCode, 200)
  t.equal(head.body, '')
})

t.test('/readyz reports a policy whose expression drifted', async (t) => {
  await db.admin`alter policy eva_scheduler_heartbeat_authenticated_select on public.eva_scheduler_heartbeat using (false)`
  let restored = false
  const restore = async (): Promise<void> => {
    if (restored) return
    restored = true
    await db.admin`alter policy eva_scheduler_heartbeat_authenticated_select on public.eva_scheduler_heartbeat using (true)`
  }
  t.teardown(restore)

  const body = readiness(t, await app.inject({ url: '/readyz' }), 503)
  t.equal(body.status, 'fail')
  t.same(body.checks.database, { status: 'pass' })
  t.same(body.checks.table, { status: 'pass' })
  t.equal(body.checks.policies.status, 'fail')
  t.match(body.checks.policies.output, SELECT_POLICY, 'the output names the policy')
  t.match(body.checks.policies.output, /false/, 'and says what it found')
  t.notMatch(body.checks.policies.output, 'eva_scheduler_heartbeat_service_role_all', 'only the drifted policy is named')

  await restore()
  t.same(readiness(t, await app.inject({ url: '/readyz' }), 200), ALL_PASS, 'ready again once restored')
})

t.test('/readyz reports a policy the mirror does not know', async (t) => {
  await db.admin`create policy eva_extra_anon_read on public.eva_scheduler_heartbeat for select to anon using (true)`
  let dropped = false
  const drop = async (): Promise<void> => {
    if (dropped) return
    dropped = true
    await db.admin`drop policy if exists eva_extra_anon_read on public.eva_scheduler_heartbeat`
  }
  t.teardown(drop)

  const body = readiness(t, await app.inject({ url: '/readyz' }), 503)
  t.equal(body.checks.policies.status, 'fail')
  t.match(body.checks.policies.output, 'eva_extra_anon_read')
  t.same(body.checks.table, { status: 'pass' })

  await drop()
  t.same(readiness(t, await app.inject({ url: '/readyz' }), 200), ALL_PASS)
})

t.test('/readyz reports a policy that was dropped', async (t) => {
  await db.admin`drop policy eva_scheduler_heartbeat_service_role_all on public.eva_scheduler_heartbeat`
  t.teardown(async () => {
    await db.admin`create policy eva_scheduler_heartbeat_service_role_all on public.eva_scheduler_heartbeat
      for all to service_role using (true) with check (true)`
  })
  const body = readiness(t, await app.inject({ url: '/readyz' }), 503)
  t.match(body.checks.policies.output, 'eva_scheduler_heartbeat_service_role_all')
})

t.test('/readyz reports a table that is not the seed\'s', async (t) => {
  const other = await startTestDatabase({ migrate: false })
  t.teardown(other.close)
  // The login role exists, so the database answers; the table lacks error_count and has a wrong status type.
  await other.admin.unsafe(`
    create role authenticator login noinherit;
    create table public.eva_scheduler_heartbeat (
      id integer not null default 1 primary key,
      instance_id text not null,
      started_at timestamp with time zone not null default now(),
      last_poll_at timestamp with time zone,
      next_poll_at timestamp with time zone,
      poll_count integer not null default 0,
      dispatch_count integer not null default 0,
      circuit_breaker_state text default 'CLOSED'::text,
      paused_reason text,
      status text not null default 'running'::text,
      metadata jsonb default '{}'::jsonb,
      updated_at timestamp with time zone not null default now()
    )`)
  const { app: drifted } = await startTestApp(t, { db: other })
  const body = readiness(t, await drifted.inject({ url: '/readyz' }), 503)
  t.equal(body.status, 'fail')
  t.same(body.checks.database, { status: 'pass' })
  t.equal(body.checks.table.status, 'fail')
  t.match(body.checks.table.output, /column error_count is missing/, 'names the missing column')
  t.match(body.checks.table.output, /row level security/, 'and the RLS it lacks')
  t.notMatch(body.checks.table.output, /column poll_count/, 'columns that are right are not named')
  t.equal(body.checks.policies.status, 'fail', 'neither policy exists there')

  await other.admin.unsafe('drop table public.eva_scheduler_heartbeat')
  const gone = readiness(t, await drifted.inject({ url: '/readyz' }), 503)
  t.match(gone.checks.table.output, /does not exist/, 'no table at all')
})

t.test('an unknown route is a 404 problem', async (t) => {
  const res = await app.inject({ url: '/no/such/thing?x=1' })
  t.equal(res.statusCode, 404)
  t.match(res.headers['content-type'], /^application\/problem\+json(;|$)/)
  const body = res.json<{ type: string, title: string, status: number, detail: string, code: string }>()
  t.equal(body.code, 'not_found')
  t.equal(body.status, 404)
  t.match(body.detail, '/no/such/thing')
  t.notMatch(body.detail, 'x=1', 'the query string is not echoed')
})

t.test('/openapi.json is an OpenAPI 3.1 document of the routes', async (t) => {
  const res = await app.inject({ url: '/openapi.json' })
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /^application\/json(;|$)/)
  const doc = res.json<{ openapi: string, info: { title: string, version: string }, paths: Record<string, Record<string, unknown>> }>()
  t.equal(doc.openapi, '3.1.0')
  t.type(doc.info.version, 'string')
  for (const path of ['/heartbeat', '/heartbeat/liveness', '/livez', '/readyz']) {
    t.ok(doc.paths[path]?.get !== undefined, `documents GET ${path}`)
  }
})

t.test('/docs serves the browsable UI', async (t) => {
  let res = await app.inject({ url: '/docs' })
  for (let hops = 0; hops < 3 && res.statusCode >= 300 && res.statusCode < 400; hops++) {
    const location = String(res.headers.location)
    res = await app.inject({ url: new URL(location, 'http://localhost/docs').pathname })
  }
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /^text\/html/)
  t.match(res.body, /swagger/i)
})
