// The JWT attack suite (issue 6, item 1): hostile and broken tokens against GET /heartbeat, each with the exact status,
// `code` and WWW-Authenticate it must get, and a JWKS endpoint that fails, recovers and rotates its keys. The cases are
// summarised in docs/reliability.md. The ordinary matrix (roles, public routes, RLS, the plain cases) is
// test/routes/auth.test.ts; this file does not repeat it.
import { createHmac, generateKeyPairSync, sign as rsaSign } from 'node:crypto'
import { once } from 'node:events'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { CompactSign, exportJWK, exportSPKI, generateKeyPair, SignJWT, type CryptoKey, type JWK, type JWTPayload } from 'jose'
import t from 'tap'
import { buildApp } from '../../src/app.js'
import { MAX_TOKEN_BYTES, type JwtSettings } from '../../src/auth/jwt.js'
import { loadConfig, type AppConfig } from '../../src/config.js'
import { startTestDatabase } from '../helpers/database.js'
import { startTestApp, TEST_SECRET, writeRow } from '../helpers/app.js'

/** A subtest's `t`. */
type Tap = Parameters<Parameters<typeof t.test>[0]>[0]

const REALM = 'eva-heartbeat-api'
const ISSUER = 'https://issuer.example/auth/v1'
const nowSeconds = (): number => Math.floor(Date.now() / 1000)
/** Seconds either side of a clock-tolerance boundary: far more than a request takes, even on a loaded machine. */
const MARGIN = 5

// ---------------------------------------------------------------------------------------------------------------
// Token makers. Most cases are crafted by hand so that every byte is the attacker's choice.

/** base64url of JSON (objects), UTF-8 text (strings) or raw bytes (Buffers). */
function b64 (value: object | string | Buffer): string {
  if (Buffer.isBuffer(value)) return value.toString('base64url')
  return Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url')
}

