// Who may call what: the bearer-token matrix for every endpoint that needs a token, the public endpoints, keys
// from a JWKS served on loopback, and proof that the database's own RLS policies see the token's role and claims.
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { exportJWK, generateKeyPair, SignJWT, type JWTPayload } from 'jose'
import t from 'tap'
import { startTestDatabase } from '../helpers/database.js'
import { bearer, startTestApp, TEST_SECRET, token, writeRow } from '../helpers/app.js'

/** A subtest's `t`. */
type Tap = Parameters<Parameters<typeof t.test>[0]>[0]

const REALM = 'eva-heartbeat-api'
const OTHER_SECRET = 'a-secret-this-service-has-never-heard-of-0123456789'
const nowSeconds = (): number => Math.floor(Date.now() / 1000)

// One database for the whole file, with the healthy row written once; one app per configuration under test.
const db = await startTestDatabase()
t.teardown(db.close)
await writeRow(db.admin, { lastPollAgo: 5, nextPollIn: 3600 })

const small = { DB_POOL_MAX: '2' }
const { app } = await startTestApp(t, { db })
const { app: privateLiveness } = await startTestApp(t, { db, env: { ...small, LIVENESS_PUBLIC: 'false' } })
const { app: withAudience } = await startTestApp(t, { db, env: { ...small, JWT_AUDIENCE: 'eva' } })
const { app: nestedRole } = await startTestApp(t, { db, env: { ...small, JWT_ROLE_CLAIM: 'app_metadata.role' } })

// Signing keys as Supabase publishes them: a JWKS with kid and alg, served over HTTP on loopback.
const ec = await generateKeyPair('ES256')
const rsa = await generateKeyPair('RS256')
const jwks = {
  keys: [
    { ...await exportJWK(ec.publicKey), kid: 'ec-key-1', alg: 'ES256', use: 'sig' },
    { ...await exportJWK(rsa.publicKey), kid: 'rsa-key-1', alg: 'RS256', use: 'sig' }
  ]
}
let jwksRequests = 0
const jwksServer: Server = createServer((request, response) => {
  jwksRequests += 1
  if (request.url !== '/auth/v1/.well-known/jwks.json') {
    response.writeHead(404).end()
    return
  }
  response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(jwks))
})
await new Promise<void>((resolve) => jwksServer.listen(0, '127.0.0.1', resolve))
t.teardown(async () => {
  jwksServer.closeAllConnections()
  await new Promise<void>((resolve) => jwksServer.close(() => resolve()))
})
const JWKS_URL = `http://127.0.0.1:${(jwksServer.address() as AddressInfo).port}/auth/v1/.well-known/jwks.json`
// JWT_SECRET '' counts as unset: this app knows only the JWKS.
const { app: jwksOnly } = await startTestApp(t, { db, env: { ...small, JWT_SECRET: '', JWKS_URL } })
const { app: jwksAndSecret } = await startTestApp(t, { db, env: { ...small, JWKS_URL } })

/** An HS256 token; `exp` one hour ahead unless given (null: no exp claim at all). */
async function hs256 (claims: Omit<JWTPayload, 'exp'> & { exp?: number | null }, secret = TEST_SECRET): Promise<string> {
  const { exp, ...rest } = claims
  const jwt = new SignJWT(rest).setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
  if (exp !== null) jwt.setExpirationTime(exp ?? nowSeconds() + 3600)
  return await jwt.sign(new TextEncoder().encode(secret))
}

async function es256 (claims: JWTPayload, kid = 'ec-key-1', key = ec.privateKey): Promise<string> {
  return await new SignJWT(claims).setProtectedHeader({ alg: 'ES256', typ: 'JWT', kid }).setExpirationTime('1h').sign(key)
}

async function rs256 (claims: JWTPayload, kid = 'rsa-key-1'): Promise<string> {
  return await new SignJWT(claims).setProtectedHeader({ alg: 'RS256', typ: 'JWT', kid }).setExpirationTime('1h').sign(rsa.privateKey)
}

/** An unsecured JWT (RFC 7519 §6): header {"alg":"none"}, the payload, and an empty signature. */
function unsecured (claims: JWTPayload): string {
  const part = (value: object): string => Buffer.from(JSON.stringify(value)).toString('base64url')
  return `${part({ alg: 'none', typ: 'JWT' })}.${part({ exp: nowSeconds() + 3600, ...claims })}.`
}

