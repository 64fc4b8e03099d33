// /livez, /readyz (policy and table drift read from the real catalog; details for service_role only), the 404
// problem, /openapi.json and /docs.
import { grantApiLogin } from '../../src/embedded/database.js'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import t, { type Test } from 'tap'
import { READINESS_REUSE_MS } from '../../src/db/readiness.js'
import { bearer, startTestApp } from '../helpers/app.js'
import { startTestDatabase } from '../helpers/database.js'

const API_KEY = 'sb_secret_readyz_test_key_0123456789abcdef'
const { app, db } = await startTestApp(t, { env: { SERVICE_API_KEYS: API_KEY } })
const service = await bearer('service_role')
const reader = await bearer('authenticated')

/** A readiness result is reused for READINESS_REUSE_MS from its start: after a change, wait that out once. */
const afterReuse = async (): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, READINESS_REUSE_MS + 50)) }

/** The service_role view (every check's output) and the anonymous one, of the same shared result. */
async function both (target: FastifyInstance = app): Promise<{ detailed: LightMyRequestResponse, anonymous: LightMyRequestResponse }> {
  await afterReuse()
  return { detailed: await target.inject({ url: '/readyz', headers: service }), anonymous: await target.inject({ url: '/readyz' }) }
}

/** Each check's status, and no output anywhere: what an anonymous caller sees. */
function coarse (t: Test, body: Readiness): void {
  for (const [name, check] of Object.entries(body.checks)) t.same(Object.keys(check), ['status'], `${name}: status only`)
}

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

  const { detailed, anonymous } = await both()
  const body = readiness(t, detailed, 503)
  t.equal(body.status, 'fail')
  t.same(body.checks.database, { status: 'pass' })
  t.same(body.checks.table, { status: 'pass' })
  t.equal(body.checks.policies.status, 'fail')
  t.match(body.checks.policies.output, SELECT_POLICY, 'the output names the policy')
  t.match(body.checks.policies.output, /false/, 'and says what it found')
  t.notMatch(body.checks.policies.output, 'eva_scheduler_heartbeat_service_role_all', 'only the drifted policy is named')
  t.same(readiness(t, anonymous, 503), {
    status: 'fail', checks: { database: { status: 'pass' }, table: { status: 'pass' }, policies: { status: 'fail' }, writes: { status: 'pass' } }
  }, 'anonymous: which check fails, not the policy or its expression')

  await restore()
  await afterReuse()
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

  const { detailed, anonymous } = await both()
  const body = readiness(t, detailed, 503)
  t.equal(body.checks.policies.status, 'fail')
  t.match(body.checks.policies.output, 'eva_extra_anon_read')
  t.same(body.checks.table, { status: 'pass' })
  coarse(t, readiness(t, anonymous, 503))
  t.notMatch(anonymous.body, 'eva_extra_anon_read')

  await drop()
  await afterReuse()
  t.same(readiness(t, await app.inject({ url: '/readyz' }), 200), ALL_PASS)
})

t.test('/readyz reports a policy that was dropped', async (t) => {
  await db.admin`drop policy eva_scheduler_heartbeat_service_role_all on public.eva_scheduler_heartbeat`
  t.teardown(async () => {
    await db.admin`create policy eva_scheduler_heartbeat_service_role_all on public.eva_scheduler_heartbeat
      for all to service_role using (true) with check (true)`
  })
  const { detailed, anonymous } = await both()
  t.match(readiness(t, detailed, 503).checks.policies.output, 'eva_scheduler_heartbeat_service_role_all')
  coarse(t, readiness(t, anonymous, 503))
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
  await grantApiLogin(other.admin, other.server)
  const { app: drifted } = await startTestApp(t, { db: other })
  const { detailed, anonymous } = await both(drifted)
  coarse(t, readiness(t, anonymous, 503))
  t.notMatch(anonymous.body, /error_count|row level security/, 'anonymous: no table problems')
  const body = readiness(t, detailed, 503)
  t.equal(body.status, 'fail')
  t.same(body.checks.database, { status: 'pass' })
  t.equal(body.checks.table.status, 'fail')
  t.match(body.checks.table.output, /column error_count is missing/, 'names the missing column')
  t.match(body.checks.table.output, /row level security/, 'and the RLS it lacks')
  t.notMatch(body.checks.table.output, /column poll_count/, 'columns that are right are not named')
  t.equal(body.checks.policies.status, 'fail', 'neither policy exists there')

  await other.admin.unsafe('drop table public.eva_scheduler_heartbeat')
  await afterReuse()
  const gone = readiness(t, await drifted.inject({ url: '/readyz', headers: service }), 503)
  t.match(gone.checks.table.output, /does not exist/, 'no table at all')
})

t.test('/readyz details: only a service_role token or secret API key sees them; no credential or a refused one gets the public answer', async (t) => {
  await db.admin`alter policy eva_scheduler_heartbeat_authenticated_select on public.eva_scheduler_heartbeat using ((current_setting('request.jwt.claims', true)::jsonb ->> 'sub') = 'owner-7f3a')`
  t.teardown(async () => {
    await db.admin`alter policy eva_scheduler_heartbeat_authenticated_select on public.eva_scheduler_heartbeat using (true)`
  })
  await afterReuse()
  const callers: Array<[string, Record<string, string>, boolean]> = [
    ['no credential', {}, false],
    ['an authenticated token', reader, false],
    ['a token that does not verify', { authorization: `Bearer ${(await bearer('service_role')).authorization.slice(7, -4)}AAAA` }, false],
    ['a malformed Authorization header', { authorization: 'Basic Zm9vOmJhcg==' }, false],
    ['a publishable key', { apikey: 'sb_publishable_abc123' }, false],
    ['an unknown secret key', { apikey: 'sb_secret_not_one_of_ours_0123456789' }, false],
    ['a service_role token', service, true],
    ['the secret API key', { apikey: API_KEY }, true]
  ]
  for (const [who, headers, detailed] of callers) {
    const res = await app.inject({ url: '/readyz', headers })
    const body = readiness(t, res, 503)
    t.equal(body.checks.policies.status, 'fail', `${who}: 503, the policies check fails`)
    if (detailed) {
      t.match(body.checks.policies.output, /owner-7f3a/, `${who}: sees the drift and the expression`)
    } else {
      coarse(t, body)
      t.notMatch(res.body, /owner-7f3a|request\.jwt|eva_scheduler_heartbeat_authenticated_select/, `${who}: no policy name or expression`)
    }
  }
  const head = await app.inject({ method: 'HEAD', url: '/readyz', headers: reader })
  t.equal(head.statusCode, 503, 'HEAD with a token: the same status')
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