/** HS256 over any header and payload parts, with the given secret (the real one unless told). */
function hmacToken (header: object | string | Buffer, payload: object | string | Buffer, secret: string | Buffer = TEST_SECRET): string {
  const input = `${b64(header)}.${b64(payload)}`
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`
}

const HS256 = { alg: 'HS256', typ: 'JWT' }
const claims = (extra: Record<string, unknown> = {}): Record<string, unknown> =>
  ({ role: 'authenticated', sub: 'attack-suite', exp: nowSeconds() + 3600, ...extra })

/** A validly signed HS256 token with these claims (exp one hour ahead unless given). */
const hs = (extra: Record<string, unknown> = {}): string => hmacToken(HS256, claims(extra))

async function signed (alg: string, key: CryptoKey | Uint8Array, header: Record<string, unknown> = {}, extra: Record<string, unknown> = {}): Promise<string> {
  return await new SignJWT(claims(extra) as JWTPayload).setProtectedHeader({ alg, typ: 'JWT', ...header }).sign(key)
}

const parts = (jwt: string): [string, string, string] => {
  const [header = '', payload = '', signature = ''] = jwt.split('.')
  return [header, payload, signature]
}

// ---------------------------------------------------------------------------------------------------------------
// Assertions on what the caller sees.

type Challenge = 'bare' | 'invalid_token' | 'insufficient_scope'

const quoteSafe = (text: string): string => text.replace(/[^\x20-\x21\x23-\x5B\x5D-\x7E]/g, '')

/** A problem+json answer with this status and code; nothing of the token in it. */
function assertProblem (t: Tap, res: LightMyRequestResponse, status: number, code: string, sent?: string): Record<string, unknown> {
  t.equal(res.statusCode, status, `status ${status} (body: ${res.body.slice(0, 300)})`)
  t.match(res.headers['content-type'], /^application\/problem\+json/)
  const body = res.json<Record<string, unknown>>()
  t.same(Object.keys(body).sort(), ['code', 'detail', 'status', 'title', 'type'])
  t.equal(body.code, code)
  t.equal(body.status, status)
  if (sent !== undefined) {
    for (const part of sent.split('.').filter((p) => p.length >= 8)) {
      t.notOk(res.body.includes(part), 'no part of the token comes back in the body')
      t.notOk(JSON.stringify(res.headers).includes(part), 'nor in a header')
    }
  }
  return body
}

/** A 401 or 403 with the exact challenge: realm, error and the body's detail as error_description. */
function assertRefused (t: Tap, res: LightMyRequestResponse, status: 401 | 403, code: string, challenge: Challenge, sent?: string): string {
  const body = assertProblem(t, res, status, code, sent)
  const expected = challenge === 'bare'
    ? `Bearer realm="${REALM}"`
    : `Bearer realm="${REALM}", error="${challenge}", error_description="${quoteSafe(String(body.detail))}"`
  t.equal(res.headers['www-authenticate'], expected, 'WWW-Authenticate')
  t.equal(res.headers['retry-after'], undefined, 'no Retry-After on a refusal')
  return String(body.detail)
}

const invalid = (t: Tap, res: LightMyRequestResponse, sent?: string, code = 'invalid_token'): string =>
  assertRefused(t, res, 401, code, 'invalid_token', sent)

/** The signing keys could not be had: 503 jwks_unavailable with Retry-After, and no challenge (the token is not at fault). */
function assertKeysUnavailable (t: Tap, res: LightMyRequestResponse, sent?: string): void {
  assertProblem(t, res, 503, 'jwks_unavailable', sent)
  t.equal(res.headers['retry-after'], '5', 'Retry-After: 5')
  t.equal(res.headers['www-authenticate'], undefined, 'no WWW-Authenticate: this is not a refusal of the token')
}

function assertServed (t: Tap, res: LightMyRequestResponse, what = 'served'): void {
  t.equal(res.statusCode, 200, `${what} (body: ${res.body.slice(0, 300)})`)
  t.equal(res.headers['www-authenticate'], undefined)
}

async function get (app: FastifyInstance, authorization?: string | string[], url = '/heartbeat'): Promise<LightMyRequestResponse> {
  // An array sends one Authorization header per element, as a client (or a proxy) that adds a second one would.
  const headers = authorization === undefined ? {} : { authorization: authorization as string }
  return await app.inject({ method: 'GET', url, headers })
}

const bearer = (jwt: string): string => `Bearer ${jwt}`

// ---------------------------------------------------------------------------------------------------------------
// One database for the file, the healthy row written once; apps per configuration.

const db = await startTestDatabase()
t.teardown(db.close)
await writeRow(db.admin, { lastPollAgo: 5, nextPollIn: 3600 })

const small = { DB_POOL_MAX: '1' }
/** JWT_SECRET only, the default clock tolerance (30 s). */
const { app } = await startTestApp(t, { db, env: small })
/** JWT_SECRET only, a 5 s clock tolerance. */
const { app: tolerance5 } = await startTestApp(t, { db, env: { ...small, JWT_CLOCK_TOLERANCE_SECONDS: '5' } })
/** JWT_AUDIENCE and JWT_ISSUER both configured. */
const { app: checked } = await startTestApp(t, { db, env: { ...small, JWT_AUDIENCE: 'eva', JWT_ISSUER: ISSUER } })

// Signing keys as Supabase publishes them, plus a genuine ES384 key the service must still refuse to use.
const ec = await generateKeyPair('ES256', { extractable: true })
const rsa = await generateKeyPair('RS256', { extractable: true })
const ec384 = await generateKeyPair('ES384')
const ecNext = await generateKeyPair('ES256')
const publish = async (kid: string, alg: string, key: CryptoKey): Promise<JWK> => ({ ...await exportJWK(key), kid, alg, use: 'sig' })
const EC_JWK = await publish('ec-1', 'ES256', ec.publicKey)
const RSA_JWK = await publish('rsa-1', 'RS256', rsa.publicKey)
const EC384_JWK = await publish('ec384-1', 'ES384', ec384.publicKey)
const EC_NEXT_JWK = await publish('ec-2', 'ES256', ecNext.publicKey)

// A loopback server with one JWKS endpoint per test; each endpoint answers as its test tells it to.
type Respond = (response: ServerResponse) => void
interface KeySetEndpoint { url: string, requests: number, respond: Respond }

const sendJson = (body: unknown, status = 200, type = 'application/json'): Respond => (res) => {
  res.writeHead(status, { 'content-type': type }).end(typeof body === 'string' ? body : JSON.stringify(body))
}
const keySet = (...keys: JWK[]): Respond => sendJson({ keys })
/** Answers only after `ms` (unless the client gave up first). */
const late = (ms: number, then: Respond): Respond => (res) => {
  const timer = setTimeout(() => then(res), ms)
  res.on('close', () => clearTimeout(timer))
}
/** Sends the headers and half the body at once, the rest after `ms`. */
const stalling = (ms: number, ...keys: JWK[]): Respond => (res) => {
  const text = JSON.stringify({ keys })
  res.writeHead(200, { 'content-type': 'application/json' }).write(text.slice(0, 10))
  const timer = setTimeout(() => res.end(text.slice(10)), ms)
  res.on('close', () => clearTimeout(timer))
}

const endpoints = new Map<string, KeySetEndpoint>()
function onRequest (request: IncomingMessage, response: ServerResponse): void {
  const endpoint = endpoints.get(request.url ?? '')
  if (endpoint === undefined) {
    response.writeHead(404).end()
    return
  }
  endpoint.requests += 1
  endpoint.respond(response)
}

async function listen (server: Server, port = 0): Promise<number> {
  server.listen(port, '127.0.0.1')
  await once(server, 'listening')
  return (server.address() as AddressInfo).port
}
async function shut (server: Server): Promise<void> {
  server.closeAllConnections()
  await new Promise<void>((resolve) => server.close(() => resolve()))
}

const keyServer = createServer(onRequest)
const keyServerPort = await listen(keyServer)
t.teardown(async () => await shut(keyServer))

let endpointCount = 0
function endpoint (respond: Respond = keySet(EC_JWK, RSA_JWK, EC384_JWK)): KeySetEndpoint {
  endpointCount += 1
  const path = `/tenant-${endpointCount}/auth/v1/.well-known/jwks.json`
  const created = { url: `http://127.0.0.1:${keyServerPort}${path}`, requests: 0, respond }
  endpoints.set(path, created)
  return created
}

type JwksTimings = Pick<JwtSettings, 'jwksTimeoutMs' | 'jwksCacheMaxAgeMs' | 'jwksCooldownMs'>

/** An app that knows only the JWKS at `url` (JWT_SECRET empty counts as unset), with these JWKS timings. */
async function startJwksApp (t: Tap, url: string, timings: JwksTimings = {}, env: Record<string, string> = {}): Promise<FastifyInstance> {
  const config = loadConfig({
    DATABASE_URL: db.apiUrl, JWKS_URL: url, LOG_LEVEL: 'silent', DB_STATEMENT_TIMEOUT_MS: '2000',
    // As in startTestApp: hundreds of refusals from one address; the limit itself is tested in defences.test.ts.
    AUTH_FAILURE_LIMIT_PER_MINUTE: '0', ...small, ...env
  }) as AppConfig
  const built = await buildApp({ ...config, jwt: { ...config.jwt, ...timings } })
  t.teardown(async () => await built.close())
  await built.ready()
  return built
}

/** A JWKS timeout short enough to keep the suite quick, long enough that a loopback answer never misses it. */
const FAILING = { jwksTimeoutMs: 1000 } satisfies JwksTimings
/** How long a "slow" endpoint waits: well beyond the timeout, so only a timeout can end the request in time. */
const SLOW_MS = 6000

// The two apps most cases use: JWKS only, and JWKS with JWT_SECRET.
const shared = endpoint()
const jwksOnly = await startJwksApp(t, shared.url)
const jwksAndSecret = await startJwksApp(t, shared.url, {}, { JWT_SECRET: TEST_SECRET })

const es256 = async (header: Record<string, unknown> = {}, extra: Record<string, unknown> = {}): Promise<string> =>
  await signed('ES256', ec.privateKey, { kid: 'ec-1', ...header }, extra)