async function get (target: FastifyInstance, url: string, authorization?: string): Promise<LightMyRequestResponse> {
  return await target.inject({ method: 'GET', url, headers: authorization === undefined ? {} : { authorization } })
}

type Challenge = 'none' | 'invalid_token' | 'insufficient_scope'

/**
 * A problem+json refusal: status, stable code, the five RFC 9457 members, the WWW-Authenticate challenge,
 * and nothing of the token anywhere in the answer.
 */
function assertRefused (t: Tap, res: LightMyRequestResponse, status: number, code: string, challenge: Challenge, sent?: string): void {
  t.equal(res.statusCode, status, `status ${status} (body: ${res.body})`)
  t.match(res.headers['content-type'], /^application\/problem\+json/)
  const body = res.json<Record<string, unknown>>()
  t.same(Object.keys(body).sort(), ['code', 'detail', 'status', 'title', 'type'])
  t.equal(body.code, code)
  t.equal(body.status, status)
  t.type(body.type, 'string')
  t.type(body.title, 'string')
  t.type(body.detail, 'string')
  const header = res.headers['www-authenticate']
  t.type(header, 'string', 'WWW-Authenticate is sent')
  if (challenge === 'none') {
    t.equal(header, `Bearer realm="${REALM}"`, 'no error attribute when no token was sent')
  } else {
    t.match(header, new RegExp(`^Bearer realm="${REALM}", error="${challenge}", error_description="[^"]+"$`))
  }
  if (sent !== undefined && sent.length > 0) {
    t.notOk(res.body.includes(sent), 'the token is not echoed in the body')
    t.notOk(JSON.stringify(res.headers).includes(sent), 'nor in a header')
    // A token is three parts; none of them (payload included) may come back either.
    for (const part of sent.split('.').filter((p) => p.length > 8)) t.notOk(res.body.includes(part))
  }
}

const PROTECTED: Array<{ name: string, target: FastifyInstance, url: string }> = [
  { name: 'GET /heartbeat', target: app, url: '/heartbeat' },
  { name: 'GET /heartbeat/liveness (LIVENESS_PUBLIC=false)', target: privateLiveness, url: '/heartbeat/liveness' },
  { name: 'GET /heartbeat (LIVENESS_PUBLIC=false)', target: privateLiveness, url: '/heartbeat' }
]

