// Issue 10, item 3: tokens as a Supabase project issues them in 2026, end to end against a JWKS served by the test:
// ES256 user tokens (aud a string or an array, session_id, aal, amr, is_anonymous, app_metadata, user_metadata),
// anonymous sign-ins, a rotation through a standby key, a removed key, an HS256-only project whose JWKS is
// {"keys": []}, and legacy HS256 keys (iss "supabase", no sub, no aud) beside JWKS users. The rule for JWT_AUDIENCE
// and JWT_ISSUER is one for every token (docs/security.md): a token without aud fails a configured audience.
import { randomUUID } from 'node:crypto'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import t from 'tap'
import { startTestDatabase } from '../helpers/database.js'
import { rowText, TEST_SECRET, token, writeRow } from '../helpers/app.js'
import { signingKey, startAppWith, startKeySetServer } from '../helpers/jwks.js'
import { delay, eventually } from '../helpers/wait.js'

type Tap = Parameters<Parameters<typeof t.test>[0]>[0]

const REF = 'abcdefghijklmnopqrst'
const ISSUER = `https://${REF}.supabase.co/auth/v1`
const nowSeconds = (): number => Math.floor(Date.now() / 1000)

const db = await startTestDatabase()
t.teardown(db.close)
await writeRow(db.admin, { lastPollAgo: 5, nextPollIn: 3600 })

/** The claims Supabase Auth puts in a user's access token. */
function userClaims (extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    iss: ISSUER,
    sub: randomUUID(),
    aud: 'authenticated',
    iat: nowSeconds(),
    email: 'ops@example.com',
    phone: '',
    app_metadata: { provider: 'email', providers: ['email'] },
    user_metadata: { email_verified: true, full_name: 'Ops' },
    role: 'authenticated',
    aal: 'aal1',
    amr: [{ method: 'password', timestamp: nowSeconds() - 60 }],
    session_id: randomUUID(),
    is_anonymous: false,
    ...extra
  }
}

const anonymousClaims = (): Record<string, unknown> => userClaims({
  email: '', app_metadata: {}, user_metadata: {}, amr: [{ method: 'anonymous', timestamp: nowSeconds() }], is_anonymous: true
})

/** The legacy service_role (or anon) key: HS256 with the project's JWT secret, iss "supabase", no sub, no aud. */
const legacyKey = async (role: 'service_role' | 'anon'): Promise<string> =>
  await token({ iss: 'supabase', ref: REF, role, iat: nowSeconds(), exp: nowSeconds() + 10 * 365 * 86400 })

const current = await signingKey('2026-current')
const standby = await signingKey('2026-standby')
const jwks = await startKeySetServer(t, current.jwk)
const CACHE_MS = 1000
// A generous fetch timeout: on a loaded machine a loopback fetch can take a while, and a timeout would read as a 503.
const timings = { jwksCacheMaxAgeMs: CACHE_MS, jwksCooldownMs: 200, jwksTimeoutMs: 10_000 }

/** The configuration docs/operations.md recommends for a 2026 Supabase project. */
const project = await startAppWith(t, db, { JWKS_URL: jwks.url, JWT_AUDIENCE: 'authenticated', JWT_ISSUER: ISSUER }, timings)
/** JWKS users beside the legacy JWT secret, neither audience nor issuer set. */
const mixed = await startAppWith(t, db, { JWKS_URL: jwks.url, JWT_SECRET: TEST_SECRET }, timings)
/** The same, with audience and issuer set: legacy keys have neither, so they are refused. */
const mixedStrict = await startAppWith(t, db, { JWKS_URL: jwks.url, JWT_SECRET: TEST_SECRET, JWT_AUDIENCE: 'authenticated', JWT_ISSUER: ISSUER }, timings)

const get = async (app: FastifyInstance, jwt: string): Promise<LightMyRequestResponse> =>
  await app.inject({ url: '/heartbeat', headers: { authorization: `Bearer ${jwt}` } })
const pause = async (app: FastifyInstance, jwt: string): Promise<LightMyRequestResponse> =>
  await app.inject({ method: 'PATCH', url: '/heartbeat', headers: { authorization: `Bearer ${jwt}`, 'content-type': 'application/json' }, payload: '{"paused_reason":"supabase test"}' })

function expect (t: Tap, res: LightMyRequestResponse, status: number, code: string | undefined, what: string): void {
  t.equal(res.statusCode, status, `${what}: ${status} (${res.body.slice(0, 160)})`)
  if (code !== undefined) {
    t.match(res.headers['content-type'], /^application\/problem\+json/, `${what}: problem+json`)
    t.equal(res.json<{ code: string }>().code, code, `${what}: ${code}`)
  }
}