const rs256 = async (header: Record<string, unknown> = {}, extra: Record<string, unknown> = {}): Promise<string> =>
  await signed('RS256', rsa.privateKey, { kid: 'rsa-1', ...header }, extra)

t.test('the JWKS apps serve genuine ES256 and RS256 tokens (the baseline every refusal below is measured against)', async (t) => {
  assertServed(t, await get(jwksOnly, bearer(await es256())), 'ES256')
  assertServed(t, await get(jwksOnly, bearer(await rs256())), 'RS256')
  assertServed(t, await get(jwksAndSecret, bearer(await es256())), 'ES256 with a secret configured too')
  assertServed(t, await get(jwksAndSecret, bearer(hs())), 'HS256 with a secret configured too')
  assertServed(t, await get(app, bearer(hs())), 'HS256')
})

// ---------------------------------------------------------------------------------------------------------------

t.test('alg none, in every spelling, with and without a signature: 401 invalid_token', async (t) => {
  const payload = claims({ role: 'service_role' })
  for (const alg of ['none', 'None', 'NONE', 'nOnE']) {
    const empty = `${b64({ alg, typ: 'JWT' })}.${b64(payload)}.`
    const withSignature = hmacToken({ alg, typ: 'JWT' }, payload)
    for (const [target, name] of [[app, 'secret'], [jwksOnly, 'JWKS'], [jwksAndSecret, 'both']] as const) {
      invalid(t, await get(target, bearer(empty)), empty)
      invalid(t, await get(target, bearer(withSignature)), withSignature)
      t.comment(`alg ${alg} refused by the ${name} app`)
    }
  }
})

t.test('no alg, an empty alg, or an alg that is not a string: 401 invalid_token', async (t) => {
  for (const header of [{ typ: 'JWT' }, { alg: '' }, { alg: 256 }, { alg: ['HS256'] }, { alg: null }]) {
    const sent = hmacToken(header, claims())
    invalid(t, await get(app, bearer(sent)), sent)
  }
})

t.test('algorithms the service does not accept: 401 invalid_token, and no JWKS fetch for them', async (t) => {
  t.test('HS384 and HS512 signed with the real secret', async (t) => {
    for (const alg of ['HS384', 'HS512']) {
      const sent = await signed(alg, new TextEncoder().encode(TEST_SECRET))
      invalid(t, await get(app, bearer(sent)), sent)
      invalid(t, await get(jwksAndSecret, bearer(sent)), sent)
    }
  })

  t.test('PS256, RS384, RS512, ES512 and EdDSA with keys of their own', async (t) => {
    for (const alg of ['PS256', 'RS384', 'RS512', 'ES512', 'EdDSA']) {
      const { privateKey } = await generateKeyPair(alg)
      const sent = await signed(alg, privateKey, { kid: 'rsa-1' })
      invalid(t, await get(jwksOnly, bearer(sent)), sent)
      invalid(t, await get(app, bearer(sent)), sent)
    }
  })

  t.test('ES384 with a genuine key that the JWKS publishes: still refused, and the JWKS is not asked', async (t) => {
    assertServed(t, await get(jwksOnly, bearer(await es256())), 'warm the cache')
    const before = shared.requests
    const sent = await signed('ES384', ec384.privateKey, { kid: 'ec384-1' })
    invalid(t, await get(jwksOnly, bearer(sent)), sent)
    t.equal(shared.requests, before, 'an algorithm outside the allowed list never reaches the key set')
  })
})

t.test('algorithm confusion: HS256 signed with the public key\'s own bytes', async (t) => {
  const forms: Array<[string, string]> = [
    ['EC key as SPKI PEM', await exportSPKI(ec.publicKey)],
    ['RSA key as SPKI PEM', await exportSPKI(rsa.publicKey)],
    ['EC key as the JWK JSON the JWKS publishes', JSON.stringify(EC_JWK)],
    ['RSA key as the JWK JSON the JWKS publishes', JSON.stringify(RSA_JWK)],
    ['the whole JWKS document', JSON.stringify({ keys: [EC_JWK, RSA_JWK, EC384_JWK] })]
  ]
  for (const [form, secret] of forms) {
    t.test(form, async (t) => {
      for (const kid of ['ec-1', 'rsa-1', undefined]) {
        const sent = hmacToken({ alg: 'HS256', typ: 'JWT', ...(kid === undefined ? {} : { kid }) }, claims({ role: 'service_role' }), secret)
        const before = shared.requests
        invalid(t, await get(jwksOnly, bearer(sent)), sent)
        t.equal(shared.requests, before, 'JWKS only: HS256 is not an accepted algorithm, no key is even looked up')
        invalid(t, await get(jwksAndSecret, bearer(sent)), sent)
        t.equal(shared.requests, before, 'with JWT_SECRET: HS256 is checked against the secret only, never a JWKS key')
      }
    })
  }
})

t.test('keys the token brings along are ignored: embedded jwk, jku, x5u', async (t) => {
  const attacker = await generateKeyPair('ES256', { extractable: true })
  const attackerJwk = await exportJWK(attacker.publicKey)
  let attackerRequests = 0
  const lure = createServer((_request, response) => {
    attackerRequests += 1
    response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [{ ...attackerJwk, kid: 'evil' }] }))
  })
  const lurePort = await listen(lure)
  t.teardown(async () => await shut(lure))
  const lureUrl = `http://127.0.0.1:${lurePort}/jwks.json`
  const headers = [
    { jwk: attackerJwk, kid: 'evil' },
    { jwk: attackerJwk, kid: 'ec-1' },
    { jwk: attackerJwk },
    { jku: lureUrl, kid: 'evil' },
    { jku: lureUrl, kid: 'ec-1' },
    { x5u: lureUrl, kid: 'evil' }
  ]
  for (const header of headers) {
    const sent = await signed('ES256', attacker.privateKey, header, { role: 'service_role' })
    invalid(t, await get(jwksOnly, bearer(sent)), sent)
  }
  t.equal(attackerRequests, 0, 'the URL a token names is never fetched')
})