for (const { name, target, url } of PROTECTED) {
  t.test(name, async (t) => {
    t.test('no token: 401 missing_token, a bare challenge', async (t) => {
      assertRefused(t, await get(target, url), 401, 'missing_token', 'none')
      assertRefused(t, await get(target, url, ''), 401, 'missing_token', 'none')
    })

    t.test('HEAD without a token: 401 with the same challenge', async (t) => {
      const res = await target.inject({ method: 'HEAD', url })
      t.equal(res.statusCode, 401)
      t.equal(res.headers['www-authenticate'], `Bearer realm="${REALM}"`)
      t.equal(res.body, '')
    })

    for (const header of ['Bearer', 'Bearer ', 'Basic abc', 'Basic dXNlcjpwYXNz', 'Bearer a b', 'Token abc.def.ghi', 'Bearer "abc"']) {
      t.test(`malformed header ${JSON.stringify(header)}: 401 invalid_token`, async (t) => {
        assertRefused(t, await get(target, url, header), 401, 'invalid_token', 'invalid_token')
      })
    }

    t.test('not a JWT: 401 invalid_token', async (t) => {
      assertRefused(t, await get(target, url, 'Bearer not-a-jwt'), 401, 'invalid_token', 'invalid_token', 'not-a-jwt')
    })

    t.test('bad signature (another secret): 401 invalid_token', async (t) => {
      const sent = await hs256({ role: 'service_role', sub: 'mallory' }, OTHER_SECRET)
      assertRefused(t, await get(target, url, `Bearer ${sent}`), 401, 'invalid_token', 'invalid_token', sent)
    })

    t.test('a tampered payload: 401 invalid_token', async (t) => {
      const [header, , signature] = (await hs256({ role: 'authenticated', sub: 'user' })).split('.')
      const payload = Buffer.from(JSON.stringify({ role: 'service_role', sub: 'user', exp: nowSeconds() + 3600 })).toString('base64url')
      const sent = `${header ?? ''}.${payload}.${signature ?? ''}`
      assertRefused(t, await get(target, url, `Bearer ${sent}`), 401, 'invalid_token', 'invalid_token', sent)
    })

    t.test('expired: 401 token_expired', async (t) => {
      const sent = await hs256({ role: 'authenticated', exp: nowSeconds() - 3600 })
      assertRefused(t, await get(target, url, `Bearer ${sent}`), 401, 'token_expired', 'invalid_token', sent)
    })

    t.test('no exp claim: 401', async (t) => {
      const sent = await hs256({ role: 'authenticated', exp: null })
      assertRefused(t, await get(target, url, `Bearer ${sent}`), 401, 'invalid_token', 'invalid_token', sent)
    })

    t.test('not valid yet (nbf an hour ahead): 401 token_not_yet_valid', async (t) => {
      const sent = await hs256({ role: 'authenticated', nbf: nowSeconds() + 3600 })
      assertRefused(t, await get(target, url, `Bearer ${sent}`), 401, 'token_not_yet_valid', 'invalid_token', sent)
    })

    t.test('alg none: 401', async (t) => {
      const sent = unsecured({ role: 'service_role' })
      assertRefused(t, await get(target, url, `Bearer ${sent}`), 401, 'invalid_token', 'invalid_token', sent)
    })

    t.test('over 8 KiB: 401 token_too_large', async (t) => {
      const sent = await hs256({ role: 'authenticated', padding: 'x'.repeat(8 * 1024) })
      t.ok(sent.length > 8 * 1024)
      assertRefused(t, await get(target, url, `Bearer ${sent}`), 401, 'token_too_large', 'invalid_token', sent)
    })

    t.test('role anon: 403 insufficient_scope', async (t) => {
      const sent = await hs256({ role: 'anon' })
      assertRefused(t, await get(target, url, `Bearer ${sent}`), 403, 'insufficient_scope', 'insufficient_scope', sent)
    })

    t.test('a role no policy names (postgres): 403', async (t) => {
      const sent = await hs256({ role: 'postgres' })
      assertRefused(t, await get(target, url, `Bearer ${sent}`), 403, 'insufficient_scope', 'insufficient_scope', sent)
    })

    t.test('no role claim: 403', async (t) => {
      const sent = await hs256({ sub: 'user-without-role' })
      assertRefused(t, await get(target, url, `Bearer ${sent}`), 403, 'insufficient_scope', 'insufficient_scope', sent)
    })

    t.test('a role that is not a string: 401 invalid_token', async (t) => {
      const sent = await hs256({ role: ['service_role'] })
      assertRefused(t, await get(target, url, `Bearer ${sent}`), 401, 'invalid_token', 'invalid_token', sent)
    })

    for (const role of ['authenticated', 'service_role']) {
      t.test(`role ${role}: 200`, async (t) => {
        const res = await get(target, url, (await bearer(role)).authorization)
        t.equal(res.statusCode, 200, res.body)
        t.equal(res.headers['www-authenticate'], undefined)
      })
    }

    t.test('the scheme is case-insensitive', async (t) => {
      const sent = await hs256({ role: 'authenticated' })
      for (const scheme of ['bearer', 'BEARER', 'bEaReR']) {
        t.equal((await get(target, url, `${scheme} ${sent}`)).statusCode, 200, scheme)
      }
    })

    t.test('an ES256 token when only JWT_SECRET is configured: 401', async (t) => {
      const sent = await es256({ role: 'service_role' })
      assertRefused(t, await get(target, url, `Bearer ${sent}`), 401, 'invalid_token', 'invalid_token', sent)
    })
  })
}

t.test('public endpoints answer without a token', async (t) => {
  const liveness = await get(app, '/heartbeat/liveness')
  t.equal(liveness.statusCode, 200, liveness.body)
  t.match(liveness.headers['content-type'], /^application\/health\+json/)
  t.equal(liveness.json<{ state: string }>().state, 'alive')
  t.equal(liveness.headers['www-authenticate'], undefined)

  const livez = await get(app, '/livez')
  t.equal(livez.statusCode, 200)
  t.same(livez.json(), { status: 'pass' })

  const readyz = await get(app, '/readyz')
  t.equal(readyz.statusCode, 200, readyz.body)
  t.equal(readyz.json<{ status: string }>().status, 'pass')

  const openapi = await get(app, '/openapi.json')
  t.equal(openapi.statusCode, 200)
  t.match(openapi.json<{ openapi: string }>().openapi, /^3\./)

  for (const url of ['/livez', '/readyz', '/openapi.json']) {
    t.equal((await get(privateLiveness, url)).statusCode, 200, `${url} stays public with LIVENESS_PUBLIC=false`)
  }
})

