// Issue 10, item 3 (secret API keys): SERVICE_API_KEYS keys act as service_role, in `apikey` or as the Bearer token,
// and what the database, the audit line and the logs see of them. The hostile cases are test/security/api-key-attacks.test.ts.
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import t from 'tap'
import { fingerprintOf } from '../../src/auth/api-keys.js'
import { startTestDatabase } from '../helpers/database.js'
import { bearer, rowText, TEST_SECRET, writeRow } from '../helpers/app.js'
import { startAppWith } from '../helpers/jwks.js'

type Tap = Parameters<Parameters<typeof t.test>[0]>[0]

export const OPS_KEY = 'sb_secret_N7UND0UgjKTVK-Uodkm0Hg_xSvEMPvz'
export const CI_KEY = 'sb_secret_Zq3PbW8cLr5Ye2Tn6Ud1_Kx9Vm4Aa7Hs'
const PUBLISHABLE = 'sb_publishable_ZaWk1q0bRk8z3Qm5Xv2Cy_7Jn4Dh6Gt'

const db = await startTestDatabase()
t.teardown(db.close)

const logs: string[] = []
const keyed = await startAppWith(t, db, { JWT_SECRET: TEST_SECRET, SERVICE_API_KEYS: `ops:${OPS_KEY},${CI_KEY}`, LOG_LEVEL: 'trace' }, {},
  { logStream: { write: (line) => { logs.push(line) } } })
const keyless = await startAppWith(t, db, { JWT_SECRET: TEST_SECRET })

async function call (app: FastifyInstance, method: 'GET' | 'PATCH', headers: Record<string, string>, reason = 'api key test'): Promise<LightMyRequestResponse> {
  return await app.inject({
    method,
    url: '/heartbeat',
    headers: method === 'PATCH' ? { ...headers, 'content-type': 'application/json' } : headers,
    ...(method === 'PATCH' ? { payload: JSON.stringify({ paused_reason: reason }) } : {})
  })
}

function expect (t: Tap, res: LightMyRequestResponse, status: number, code: string | undefined, what: string): void {
  t.equal(res.statusCode, status, `${what}: ${status} (${res.body.slice(0, 200)})`)
  if (code === undefined) return
  t.match(res.headers['content-type'], /^application\/problem\+json/, `${what}: problem+json`)
  t.equal(res.json<{ code: string }>().code, code, `${what}: ${code}`)
}

const audits = (): Array<{ who: string, role: string }> => logs.map((line) => JSON.parse(line) as { msg?: string, audit?: { who: string, role: string } })
  .filter((line) => line.msg === 'heartbeat changed').map((line) => ({ who: line.audit?.who ?? '', role: line.audit?.role ?? '' }))

t.test('a configured key acts as service_role, in apikey or as the Bearer token', async (t) => {
  await writeRow(db.admin, { paused_reason: null })
  expect(t, await call(keyed, 'GET', { apikey: OPS_KEY }), 200, undefined, 'GET with apikey')
  expect(t, await call(keyed, 'PATCH', { apikey: OPS_KEY }, 'apikey header'), 200, undefined, 'PATCH with apikey')
  t.match(await rowText(db.admin), /"paused_reason":"apikey header"/, 'the row changed')
  expect(t, await call(keyed, 'PATCH', { authorization: `Bearer ${OPS_KEY}` }, 'bearer'), 200, undefined, 'PATCH with the key as Bearer')
  expect(t, await call(keyed, 'PATCH', { apikey: OPS_KEY, authorization: `Bearer ${OPS_KEY}` }, 'both'), 200, undefined,
    'the same key in both headers (as Supabase clients send it)')
  expect(t, await call(keyed, 'PATCH', { apikey: CI_KEY }, 'unnamed'), 200, undefined, 'the second, unnamed key')
  t.same(audits().slice(-4), [
    { who: 'apikey:ops', role: 'service_role' },
    { who: 'apikey:ops', role: 'service_role' },
    { who: 'apikey:ops', role: 'service_role' },
    { who: `apikey:${fingerprintOf(CI_KEY)}`, role: 'service_role' }
  ], 'the audit line names the key by its name, or its fingerprint')
})

t.test('the database sees role service_role and claims naming the key, never the key', async (t) => {
  await db.admin.unsafe(`
    create table public.eva_test_seen (role text, claims jsonb);
    grant insert on public.eva_test_seen to service_role;
    create function public.eva_test_record() returns trigger language plpgsql as $$
    begin
      insert into public.eva_test_seen values (current_user, current_setting('request.jwt.claims', true)::jsonb);
      return new;
    end $$;
    create trigger eva_test_record after update on public.eva_scheduler_heartbeat for each row execute function public.eva_test_record();`)
  t.teardown(async () => {
    await db.admin.unsafe('drop trigger eva_test_record on public.eva_scheduler_heartbeat; drop function public.eva_test_record(); drop table public.eva_test_seen')
  })
  expect(t, await call(keyed, 'PATCH', { apikey: OPS_KEY }, 'seen'), 200, undefined, 'PATCH with the ops key')
  const seen = await db.admin<Array<{ role: string, claims: unknown }>>`select role, claims from public.eva_test_seen`
  t.same(seen, [{ role: 'service_role', claims: { role: 'service_role', api_key: { id: 'ops', fingerprint: fingerprintOf(OPS_KEY) } } }])
  t.notMatch(JSON.stringify(seen), /sb_secret_/)
})