t.test('wrong key: 401 invalid_token', async (t) => {
  const stranger = await generateKeyPair('RS256')
  const sentRsa = await signed('RS256', stranger.privateKey, { kid: 'rsa-1' }, { role: 'service_role' })
  invalid(t, await get(jwksOnly, bearer(sentRsa)), sentRsa)
  // ES256 naming the RSA key's kid: the key that kid names cannot verify ES256 at all.
  const crossed = await signed('ES256', ec.privateKey, { kid: 'rsa-1' })
  invalid(t, await get(jwksOnly, bearer(crossed)), crossed)
  const nearMiss = hmacToken(HS256, claims({ role: 'service_role' }), `${TEST_SECRET} `)
  invalid(t, await get(app, bearer(nearMiss)), nearMiss)
  const emptySecret = hmacToken(HS256, claims({ role: 'service_role' }), '')
  invalid(t, await get(app, bearer(emptySecret)), emptySecret)
})

t.test('tampered tokens: 401 invalid_token', async (t) => {
  const raise = (jwt: string): string => {
    const [header, , signature] = parts(jwt)
    return `${header}.${b64(claims({ role: 'service_role' }))}.${signature}`
  }
  for (const [name, target, jwt] of [['ES256', jwksOnly, await es256()], ['RS256', jwksOnly, await rs256()]] as const) {
    const sent = raise(jwt)
    invalid(t, await get(target, bearer(sent)), sent)
    t.comment(`${name}: payload changed`)
  }
  const [, payload, signature] = parts(await es256())
  const reheadered = `${b64({ alg: 'ES256', typ: 'JWT', kid: 'ec-1', extra: 1 })}.${payload}.${signature}`
  invalid(t, await get(jwksOnly, bearer(reheadered)), reheadered)
  const swapped = `${parts(hs({ role: 'service_role' })).slice(0, 2).join('.')}.${parts(hs({ role: 'authenticated', sub: 'x' }))[2]}`
  invalid(t, await get(app, bearer(swapped)), swapped)
})

t.test('truncated or missing signatures: 401 invalid_token', async (t) => {
  const cases: Array<[string, FastifyInstance, string]> = []
  for (const [name, target, jwt] of [['HS256', app, hs()], ['ES256', jwksOnly, await es256()], ['RS256', jwksOnly, await rs256()]] as const) {
    const [header, payload, signature] = parts(jwt)
    cases.push(
      [`${name} one character short`, target, `${header}.${payload}.${signature.slice(0, -1)}`],
      [`${name} four characters short`, target, `${header}.${payload}.${signature.slice(0, -4)}`],
      [`${name} half`, target, `${header}.${payload}.${signature.slice(0, signature.length / 2)}`],
      [`${name} empty`, target, `${header}.${payload}.`],
      [`${name} gone (two segments)`, target, `${header}.${payload}`]
    )
  }
  for (const [name, target, sent] of cases) {
    t.test(name, async (t) => { invalid(t, await get(target, bearer(sent)), sent) })
  }
})

t.test('not three segments, or empty ones: 401 invalid_token', async (t) => {
  const [header, payload, signature] = parts(hs())
  const shapes: Array<[string, string]> = [
    ['one segment', header],
    ['two segments', `${header}.${payload}`],
    ['four segments', `${header}.${payload}.${signature}.${signature}`],
    ['four segments, the last empty', `${header}.${payload}.${signature}.`],
    ['five segments (a JWE)', `${b64({ alg: 'dir', enc: 'A256GCM' })}..${signature}.${payload}.${signature}`],
    ['dots only', '..'],
    ['one dot', '.'],
    ['an empty header', `.${payload}.${signature}`],
    ['an empty payload', `${header}..${signature}`],
    ['base64 (not base64url) characters', `${header}.${payload}.${signature.replace(/[-_]/g, '+')}+/`]
  ]
  for (const [name, sent] of shapes) {
    t.test(name, async (t) => { invalid(t, await get(app, bearer(sent)), sent) })
  }
})

t.test('headers and payloads that are not JSON, not objects, or not UTF-8: 401 invalid_token', async (t) => {
  const payload = claims({ role: 'service_role' })
  const badHeaders: Array<[string, object | string | Buffer]> = [
    ['header not JSON', 'alg=HS256'],
    ['header JSON but an array', [HS256]],
    ['header JSON but a string', '"HS256"'],
    ['header null', 'null'],
    ['header not UTF-8', Buffer.from([0x7b, 0x22, 0x61, 0x6c, 0x67, 0x22, 0x3a, 0x22, 0xff, 0xfe, 0x22, 0x7d])],
    ['header with an unknown critical extension', { ...HS256, crit: ['exp-x'], 'exp-x': 1 }],
    ['header asking for an unencoded payload', { ...HS256, b64: false, crit: ['b64'] }]
  ]
  for (const [name, header] of badHeaders) {
    t.test(name, async (t) => {
      const sent = hmacToken(header, payload)
      invalid(t, await get(app, bearer(sent)), sent)
    })
  }
  // Validly signed with the real secret, so only the payload's form can be what is refused.
  const secret = new TextEncoder().encode(TEST_SECRET)
  const badPayloads: Array<[string, Uint8Array]> = [
    ['payload not JSON', Buffer.from('role=service_role')],
    ['payload JSON but an array', Buffer.from(JSON.stringify([payload]))],
    ['payload JSON but a string', Buffer.from('"service_role"')],
    ['payload JSON null', Buffer.from('null')],
    ['payload empty', new Uint8Array()],
    ['payload not UTF-8', Buffer.concat([Buffer.from(JSON.stringify(payload).slice(0, -1)), Buffer.from(',"x":"'), Buffer.from([0xc3, 0x28]), Buffer.from('"}')])]
  ]
  for (const [name, bytes] of badPayloads) {
    t.test(name, async (t) => {
      const sent = await new CompactSign(bytes).setProtectedHeader(HS256).sign(secret)
      invalid(t, await get(app, bearer(sent)), sent)
    })
  }
  t.test('the same UTF-8 payload without the broken bytes is served (the refusal above is about the encoding)', async (t) => {
    const fine = await new CompactSign(Buffer.from(JSON.stringify({ ...payload, role: 'authenticated', x: '(' }))).setProtectedHeader(HS256).sign(secret)
    assertServed(t, await get(app, bearer(fine)))
  })
})