t.test('ES256 user tokens as Supabase Auth issues them', async (t) => {
  expect(t, await get(project, await current.sign(userClaims())), 200, undefined, 'aud a string')
  expect(t, await get(project, await current.sign(userClaims({ aud: ['authenticated', 'https://app.example'] }))), 200, undefined, 'aud an array naming authenticated')
  expect(t, await get(project, await current.sign(userClaims({ aal: 'aal2', amr: [{ method: 'totp', timestamp: nowSeconds() }] }))), 200, undefined, 'aal2 (MFA)')
  expect(t, await get(project, await current.sign(userClaims({ aud: ['https://app.example'] }))), 401, 'invalid_audience', 'aud an array without authenticated')
  expect(t, await get(project, await current.sign(userClaims({ aud: undefined }))), 401, 'invalid_audience', 'no aud')
  expect(t, await get(project, await current.sign(userClaims({ iss: 'https://other-project.supabase.co/auth/v1' }))), 401, 'invalid_issuer', 'another project\'s issuer')
  expect(t, await get(project, await current.sign(userClaims({ role: 'anon' }))), 403, 'insufficient_scope', 'role anon')
  const before = await rowText(db.admin)
  expect(t, await pause(project, await current.sign(userClaims())), 403, 'insufficient_scope', 'a user may not PATCH')
  t.equal(await rowText(db.admin), before, 'row unchanged')
  expect(t, await pause(project, await current.sign(userClaims({ role: 'service_role' }))), 200, undefined, 'a JWKS token with role service_role may')
})

t.test('anonymous sign-ins are role authenticated: they read as any user does (the table\'s policy is to authenticated)', async (t) => {
  expect(t, await get(project, await current.sign(anonymousClaims())), 200, undefined, 'an anonymous user reads')
  const before = await rowText(db.admin)
  expect(t, await pause(project, await current.sign(anonymousClaims())), 403, 'insufficient_scope', 'and may not PATCH')
  t.equal(await rowText(db.admin), before, 'row unchanged')
})

t.test('legacy HS256 keys beside JWKS users', async (t) => {
  expect(t, await get(mixed, await current.sign(userClaims())), 200, undefined, 'mixed: a JWKS user')
  expect(t, await pause(mixed, await legacyKey('service_role')), 200, undefined, 'mixed: the legacy service_role key (no sub, no aud) pauses')
  expect(t, await get(mixed, await legacyKey('anon')), 403, 'insufficient_scope', 'mixed: the legacy anon key')
  expect(t, await get(mixed, await token(userClaims())), 200, undefined, 'mixed: an HS256 user token signed with the legacy secret')

  expect(t, await get(mixedStrict, await current.sign(userClaims())), 200, undefined, 'with JWT_AUDIENCE/JWT_ISSUER: a JWKS user')
  expect(t, await pause(mixedStrict, await legacyKey('service_role')), 401, 'invalid_audience',
    'with JWT_AUDIENCE/JWT_ISSUER: the legacy service key has no aud, so it is refused (use a secret API key)')
  expect(t, await get(mixedStrict, await token(userClaims())), 200, undefined, 'with JWT_AUDIENCE/JWT_ISSUER: an HS256 user token (it has aud and iss)')
  expect(t, await get(project, await legacyKey('service_role')), 401, 'invalid_token', 'without JWT_SECRET: HS256 is not accepted at all')
})

t.test('rotation: the standby key is published, then used; then the old key is removed', async (t) => {
  const older = await current.sign(userClaims())
  expect(t, await get(project, older), 200, undefined, 'a token of the current key')
  jwks.publish(current.jwk, standby.jwk)
  // Supabase publishes the standby key well before signing with it. The app learns of it at its next refresh, or
  // when a token names it (unless the set was fetched within the cooldown, 200 ms here: then that token is a 401).
  await delay(CACHE_MS)
  const next = await standby.sign(userClaims())
  expect(t, await get(project, next), 200, undefined, 'a token of the standby key, as soon as it is published')
  expect(t, await get(project, older), 200, undefined, 'the older key\'s tokens go on working while it is published')

  jwks.publish(standby.jwk)
  await eventually(async () => (await get(project, older)).statusCode === 401, CACHE_MS + 10_000, 'the removed key\'s token refused')
  expect(t, await get(project, older), 401, 'invalid_token', 'a token of the removed key')
  expect(t, await get(project, await current.sign(userClaims())), 401, 'invalid_token', 'a new token of the removed key')
  expect(t, await get(project, next), 200, undefined, 'the new current key\'s tokens')
  const stranger = await signingKey('never-published')
  expect(t, await get(project, await stranger.sign(userClaims())), 401, 'invalid_token', 'a key never published')
  jwks.publish(current.jwk)
})

t.test('an HS256-only project: its JWKS is {"keys": []}', async (t) => {
  const empty = await startKeySetServer(t)
  const app = await startAppWith(t, db, { JWKS_URL: empty.url, JWT_SECRET: TEST_SECRET }, timings)
  expect(t, await get(app, await token(userClaims())), 200, undefined, 'an HS256 user token')
  expect(t, await pause(app, await legacyKey('service_role')), 200, undefined, 'the legacy service_role key')
  t.equal(empty.requests(), 0, 'HS256 tokens never make the service fetch the JWKS')
  expect(t, await get(app, await current.sign(userClaims())), 401, 'invalid_token', 'an ES256 token: no key in the empty set matches (not 503)')
  t.ok(empty.requests() >= 1, 'the empty set was fetched for it')
})