t.test('JWT_AUDIENCE=eva', async (t) => {
  t.test('the right audience: 200', async (t) => {
    t.equal((await get(withAudience, '/heartbeat', `Bearer ${await hs256({ role: 'authenticated', aud: 'eva' })}`)).statusCode, 200)
    t.equal((await get(withAudience, '/heartbeat', `Bearer ${await hs256({ role: 'authenticated', aud: ['other', 'eva'] })}`)).statusCode, 200,
      'eva among several audiences')
  })

  t.test('another audience: 401 invalid_audience', async (t) => {
    const sent = await hs256({ role: 'service_role', aud: 'authenticated' })
    assertRefused(t, await get(withAudience, '/heartbeat', `Bearer ${sent}`), 401, 'invalid_audience', 'invalid_token', sent)
  })

  t.test('no audience at all: 401', async (t) => {
    const sent = await hs256({ role: 'service_role' })
    assertRefused(t, await get(withAudience, '/heartbeat', `Bearer ${sent}`), 401, 'invalid_audience', 'invalid_token', sent)
  })

  t.test('unset, the audience is not checked', async (t) => {
    t.equal((await get(app, '/heartbeat', `Bearer ${await hs256({ role: 'authenticated', aud: 'anything' })}`)).statusCode, 200)
  })
})

t.test('JWT_ROLE_CLAIM=app_metadata.role', async (t) => {
  t.test('the role at the dotted path decides', async (t) => {
    const res = await get(nestedRole, '/heartbeat', `Bearer ${await hs256({ role: 'anon', app_metadata: { role: 'authenticated' } })}`)
    t.equal(res.statusCode, 200, res.body)
  })

  t.test('the top-level role claim is ignored', async (t) => {
    const sent = await hs256({ role: 'service_role' })
    assertRefused(t, await get(nestedRole, '/heartbeat', `Bearer ${sent}`), 403, 'insufficient_scope', 'insufficient_scope', sent)
  })

  t.test('an unpermitted role at the path: 403', async (t) => {
    const sent = await hs256({ role: 'service_role', app_metadata: { role: 'anon' } })
    assertRefused(t, await get(nestedRole, '/heartbeat', `Bearer ${sent}`), 403, 'insufficient_scope', 'insufficient_scope', sent)
  })
})