t.test('the Authorization header itself', async (t) => {
  const jwt = hs()
  const malformed: Array<[string, string]> = [
    ['no scheme, just the token', jwt],
    ['the scheme doubled', `Bearer Bearer ${jwt}`],
    ['two tokens after one scheme', `Bearer ${jwt} ${jwt}`],
    ['two credentials joined with a comma', `Bearer ${jwt}, Bearer ${jwt}`],
    ['two tokens joined with a comma', `Bearer ${jwt},${jwt}`],
    ['a tab instead of a space', `Bearer\t${jwt}`],
    ['another scheme with a JWT', `Token ${jwt}`],
    ['the token in quotes', `Bearer "${jwt}"`]
  ]
  for (const [name, header] of malformed) {
    t.test(`${name}: 401 invalid_token`, async (t) => { invalid(t, await get(app, header), jwt) })
  }

  t.test('two Authorization headers, both valid: 401 invalid_token (Node would silently keep the first)', async (t) => {
    const other = hs({ role: 'service_role', sub: 'second' })
    const detail = invalid(t, await get(app, [bearer(jwt), bearer(other)]), jwt)
    t.match(detail, /one Authorization header/)
    invalid(t, await get(app, [bearer(jwt), '']), jwt)
  })

  t.test('no header: 401 missing_token with a bare challenge', async (t) => {
    assertRefused(t, await get(app), 401, 'missing_token', 'bare')
  })

  t.test('a Bearer scheme with nothing after it: 401 invalid_token', async (t) => {
    invalid(t, await get(app, 'Bearer '))
    invalid(t, await get(app, 'Bearer'))
  })
})

t.test('the clock-tolerance boundary, pinned on both sides', async (t) => {
  for (const [target, tolerance] of [[app, 30], [tolerance5, 5]] as const) {
    t.test(`JWT_CLOCK_TOLERANCE_SECONDS=${tolerance}`, async (t) => {
      const now = nowSeconds()
      assertServed(t, await get(target, bearer(hs({ exp: now - tolerance + MARGIN }))), `exp = now - ${tolerance} + ${MARGIN}: accepted`)
      const expired = hs({ exp: now - tolerance - MARGIN })
      assertRefused(t, await get(target, bearer(expired)), 401, 'token_expired', 'invalid_token', expired)

      assertServed(t, await get(target, bearer(hs({ nbf: now + tolerance - MARGIN }))), `nbf = now + ${tolerance} - ${MARGIN}: accepted`)
      const early = hs({ nbf: now + tolerance + MARGIN })
      assertRefused(t, await get(target, bearer(early)), 401, 'token_not_yet_valid', 'invalid_token', early)

      assertServed(t, await get(target, bearer(hs({ iat: now + tolerance - MARGIN }))), `iat = now + ${tolerance} - ${MARGIN}: accepted`)
      const future = hs({ iat: now + tolerance + MARGIN })
      t.match(invalid(t, await get(target, bearer(future)), future), /iat/)
    })
  }

  t.test('exp exactly now - tolerance is already expired (jose: exp <= now - tolerance)', async (t) => {
    // Only the refusing side of the exact second is robust: a request that straddles a second boundary stays refused.
    const sent = hs({ exp: nowSeconds() - 5 })
    assertRefused(t, await get(tolerance5, bearer(sent)), 401, 'token_expired', 'invalid_token', sent)
  })
})

t.test('registered claims of the wrong type: 401 invalid_token', async (t) => {
  const now = nowSeconds()
  const cases: Array<[string, Record<string, unknown>, RegExp]> = [
    ['exp as a string', { exp: String(now + 3600) }, /exp/],
    ['exp as null', { exp: null }, /exp/],
    ['exp as an object', { exp: { value: now + 3600 } }, /exp/],
    ['exp as true', { exp: true }, /exp/],
    ['nbf as a string', { nbf: String(now - 60) }, /nbf claim must be a number/],
    ['nbf as an array', { nbf: [now - 60] }, /nbf claim must be a number/],
    ['iat as a string', { iat: String(now - 60) }, /iat claim must be a number/],
    ['aud as a number', { aud: 42 }, /aud claim must be a string or an array of strings/],
    ['aud as an array with a number', { aud: ['eva', 42] }, /aud claim/],
    ['aud as an object', { aud: { eva: true } }, /aud claim/],
    ['sub as an object', { sub: { id: 'user-1' } }, /sub claim must be a string/],
    ['sub as a number', { sub: 12345 }, /sub claim must be a string/],
    ['iss as an array', { iss: [ISSUER] }, /iss claim must be a string/],
    ['jti as a number', { jti: 7 }, /jti claim must be a string/]
  ]
  for (const [name, extra, detail] of cases) {
    t.test(name, async (t) => {
      const sent = hs(extra)
      t.match(invalid(t, await get(app, bearer(sent)), sent), detail)
    })
  }
})