t.test('publishable keys grant what anon may, which is nothing here', async (t) => {
  const before = await rowText(db.admin)
  expect(t, await call(keyed, 'GET', { apikey: PUBLISHABLE }), 403, 'insufficient_scope', 'GET with a publishable apikey')
  expect(t, await call(keyed, 'GET', { authorization: `Bearer ${PUBLISHABLE}` }), 403, 'insufficient_scope', 'as Bearer')
  expect(t, await call(keyed, 'PATCH', { apikey: PUBLISHABLE }), 403, 'insufficient_scope', 'PATCH')
  expect(t, await call(keyless, 'GET', { apikey: PUBLISHABLE }), 403, 'insufficient_scope', 'with no keys configured')
  t.equal(await rowText(db.admin), before, 'row unchanged')
  // Supabase clients send the publishable (or legacy anon) key as apikey and the user's JWT as Bearer: the JWT decides.
  expect(t, await call(keyed, 'GET', { apikey: PUBLISHABLE, ...await bearer('authenticated') }), 200, undefined, 'publishable apikey beside a user JWT')
  expect(t, await call(keyed, 'PATCH', { apikey: PUBLISHABLE, ...await bearer('authenticated') }), 403, 'insufficient_scope', 'the user JWT may not PATCH')
})

t.test('a key that is not configured: 401 problem+json, never a 500', async (t) => {
  const before = await rowText(db.admin)
  for (const headers of [{ apikey: OPS_KEY }, { authorization: `Bearer ${OPS_KEY}` }] as Array<Record<string, string>>) {
    const res = await call(keyless, 'PATCH', headers)
    expect(t, res, 401, 'api_keys_not_configured', `no SERVICE_API_KEYS: ${Object.keys(headers)[0] ?? ''}`)
    t.match(res.json<{ detail: string }>().detail, /must be configured in SERVICE_API_KEYS/)
    t.match(res.headers['www-authenticate'], /^Bearer realm="eva-heartbeat-api", error="invalid_token"/)
  }
  expect(t, await call(keyed, 'GET', { apikey: 'sb_secret_NotAConfiguredKey0123456789' }), 401, 'invalid_api_key', 'a key not among SERVICE_API_KEYS')
  expect(t, await call(keyed, 'GET', { apikey: await bearer('service_role').then((h) => h.authorization.slice(7)) }), 401, 'missing_token',
    'a JWT in apikey alone (a legacy key there names the client, not the caller)')
  t.equal(await rowText(db.admin), before, 'row unchanged')
})

t.test('the key is never logged, whatever the level', async (t) => {
  t.ok(logs.length > 10, 'trace logging wrote lines')
  t.notOk(logs.some((line) => /sb_secret_[A-Za-z0-9]/.test(line)), 'no line holds a secret key (the refusals\' text names only the prefix)')
  t.ok(logs.some((line) => line.includes('"apikey:ops"')), 'the lines name the key by its name')
  t.notOk(logs.some((line) => line.includes(OPS_KEY.slice(10, 30))), 'nor its random part')
})

t.test('under the failed-authentication limit, a configured key is never refused', async (t) => {
  const limited = await startAppWith(t, db, { JWT_SECRET: TEST_SECRET, SERVICE_API_KEYS: OPS_KEY, AUTH_FAILURE_LIMIT_PER_MINUTE: '3' })
  for (let i = 0; i < 3; i++) expect(t, await call(limited, 'GET', { apikey: `sb_secret_Guess${i}000000000000000000` }), 401, 'invalid_api_key', `wrong key ${i + 1}`)
  expect(t, await call(limited, 'GET', { apikey: 'sb_secret_Guess9000000000000000000' }), 429, 'too_many_requests', 'a fourth wrong key')
  expect(t, await call(limited, 'GET', await bearer('authenticated', { sub: 'new' })), 429, 'too_many_requests', 'a JWT never verified')
  expect(t, await call(limited, 'PATCH', { apikey: OPS_KEY }, 'incident'), 200, undefined, 'the ops script\'s configured key: served')
})

t.test('the OpenAPI document: a bearer scheme and an apikey header scheme, either one on every route that takes a token', async (t) => {
  const doc = keyed.swagger() as unknown as {
    components: { securitySchemes: Record<string, Record<string, unknown>> }
    paths: Record<string, Record<string, { security?: unknown[] }>>
  }
  t.match(doc.components.securitySchemes.bearerAuth, { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' })
  t.match(doc.components.securitySchemes.apiKeyAuth, { type: 'apiKey', in: 'header', name: 'apikey' })
  const secured = Object.entries(doc.paths).flatMap(([path, operations]) => Object.entries(operations)
    .filter(([, operation]) => (operation.security?.length ?? 0) > 0).map(([method, operation]) => [`${method} ${path}`, operation.security]))
  t.ok(secured.length >= 4, `${secured.length} secured operations`)
  for (const [name, security] of secured) t.same(security, [{ bearerAuth: [] }, { apiKeyAuth: [] }], String(name))
})