t.test('keys from JWKS_URL', async (t) => {
  t.test('JWKS only: ES256 and RS256 tokens verify', async (t) => {
    const es = await get(jwksOnly, '/heartbeat', `Bearer ${await es256({ role: 'authenticated', sub: 'es-user' })}`)
    t.equal(es.statusCode, 200, es.body)
    const rs = await get(jwksOnly, '/heartbeat', `Bearer ${await rs256({ role: 'service_role', sub: 'rs-user' })}`)
    t.equal(rs.statusCode, 200, rs.body)
    t.ok(jwksRequests >= 1, 'the keys came from the JWKS server')
  })

  t.test('JWKS only: the role still decides', async (t) => {
    const sent = await es256({ role: 'anon' })
    assertRefused(t, await get(jwksOnly, '/heartbeat', `Bearer ${sent}`), 403, 'insufficient_scope', 'insufficient_scope', sent)
  })

  t.test('JWKS only: an HS256 token is refused', async (t) => {
    const sent = await token({ role: 'service_role' })
    assertRefused(t, await get(jwksOnly, '/heartbeat', `Bearer ${sent}`), 401, 'invalid_token', 'invalid_token', sent)
  })

  t.test('JWKS only: alg none is refused', async (t) => {
    const sent = unsecured({ role: 'service_role' })
    assertRefused(t, await get(jwksOnly, '/heartbeat', `Bearer ${sent}`), 401, 'invalid_token', 'invalid_token', sent)
  })

  t.test('JWKS only: a key the JWKS does not hold (same kid, other key) is refused', async (t) => {
    const stranger = await generateKeyPair('ES256')
    const sent = await es256({ role: 'service_role' }, 'ec-key-1', stranger.privateKey)
    assertRefused(t, await get(jwksOnly, '/heartbeat', `Bearer ${sent}`), 401, 'invalid_token', 'invalid_token', sent)
  })

  t.test('JWKS only: an unknown kid is refused', async (t) => {
    const stranger = await generateKeyPair('ES256')
    const sent = await es256({ role: 'service_role' }, 'no-such-kid', stranger.privateKey)
    assertRefused(t, await get(jwksOnly, '/heartbeat', `Bearer ${sent}`), 401, 'invalid_token', 'invalid_token', sent)
  })

  t.test('JWKS only: an expired ES256 token is token_expired', async (t) => {
    const sent = await new SignJWT({ role: 'authenticated' }).setProtectedHeader({ alg: 'ES256', kid: 'ec-key-1' })
      .setExpirationTime(nowSeconds() - 3600).sign(ec.privateKey)
    assertRefused(t, await get(jwksOnly, '/heartbeat', `Bearer ${sent}`), 401, 'token_expired', 'invalid_token', sent)
  })

  t.test('JWKS and JWT_SECRET: ES256, RS256 and HS256 all verify', async (t) => {
    t.equal((await get(jwksAndSecret, '/heartbeat', `Bearer ${await es256({ role: 'authenticated' })}`)).statusCode, 200)
    t.equal((await get(jwksAndSecret, '/heartbeat', `Bearer ${await rs256({ role: 'authenticated' })}`)).statusCode, 200)
    t.equal((await get(jwksAndSecret, '/heartbeat', (await bearer('authenticated')).authorization)).statusCode, 200)
  })

  t.test('JWKS and JWT_SECRET: a bad signature is still refused', async (t) => {
    const hs = await hs256({ role: 'service_role' }, OTHER_SECRET)
    assertRefused(t, await get(jwksAndSecret, '/heartbeat', `Bearer ${hs}`), 401, 'invalid_token', 'invalid_token', hs)
    const none = unsecured({ role: 'service_role' })
    assertRefused(t, await get(jwksAndSecret, '/heartbeat', `Bearer ${none}`), 401, 'invalid_token', 'invalid_token', none)
  })
})

t.test('the database enforces RLS with the token\'s role and claims', async (t) => {
  const restore = async (): Promise<void> => {
    await db.admin`alter policy eva_scheduler_heartbeat_authenticated_select on public.eva_scheduler_heartbeat using (true)`
  }
  t.teardown(restore)

  t.test('a policy that hides the row from authenticated: 404 for authenticated, 200 for service_role', async (t) => {
    await db.admin`alter policy eva_scheduler_heartbeat_authenticated_select on public.eva_scheduler_heartbeat using (false)`
    try {
      const hidden = await get(app, '/heartbeat', (await bearer('authenticated')).authorization)
      t.equal(hidden.statusCode, 404, 'the API let the role through; RLS hid the row')
      t.equal(hidden.json<{ code: string }>().code, 'heartbeat_not_found')
      const service = await get(app, '/heartbeat', (await bearer('service_role')).authorization)
      t.equal(service.statusCode, 200, 'service_role reads through its own policy')
      t.equal(service.json<{ heartbeat: { id: number } }>().heartbeat.id, 1)
    } finally {
      await restore()
    }
    t.equal((await get(app, '/heartbeat', (await bearer('authenticated')).authorization)).statusCode, 200, 'restored: authenticated reads again')
  })

  t.test('the policy sees request.jwt.claims', async (t) => {
    await db.admin`
      alter policy eva_scheduler_heartbeat_authenticated_select on public.eva_scheduler_heartbeat
      using ((current_setting('request.jwt.claims', true)::jsonb ->> 'sub') = 'allowed-user')`
    try {
      t.equal((await get(app, '/heartbeat', (await bearer('authenticated', { sub: 'allowed-user' })).authorization)).statusCode, 200)
      t.equal((await get(app, '/heartbeat', (await bearer('authenticated', { sub: 'someone-else' })).authorization)).statusCode, 404)
    } finally {
      await restore()
    }
  })

  t.test('restored: /readyz finds the policies as mirrored', async (t) => {
    const readyz = await get(app, '/readyz')
    t.equal(readyz.statusCode, 200, readyz.body)
  })
})