t.test('audience and issuer (JWT_AUDIENCE=eva, JWT_ISSUER set)', async (t) => {
  const accepted: Array<[string, Record<string, unknown>]> = [
    ['both match', { aud: 'eva', iss: ISSUER }],
    ['eva among several audiences', { aud: ['other', 'eva'], iss: ISSUER }]
  ]
  for (const [name, extra] of accepted) {
    t.test(`${name}: 200`, async (t) => { assertServed(t, await get(checked, bearer(hs(extra)))) })
  }
  const refused: Array<[string, Record<string, unknown>, string]> = [
    ['another audience', { aud: 'authenticated', iss: ISSUER }, 'invalid_audience'],
    ['audiences without eva', { aud: ['a', 'b'], iss: ISSUER }, 'invalid_audience'],
    ['an empty audience list', { aud: [], iss: ISSUER }, 'invalid_audience'],
    ['the audience in another case', { aud: 'EVA', iss: ISSUER }, 'invalid_audience'],
    ['no audience', { iss: ISSUER }, 'invalid_audience'],
    ['the audience as a number', { aud: 42, iss: ISSUER }, 'invalid_audience'],
    ['another issuer', { aud: 'eva', iss: 'https://evil.example/auth/v1' }, 'invalid_issuer'],
    ['the issuer with a trailing slash', { aud: 'eva', iss: `${ISSUER}/` }, 'invalid_issuer'],
    ['no issuer', { aud: 'eva' }, 'invalid_issuer'],
    ['the issuer as an array holding the right one', { aud: 'eva', iss: [ISSUER] }, 'invalid_issuer'],
    ['both wrong: the issuer is checked first', { aud: 'other', iss: 'https://evil.example' }, 'invalid_issuer']
  ]
  for (const [name, extra, code] of refused) {
    t.test(`${name}: 401 ${code}`, async (t) => {
      const sent = hs(extra)
      invalid(t, await get(checked, bearer(sent)), sent, code)
    })
  }
  t.test('not configured: aud and iss are not matched (only their types are checked)', async (t) => {
    assertServed(t, await get(app, bearer(hs({ aud: 'anyone', iss: 'https://anyone.example' }))))
  })
})

t.test('the role claim', async (t) => {
  for (const role of [{ name: 'service_role' }, 1, true, null, [], ['authenticated', 'service_role']]) {
    t.test(`role ${JSON.stringify(role)}: 401 invalid_token`, async (t) => {
      const sent = hs({ role })
      t.match(invalid(t, await get(app, bearer(sent)), sent), /role claim must be a string/)
    })
  }
  for (const role of ['', 'admin', 'supabase_admin', 'Service_Role', 'SERVICE_ROLE', ' service_role', 'service_role ', 'authenticated\u0000']) {
    t.test(`unknown role ${JSON.stringify(role)}: 403 insufficient_scope`, async (t) => {
      const sent = hs({ role })
      assertRefused(t, await get(app, bearer(sent)), 403, 'insufficient_scope', 'insufficient_scope', sent)
    })
  }
  t.test('a role smuggled in through __proto__ is not a role: 403', async (t) => {
    const payload = `{"sub":"proto","exp":${nowSeconds() + 3600},"__proto__":{"role":"service_role"}}`
    const sent = hmacToken(HS256, payload)
    assertRefused(t, await get(app, bearer(sent)), 403, 'insufficient_scope', 'insufficient_scope', sent)
  })
})

t.test('size: 8192 bytes is not refused for size, 8193 is', async (t) => {
  /** A validly signed token of exactly `length` bytes, grown through a padding claim and a filler in sub. */
  function tokenOfLength (length: number, role = 'authenticated'): string {
    for (let filler = 0; filler < 3; filler += 1) {
      const start = Math.floor((length - hs({ role, sub: 'size', padding: '' }).length) * 3 / 4) - 8
      for (let padding = Math.max(0, start); padding < length; padding += 1) {
        const jwt = hs({ role, sub: `size${'y'.repeat(filler)}`, padding: 'x'.repeat(padding) })
        if (jwt.length === length) return jwt
        if (jwt.length > length) break
      }
    }
    throw new Error(`no token of ${length} bytes`)
  }
  const atLimit = tokenOfLength(MAX_TOKEN_BYTES)
  t.equal(Buffer.byteLength(atLimit), 8192)
  assertServed(t, await get(app, bearer(atLimit)), 'exactly 8192 bytes')

  const overLimit = tokenOfLength(MAX_TOKEN_BYTES + 1)
  t.equal(Buffer.byteLength(overLimit), 8193)
  assertRefused(t, await get(app, bearer(overLimit)), 401, 'token_too_large', 'invalid_token', overLimit)

  const forgedAtLimit = `${atLimit.slice(0, -4)}AAAA`
  invalid(t, await get(app, bearer(forgedAtLimit)), forgedAtLimit)
  t.comment('a bad signature at 8192 bytes is refused by the signature check, not the size check')
})

t.test('kid not in the JWKS: 401 invalid_token, and at most one refetch per cooldown', async (t) => {
  const keys = endpoint()
  const target = await startJwksApp(t, keys.url)
  assertServed(t, await get(target, bearer(await es256())), 'a known kid')
  t.equal(keys.requests, 1)
  const strangers = [
    'ec-9', '', '../../../../etc/passwd', "ec-1' or '1'='1", 'EC-1', 'ec-1 ', 'x'.repeat(1000)
  ]
  for (const kid of strangers) {
    const sent = await signed('ES256', ec.privateKey, { kid })
    invalid(t, await get(target, bearer(sent)), sent)
  }
  for (const kid of [7, { id: 'ec-1' }, ['ec-1'], null]) {
    const sent = `${b64({ alg: 'ES256', kid })}.${parts(await es256())[1]}.${parts(await es256())[2]}`
    invalid(t, await get(target, bearer(sent)), sent)
  }
  t.equal(keys.requests, 1, 'unknown kids within the 30 s cooldown do not make the service fetch the JWKS again')
  // Without a kid jose looks for the one key that fits the algorithm: there is exactly one ES256 key here.
  assertServed(t, await get(target, bearer(await signed('ES256', ec.privateKey))), 'no kid, one ES256 key published')
})

// ---------------------------------------------------------------------------------------------------------------
// The signing keys unavailable: 503, never 401, and never cached.

/** Failing requests (each a fetch: a failure is not cached), then the endpoint recovers and the next request is served. */
async function failsThenRecovers (t: Tap, keys: KeySetEndpoint, fail: Respond, timings: JwksTimings = FAILING, failures = 2): Promise<void> {
  keys.respond = fail
  const target = await startJwksApp(t, keys.url, timings)
  const sent = await es256()
  for (let i = 0; i < failures; i += 1) assertKeysUnavailable(t, await get(target, bearer(sent)), sent)
  t.equal(keys.requests, failures, 'each failing request tried the endpoint again: the failure was not cached')
  keys.respond = keySet(EC_JWK, RSA_JWK)
  assertServed(t, await get(target, bearer(sent)), 'the first request after the endpoint recovers')
  t.equal(keys.requests, failures + 1)
  assertServed(t, await get(target, bearer(await rs256())), 'and the keys are cached from then on')
  t.equal(keys.requests, failures + 1)
}

t.test('JWKS unavailable: 503 jwks_unavailable with Retry-After, not 401, and not cached', async (t) => {
  t.test('unreachable (a closed port), then listening again on that port', async (t) => {
    const revived = createServer((_request, response) => { keySet(EC_JWK, RSA_JWK)(response) })
    const port = await listen(revived)
    await shut(revived)
    const target = await startJwksApp(t, `http://127.0.0.1:${port}/jwks.json`, FAILING)
    const sent = await es256()
    assertKeysUnavailable(t, await get(target, bearer(sent)), sent)
    assertKeysUnavailable(t, await get(target, bearer(await rs256())))
    await listen(revived, port)
    t.teardown(async () => await shut(revived))
    assertServed(t, await get(target, bearer(sent)), 'served as soon as the endpoint listens again')
  })

  t.test('a host name that does not resolve (.invalid)', async (t) => {
    const target = await startJwksApp(t, 'http://jwks.eva-heartbeat.invalid/jwks.json', FAILING)
    assertKeysUnavailable(t, await get(target, bearer(await es256())))
  })

  t.test('slow: the headers come after the timeout', async (t) => {
    await failsThenRecovers(t, endpoint(), late(SLOW_MS, keySet(EC_JWK, RSA_JWK)))
  })

  t.test('slow: the headers come at once, the body after the timeout', async (t) => {
    await failsThenRecovers(t, endpoint(), stalling(SLOW_MS, EC_JWK, RSA_JWK))
  })

  t.test('slow, with the default timeout (2000 ms)', async (t) => {
    await failsThenRecovers(t, endpoint(), late(SLOW_MS, keySet(EC_JWK, RSA_JWK)), {}, 1)
  })

  const junk: Array<[string, Respond]> = [
    ['HTTP 500', sendJson({ error: 'boom' }, 500)],
    ['HTTP 404', sendJson('not found', 404, 'text/plain')],
    ['HTTP 302 to a good JWKS (redirects are not followed)', (res) => { res.writeHead(302, { location: shared.url }).end() }],
    ['HTTP 204', (res) => { res.writeHead(204).end() }],
    ['200 with an HTML page', sendJson('<!doctype html><title>Sign in</title><p>Please log in', 200, 'text/html')],
    ['200 with an empty body', sendJson('', 200)],
    ['200 with {}', sendJson({})],
    ['200 with {"keys":"x"}', sendJson({ keys: 'x' })],
    ['200 with {"keys":[1]}', sendJson({ keys: [1] })],
    ['200 with a JSON array', sendJson([EC_JWK, RSA_JWK])],
    ['200 with the keys\' JSON cut short', sendJson(JSON.stringify({ keys: [EC_JWK] }).slice(0, 40))]
  ]
  for (const [name, respond] of junk) {
    t.test(name, async (t) => { await failsThenRecovers(t, endpoint(), respond) })
  }

  // A set that is a key set but publishes an unusable key under the token's kid: jose caches the set (it was fetched
  // fine), so the verifier refetches it itself, at most once per cooldown, as jose does for an unknown kid.
  const weak = generateKeyPairSync('rsa', { modulusLength: 1024 })
  const weakInput = `${b64({ alg: 'RS256', typ: 'JWT', kid: 'rsa-1' })}.${b64(claims())}`
  const weakToken = `${weakInput}.${rsaSign('sha256', Buffer.from(weakInput), weak.privateKey).toString('base64url')}`
  const unusable: Array<[string, JWK, string]> = [
    ['a malformed EC key', { ...EC_JWK, x: 'not-a-point', y: 'not-a-point' }, await es256()],
    ['a private key', { ...EC_JWK, d: (await exportJWK(ec.privateKey)).d ?? '' }, await es256()],
    ['an RSA key under 2048 bits', { ...weak.publicKey.export({ format: 'jwk' }), kid: 'rsa-1', alg: 'RS256', use: 'sig' }, weakToken]
  ]
  for (const [name, key, sent] of unusable) {
    t.test(`200 with ${name} under the token's kid`, async (t) => {
      const good = key.kid === 'rsa-1' ? EC_JWK : RSA_JWK
      const goodToken = key.kid === 'rsa-1' ? await es256() : await rs256()

      t.test('503 for its tokens, the set\'s other keys still served, no refetch within the cooldown (30 s)', async (t) => {
        const keys = endpoint(keySet(key, good))
        const target = await startJwksApp(t, keys.url, FAILING)
        assertKeysUnavailable(t, await get(target, bearer(sent)), sent)
        assertKeysUnavailable(t, await get(target, bearer(sent)), sent)
        assertServed(t, await get(target, bearer(goodToken)), 'a token for the set\'s good key')
        t.equal(keys.requests, 1, 'an unusable key does not make every request fetch the set')
      })

      t.test('served once the JWKS is corrected and the cooldown since the last fetch has passed', async (t) => {
        const COOLDOWN_MS = 300
        const keys = endpoint(keySet(key, good))
        const target = await startJwksApp(t, keys.url, { ...FAILING, jwksCooldownMs: COOLDOWN_MS })
        assertKeysUnavailable(t, await get(target, bearer(sent)), sent)
        keys.respond = keySet(key.kid === 'rsa-1' ? RSA_JWK : EC_JWK, good)
        await sleep(COOLDOWN_MS + 200)
        const fetched = keys.requests
        const res = await get(target, bearer(sent))
        if (key.kid === 'rsa-1') {
          // The weak key's token was never signed by the corrected key: now the token is what is wrong.
          invalid(t, res, sent)
        } else {
          assertServed(t, res, 'the same token, against the corrected set')
        }
        t.equal(keys.requests, fetched + 1, 'one refetch')
      })
    })
  }

  t.test('LIVENESS_PUBLIC=false: /heartbeat/liveness answers the same 503 problem', async (t) => {
    const keys = endpoint(sendJson('down', 500, 'text/plain'))
    const target = await startJwksApp(t, keys.url, FAILING, { LIVENESS_PUBLIC: 'false' })
    assertKeysUnavailable(t, await get(target, bearer(await es256()), '/heartbeat/liveness'))
    keys.respond = keySet(EC_JWK)
    const res = await get(target, bearer(await es256()), '/heartbeat/liveness')
    t.equal(res.statusCode, 200, res.body)
    t.equal(res.json<{ state: string }>().state, 'alive')
  })

  t.test('with keys cached: known kids keep working through an outage, an unknown kid is 503 (it cannot be checked)', async (t) => {
    const keys = endpoint(keySet(EC_JWK))
    const target = await startJwksApp(t, keys.url, { ...FAILING, jwksCooldownMs: 0 })
    assertServed(t, await get(target, bearer(await es256())), 'cache warmed')
    keys.respond = sendJson('down', 503, 'text/plain')
    assertServed(t, await get(target, bearer(await es256())), 'a known kid during the outage, from the cache')
    const unknown = await signed('ES256', ecNext.privateKey, { kid: 'ec-2' })
    assertKeysUnavailable(t, await get(target, bearer(unknown)), unknown)
    keys.respond = keySet(EC_JWK, EC_NEXT_JWK)
    assertServed(t, await get(target, bearer(unknown)), 'the same token once the endpoint is back')
  })

  t.test('with the cache expired: every JWKS token is 503 until the endpoint is back', async (t) => {
    const keys = endpoint(keySet(EC_JWK))
    const target = await startJwksApp(t, keys.url, { ...FAILING, jwksCacheMaxAgeMs: 300 })
    assertServed(t, await get(target, bearer(await es256())), 'cache warmed')
    keys.respond = sendJson('down', 502, 'text/plain')
    await sleep(500)
    assertKeysUnavailable(t, await get(target, bearer(await es256())))
    keys.respond = keySet(EC_JWK)
    assertServed(t, await get(target, bearer(await es256())), 'served again as soon as the endpoint is back')
  })

  t.test('HS256 tokens do not depend on the JWKS: served while it is down', async (t) => {
    const keys = endpoint(sendJson('down', 500, 'text/plain'))
    const target = await startJwksApp(t, keys.url, FAILING, { JWT_SECRET: TEST_SECRET })
    assertServed(t, await get(target, bearer(hs())))
    assertKeysUnavailable(t, await get(target, bearer(await es256())))
    t.equal(keys.requests, 1, 'only the ES256 token needed the key set')
  })
})

// ---------------------------------------------------------------------------------------------------------------
// Key rotation, exercised with jose's real cache: an unknown kid refetches once the cooldown since the last fetch has
// passed; a removed key is refused once the cached set is older than its maximum age.

t.test('key rotation', async (t) => {
  const next = async (): Promise<string> => await signed('ES256', ecNext.privateKey, { kid: 'ec-2' })

  t.test('a new kid is accepted once the JWKS publishes it (after the cooldown since the last fetch)', async (t) => {
    const COOLDOWN_MS = 300
    const keys = endpoint(keySet(EC_JWK))
    const target = await startJwksApp(t, keys.url, { jwksCooldownMs: COOLDOWN_MS })
    assertServed(t, await get(target, bearer(await es256())), 'the old key')
    const early = await next()
    invalid(t, await get(target, bearer(early)), early)
    t.comment('a token signed with a key before it is published is refused')

    keys.respond = keySet(EC_JWK, EC_NEXT_JWK)
    await sleep(COOLDOWN_MS + 200)
    const fetched = keys.requests
    assertServed(t, await get(target, bearer(await next())), 'the new kid, once published')
    t.equal(keys.requests, fetched + 1, 'the unknown kid made the service fetch the JWKS again')
    assertServed(t, await get(target, bearer(await es256())), 'the old key, still published, still accepted')

    keys.respond = keySet(EC_NEXT_JWK)
    assertServed(t, await get(target, bearer(await es256())), 'the old key just after its removal: still in the cache (10 min)')
    t.equal(keys.requests, fetched + 1, 'a known kid never refetches')
  })

  t.test('within the cooldown (30 s by default), a newly published kid is refused without a fetch', async (t) => {
    const keys = endpoint(keySet(EC_JWK))
    const target = await startJwksApp(t, keys.url)
    assertServed(t, await get(target, bearer(await es256())))
    keys.respond = keySet(EC_JWK, EC_NEXT_JWK)
    const sent = await next()
    invalid(t, await get(target, bearer(sent)), sent)
    t.equal(keys.requests, 1)
  })

  t.test('the old kid is refused once it is removed and the cached set has expired', async (t) => {
    // Long enough that the requests after a refresh all fall inside it, even on a loaded machine.
    const MAX_AGE_MS = 2000
    const keys = endpoint(keySet(EC_JWK, EC_NEXT_JWK))
    const target = await startJwksApp(t, keys.url, { jwksCacheMaxAgeMs: MAX_AGE_MS })
    assertServed(t, await get(target, bearer(await es256())), 'both keys published: the old one')
    assertServed(t, await get(target, bearer(await next())), 'both keys published: the new one')

    keys.respond = keySet(EC_NEXT_JWK)
    const old = await es256()
    assertServed(t, await get(target, bearer(old)), 'removed, but the cached set is not yet expired: still accepted')
    await sleep(MAX_AGE_MS + 300)
    const fetched = keys.requests
    invalid(t, await get(target, bearer(old)), old)
    t.equal(keys.requests, fetched + 1, 'the expired cache was refreshed, and the refreshed set lacks the old kid')
    assertServed(t, await get(target, bearer(await next())), 'the new key from the refreshed set')
    invalid(t, await get(target, bearer(old)), old)
    t.equal(keys.requests, fetched + 1, 'neither a known kid nor the refused old one (within the cooldown) fetches again')
  })
})
