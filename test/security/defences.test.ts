// The defences (issue 6, item 6), as a client sees them: the failed-authentication limit, the security headers, CORS,
// header and body size limits, request timeouts and keep-alive. The real app against a real PostgreSQL server;
// through app.inject where the HTTP parser plays no part, over real sockets where it does.
import { Agent, request as httpRequest } from 'node:http'
import { connect } from 'node:net'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import t, { type Test } from 'tap'
import { HTTP_LIMITS } from '../../src/http/limits.js'
import { bearer, rowText, startTestApp, token, writeRow } from '../helpers/app.js'
import { startTestDatabase } from '../helpers/database.js'
import { connectSse } from '../helpers/sse.js'
import { delay, eventually } from '../helpers/wait.js'

const db = await startTestDatabase()
t.teardown(db.close)
await writeRow(db.admin)

const reader = await bearer('authenticated')
const admin = await bearer('service_role')
const forged = { authorization: `Bearer ${await token({ role: 'service_role', sub: 'mallory' }, 'not-the-secret-0123456789-0123456789')}` }
/** The production default (the test helper turns the limit off for the other suites). */
const PRODUCTION_LIMIT = { AUTH_FAILURE_LIMIT_PER_MINUTE: '20' }
const PAUSE = JSON.stringify({ status: 'stopping', paused_reason: 'defences test' })

function assertProblem (t: Test, res: LightMyRequestResponse, status: number, code: string, what: string): void {
  t.equal(res.statusCode, status, `${what}: ${status}`)
  t.match(String(res.headers['content-type']), /^application\/problem\+json/, `${what}: problem+json`)
  const body = res.json<Record<string, unknown>>()
  t.equal(body.code, code, `${what}: code ${code}`)
  t.equal(body.status, status, `${what}: status member`)
  t.equal(body.type, `urn:eva-heartbeat-api:problem:${code}`, `${what}: type`)
}

function assertLimited (t: Test, res: LightMyRequestResponse, what: string, windowSeconds = 60): void {
  assertProblem(t, res, 429, 'too_many_requests', what)
  const retryAfter = Number(res.headers['retry-after'])
  t.ok(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= windowSeconds, `${what}: Retry-After ${String(res.headers['retry-after'])} in 1..${windowSeconds}`)
  t.equal(res.headers['www-authenticate'], undefined, `${what}: no challenge (the token was not looked at)`)
  t.match(res.json<{ detail: string }>().detail, /failed authentications/)
}

const getHeartbeat = async (app: FastifyInstance, headers: Record<string, string>, remoteAddress?: string): Promise<LightMyRequestResponse> =>
  await app.inject({ url: '/heartbeat', headers, ...(remoteAddress === undefined ? {} : { remoteAddress }) })

/** Sends `count` forged tokens and checks each is a plain 401 (not yet limited). */
async function failAuthentication (t: Test, app: FastifyInstance, count: number, remoteAddress?: string): Promise<void> {
  let unauthorized = 0
  for (let i = 0; i < count; i++) {
    const res = await getHeartbeat(app, forged, remoteAddress)
    if (res.statusCode === 401 && res.json<{ code: string }>().code === 'invalid_token') unauthorized++
  }
  t.equal(unauthorized, count, `${count} forged tokens: each 401 invalid_token`)
}

t.test('failed authentication: 20 a minute per address, then 429 on every authenticated route', async (t) => {
  const { app } = await startTestApp(t, { db, env: PRODUCTION_LIMIT })
  await failAuthentication(t, app, 20)
  assertLimited(t, await getHeartbeat(app, forged), 'the 21st forged token')
  assertLimited(t, await getHeartbeat(app, reader), 'a good token from the same address')

  const before = await rowText(db.admin)
  assertLimited(t, await app.inject({ method: 'PATCH', url: '/heartbeat', headers: { ...admin, 'content-type': 'application/json' }, payload: PAUSE }), 'PATCH with a good service_role token')
  t.equal(await rowText(db.admin), before, 'the refused PATCH left the row as it was')
  assertLimited(t, await app.inject({ url: '/metrics', headers: reader }), '/metrics with a good token')
  assertLimited(t, await app.inject({ url: '/heartbeat/events', headers: reader }), '/heartbeat/events with a good token')
  const head = await app.inject({ method: 'HEAD', url: '/heartbeat', headers: reader })
  t.equal(head.statusCode, 429, 'HEAD /heartbeat: 429')
  t.ok(Number(head.headers['retry-after']) >= 1, 'HEAD /heartbeat: Retry-After')

  // What never authenticates is never limited.
  const liveness = await app.inject({ url: '/heartbeat/liveness' })
  t.equal(liveness.statusCode, 200, 'public liveness from the same address: its verdict')
  t.equal((await app.inject({ url: '/livez' })).statusCode, 200, '/livez')
  t.equal((await app.inject({ url: '/readyz' })).statusCode, 200, '/readyz')
  t.equal((await app.inject({ url: '/openapi.json' })).statusCode, 200, '/openapi.json')

  // Another address has its own count.
  t.equal((await getHeartbeat(app, reader, '192.0.2.7')).statusCode, 200, 'a good token from another address: 200')
  assertProblem(t, await getHeartbeat(app, forged, '192.0.2.7'), 401, 'invalid_token', 'a forged token from another address')
  // IPv6 addresses count per /64 (the plugin's grouping), so an attacker cannot rotate through one network's addresses.
  await failAuthentication(t, app, 20, '2001:db8:1:2::a')
  const neverVerified = await bearer('authenticated', { sub: 'never-verified' })
  assertLimited(t, await getHeartbeat(app, neverVerified, '2001:db8:1:2::b'), 'another address in the same IPv6 /64, a token never verified')
  // Issue 10: a token already verified (in the token cache) costs no signature check, so it is never refused.
  t.equal((await getHeartbeat(app, reader, '2001:db8:1:2::b')).statusCode, 200, 'the same /64, a token verified before: 200')
  t.equal((await getHeartbeat(app, reader, '2001:db8:1:3::a')).statusCode, 200, 'another /64: 200')
})

t.test('what does not count: no token, a 403, a malformed header does', async (t) => {
  const { app } = await startTestApp(t, { db, env: { AUTH_FAILURE_LIMIT_PER_MINUTE: '5' } })
  for (let i = 0; i < 30; i++) {
    const res = await getHeartbeat(app, {})
    if (res.statusCode !== 401) t.fail(`no token: ${res.statusCode}`)
  }
  assertProblem(t, await getHeartbeat(app, {}), 401, 'missing_token', '31 requests without a token: still 401 missing_token')
  const before = await rowText(db.admin)
  for (let i = 0; i < 30; i++) {
    const res = await app.inject({ method: 'PATCH', url: '/heartbeat', headers: { ...reader, 'content-type': 'application/json' }, payload: PAUSE })
    if (res.statusCode !== 403) t.fail(`PATCH as authenticated: ${res.statusCode}`)
  }
  t.equal(await rowText(db.admin), before, 'the row is unchanged')
  t.equal((await getHeartbeat(app, reader)).statusCode, 200, 'after 31 missing tokens and 30 403s, a good token: 200')

  // A malformed Authorization header is a failed attempt like a forged token.
  for (let i = 0; i < 5; i++) assertProblem(t, await getHeartbeat(app, { authorization: `Basic ${i}` }), 401, 'invalid_token', `malformed header ${i + 1}`)
  assertLimited(t, await getHeartbeat(app, await bearer('authenticated', { sub: 'new-reader' })), 'the limit of 5 reached by malformed headers (a token never verified)')
  t.equal((await getHeartbeat(app, reader)).statusCode, 200, 'the token verified before is still served')
})

t.test('the window ends: the address is served again', async (t) => {
  const { app } = await startTestApp(t, { db, env: { AUTH_FAILURE_LIMIT_PER_MINUTE: '3' }, limits: { authFailureWindowMs: 1500 } })
  await failAuthentication(t, app, 3)
  const limited = await getHeartbeat(app, reader)
  assertLimited(t, limited, 'after 3 failures', 2)
  await eventually(async () => (await getHeartbeat(app, reader)).statusCode === 200, 10_000, 'a good token served again')
  assertProblem(t, await getHeartbeat(app, forged), 401, 'invalid_token', 'a forged token is a plain 401 again')
})

t.test('AUTH_FAILURE_LIMIT_PER_MINUTE=0: no limit, and no 429 in the OpenAPI document', async (t) => {
  const { app } = await startTestApp(t, { db, env: { AUTH_FAILURE_LIMIT_PER_MINUTE: '0' } })
  await failAuthentication(t, app, 60)
  t.equal((await getHeartbeat(app, reader)).statusCode, 200, 'a good token after 60 failures: 200')
  const doc = app.swagger() as unknown as { paths: Record<string, Record<string, { responses: Record<string, unknown> }>> }
  t.notOk('429' in (doc.paths['/heartbeat']?.get?.responses ?? {}), 'GET /heartbeat documents no 429')
})

t.test('the OpenAPI document: 429 on every route that takes a token, nowhere else', async (t) => {
  const { app } = await startTestApp(t, { db, env: PRODUCTION_LIMIT })
  const doc = app.swagger() as unknown as { paths: Record<string, Record<string, { security?: unknown[], responses: Record<string, { headers?: Record<string, unknown> }> }>> }
  const withToken: string[] = []
  for (const [path, operations] of Object.entries(doc.paths)) {
    for (const [method, operation] of Object.entries(operations)) {
      const secured = (operation.security ?? []).length > 0
      t.equal('429' in operation.responses, secured, `${method.toUpperCase()} ${path}: 429 ${secured ? '' : 'not '}documented`)
      if (secured) {
        withToken.push(`${method.toUpperCase()} ${path}`)
        t.ok(operation.responses['429']?.headers?.['Retry-After'] !== undefined, `${method.toUpperCase()} ${path}: with Retry-After`)
      }
    }
  }
  for (const operation of ['GET /heartbeat', 'HEAD /heartbeat', 'PATCH /heartbeat', 'GET /heartbeat/events', 'GET /metrics']) {
    t.ok(withToken.includes(operation), `${operation} takes a token`)
  }
  t.notOk(withToken.includes('GET /heartbeat/liveness'), 'public liveness: no 429')
})

t.test('a monitor polling once a second, or 200 times in a row, is never limited', async (t) => {
  const { app } = await startTestApp(t, { db, env: PRODUCTION_LIMIT })
  const base = await app.listen({ host: '127.0.0.1', port: 0 })
  const agent = new Agent({ keepAlive: true, maxSockets: 1 })
  t.teardown(() => { agent.destroy() })
  const statuses = async (path: string, headers: Record<string, string> = {}): Promise<Map<number, number>> => {
    const counts = new Map<number, number>()
    for (let i = 0; i < 200; i++) {
      const status = await new Promise<number>((resolve, reject) => {
        httpRequest(`${base}${path}`, { agent, headers }, (res) => { res.resume(); res.on('end', () => { resolve(res.statusCode ?? 0) }) }).on('error', reject).end()
      })
      counts.set(status, (counts.get(status) ?? 0) + 1)
    }
    return counts
  }
  const verdicts = (counts: Map<number, number>): boolean => [...counts.keys()].every((status) => status === 200 || status === 503)
  const summary = (counts: Map<number, number>): string => [...counts].map(([status, n]) => `${status}×${n}`).join(', ')

  for (const [path, headers] of [['/heartbeat/liveness', {}], ['/livez', {}], ['/readyz', {}], ['/metrics', reader], ['/heartbeat', reader]] as const) {
    const counts = await statuses(path, headers)
    t.ok(verdicts(counts) && !counts.has(429), `200 quick GET ${path}${path === '/metrics' || path === '/heartbeat' ? ' with a good token' : ''}: ${summary(counts)}`)
  }
  // The same address, after it has used up its failures: what is public still answers.
  await failAuthentication(t, app, 20)
  for (const path of ['/heartbeat/liveness', '/livez', '/readyz']) {
    const counts = await statuses(path)
    t.ok(verdicts(counts) && !counts.has(429), `200 quick GET ${path} from a limited address: ${summary(counts)}`)
  }
})

const HELMET = {
  'x-content-type-options': 'nosniff',
  'cross-origin-resource-policy': 'same-origin',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY'
}

function assertSecurityHeaders (t: Test, headers: Record<string, unknown>, what: string, csp = "default-src 'none';frame-ancestors 'none'"): void {
  for (const [name, value] of Object.entries(HELMET)) t.equal(headers[name], value, `${what}: ${name}`)
  t.equal(headers['content-security-policy'], csp, `${what}: content-security-policy`)
  t.equal(headers['x-powered-by'], undefined, `${what}: no x-powered-by`)
  t.equal(headers['strict-transport-security'], undefined, `${what}: no HSTS (plain HTTP)`)
}

t.test('security headers on every kind of answer', async (t) => {
  const { app } = await startTestApp(t, { db, env: PRODUCTION_LIMIT })
  const answers: Array<[string, Promise<LightMyRequestResponse>, number]> = [
    ['GET /heartbeat', app.inject({ url: '/heartbeat', headers: reader }), 200],
    ['HEAD /heartbeat', app.inject({ method: 'HEAD', url: '/heartbeat', headers: reader }), 200],
    ['a 401', app.inject({ url: '/heartbeat' }), 401],
    ['a 415', app.inject({ method: 'PATCH', url: '/heartbeat', headers: { ...admin, 'content-type': 'text/plain' }, payload: 'x' }), 415],
    ['GET /heartbeat/liveness', app.inject({ url: '/heartbeat/liveness' }), 200],
    ['GET /metrics', app.inject({ url: '/metrics', headers: reader }), 200],
    ['GET /livez', app.inject({ url: '/livez' }), 200],
    ['GET /openapi.json', app.inject({ url: '/openapi.json' }), 200],
    ['a 404', app.inject({ url: '/nowhere' }), 404]
  ]
  for (const [what, answer, status] of answers) {
    const res = await answer
    t.equal(res.statusCode, status, `${what}: ${status}`)
    assertSecurityHeaders(t, res.headers, what)
  }

  // The event stream, over a real socket (the route writes its own head).
  const base = await app.listen({ host: '127.0.0.1', port: 0 })
  const stream = await connectSse(`${base}/heartbeat/events`, reader)
  t.teardown(stream.close)
  t.equal(stream.status, 200)
  assertSecurityHeaders(t, stream.headers, 'GET /heartbeat/events')
})

t.test('/docs: the UI gets a policy that lets its own scripts and styles load', async (t) => {
  const { app } = await startTestApp(t, { db, env: PRODUCTION_LIMIT })
  for (const url of ['/docs', '/docs/']) {
    const page = await app.inject({ url })
    t.equal(page.statusCode, 200, `${url}: 200`)
    t.match(String(page.headers['content-type']), /^text\/html/)
    const csp = String(page.headers['content-security-policy'])
    t.match(csp, /(^|; )default-src 'self'/, `${url}: default-src 'self'`)
    t.match(csp, /script-src 'self'/, `${url}: scripts from this origin`)
    t.match(csp, /style-src 'self'/, `${url}: styles from this origin`)
    t.notMatch(csp, /upgrade-insecure-requests/, `${url}: nothing upgraded to https on plain HTTP`)
    t.notMatch(csp, /default-src 'none'/, `${url}: not the API's default-src 'none'`)
    t.equal(page.headers['x-content-type-options'], 'nosniff')
    // Every script and stylesheet the page names is served, from this origin, as what it is.
    const assets = [...page.body.matchAll(/<(?:script[^>]*\ssrc|link[^>]*\shref)="([^"]+)"/g)].map((m) => m[1] ?? '')
    t.ok(assets.length >= 4, `${url}: ${assets.length} scripts and stylesheets`)
    for (const asset of assets) {
      t.notMatch(asset, /^(https?:)?\/\//, `${asset}: same origin`)
      const resolved = new URL(asset, `http://127.0.0.1${url}`).pathname
      const res = await app.inject({ url: resolved })
      t.equal(res.statusCode, 200, `${resolved}: 200`)
      if (resolved.endsWith('.js')) t.match(String(res.headers['content-type']), /javascript/, `${resolved}: JavaScript`)
      if (resolved.endsWith('.css')) t.match(String(res.headers['content-type']), /text\/css/, `${resolved}: CSS`)
    }
  }
  // The initializer loads the document from ./json below the page's own URL (with a slash added): /docs/json.
  const initializer = await app.inject({ url: '/docs/static/swagger-initializer.js' })
  t.match(initializer.body, /url: resolveUrl\('\.\/json'\)/, 'the UI loads ./json')
  const spec = await app.inject({ url: '/docs/json' })
  t.equal(spec.statusCode, 200, 'GET /docs/json: 200')
  t.match(String(spec.headers['content-security-policy']), /default-src 'self'/, 'fetched under the page\'s policy (connect-src falls back to default-src \'self\')')
  t.equal(spec.json<{ openapi: string }>().openapi, '3.1.0')
})

t.test('CORS: off unless CORS_ORIGINS is set', async (t) => {
  const { app } = await startTestApp(t, { db, env: PRODUCTION_LIMIT })
  const res = await app.inject({ url: '/heartbeat', headers: { ...reader, origin: 'https://ops.example.com' } })
  t.equal(res.statusCode, 200)
  t.same(Object.keys(res.headers).filter((name) => name.startsWith('access-control-')), [], 'no access-control-* header')
  const preflight = await app.inject({ method: 'OPTIONS', url: '/heartbeat', headers: { origin: 'https://ops.example.com', 'access-control-request-method': 'PATCH' } })
  assertProblem(t, preflight, 404, 'not_found', 'a preflight')
  t.equal(preflight.headers['access-control-allow-origin'], undefined, 'no access-control-allow-origin')
})

t.test('CORS with CORS_ORIGINS: those origins only', async (t) => {
  const allowed = 'https://ops.example.com'
  const { app } = await startTestApp(t, { db, env: { ...PRODUCTION_LIMIT, CORS_ORIGINS: `${allowed}, https://grafana.example.com:3000` } })
  const preflight = async (origin: string): Promise<LightMyRequestResponse> => await app.inject({
    method: 'OPTIONS',
    url: '/heartbeat',
    headers: { origin, 'access-control-request-method': 'PATCH', 'access-control-request-headers': 'authorization,content-type,if-match' }
  })

  const ok = await preflight(allowed)
  t.equal(ok.statusCode, 204, 'a preflight from an allowed origin: 204')
  t.equal(ok.headers['access-control-allow-origin'], allowed, 'allow-origin: that origin, not *')
  t.equal(ok.headers['access-control-allow-methods'], 'GET, HEAD, PATCH')
  t.equal(ok.headers['access-control-allow-headers'], 'Authorization, apikey, Content-Type, If-Match, If-None-Match, Last-Event-ID')
  t.equal(ok.headers['access-control-max-age'], '600')
  t.equal(ok.headers['access-control-allow-credentials'], undefined, 'no credentials (bearer tokens, never cookies)')
  t.match(String(ok.headers.vary), /Origin/, 'Vary: Origin')
  t.equal((await preflight('https://grafana.example.com:3000')).headers['access-control-allow-origin'], 'https://grafana.example.com:3000', 'the second origin too')

  for (const origin of ['https://evil.example.com', 'https://ops.example.com.evil.example', 'http://ops.example.com', 'https://grafana.example.com', 'null']) {
    t.equal((await preflight(origin)).headers['access-control-allow-origin'], undefined, `a preflight from ${origin}: no access-control-allow-origin`)
  }

  const read = await app.inject({ url: '/heartbeat', headers: { ...reader, origin: allowed } })
  t.equal(read.statusCode, 200)
  t.equal(read.headers['access-control-allow-origin'], allowed, 'GET from an allowed origin: allow-origin')
  t.equal(read.headers['access-control-expose-headers'], 'ETag, Retry-After', 'ETag and Retry-After readable by the page')
  const refused = await app.inject({ url: '/heartbeat', headers: { origin: allowed } })
  t.equal(refused.statusCode, 401)
  t.equal(refused.headers['access-control-allow-origin'], allowed, 'a 401 is readable by the page too')
  const foreign = await app.inject({ url: '/heartbeat', headers: { ...reader, origin: 'https://evil.example.com' } })
  t.equal(foreign.headers['access-control-allow-origin'], undefined, 'GET from another origin: no allow-origin (the browser keeps the answer from the page)')

  const base = await app.listen({ host: '127.0.0.1', port: 0 })
  const stream = await connectSse(`${base}/heartbeat/events`, { ...reader, origin: allowed })
  t.teardown(stream.close)
  t.equal(stream.status, 200)
  t.equal(stream.headers['access-control-allow-origin'], allowed, 'the event stream from an allowed origin: allow-origin')
  t.equal(stream.headers['content-type'], 'text/event-stream; charset=utf-8', 'and still an event stream')
})

/** One request over a raw socket: everything the server sends until it closes (or `waitMs` passes). */
async function rawExchange (port: number, text: string, waitMs = 10_000): Promise<{ status: number, headers: string, body: string, closed: boolean }> {
  return await new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1')
    let received = ''
    const done = (closed: boolean): void => {
      clearTimeout(timer)
      socket.destroy()
      const [head = '', body = ''] = received.split('\r\n\r\n')
      resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0), headers: head, body, closed })
    }
    const timer = setTimeout(() => { done(false) }, waitMs)
    socket.setEncoding('utf8')
    socket.on('data', (chunk: string) => { received += chunk })
    socket.on('close', () => { done(true) })
    socket.on('error', reject)
    socket.write(text)
  })
}

t.test('header and body size limits, over a real socket', async (t) => {
  const { app } = await startTestApp(t, { db, env: PRODUCTION_LIMIT })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const port = (app.server.address() as { port: number }).port
  t.equal((app.server as { maxHeaderSize?: number }).maxHeaderSize, 16 * 1024, 'headers: 16 KiB together')

  // The JWT suite's largest accepted token is 8 KiB; its header is about 8.2 KB.
  const big = await token({ role: 'authenticated', sub: 'big', padding: 'x'.repeat(6000) })
  t.ok(big.length > 8000 && big.length <= 8192, `a ${big.length}-byte token`)
  const served = await rawExchange(port, `GET /heartbeat HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${big}\r\nConnection: close\r\n\r\n`)
  t.equal(served.status, 200, `an Authorization header of ${big.length + 7} bytes: 200`)

  const tooLarge = await rawExchange(port, `GET /heartbeat/liveness HTTP/1.1\r\nHost: x\r\nX-Padding: ${'p'.repeat(17 * 1024)}\r\n\r\n`)
  t.equal(tooLarge.status, 431, 'headers over 16 KiB: 431')
  t.match(tooLarge.headers, /\r\nContent-Type: application\/problem\+json\r\n/)
  t.match(tooLarge.headers, /\r\nX-Content-Type-Options: nosniff\r\n/)
  t.same(JSON.parse(tooLarge.body), {
    type: 'urn:eva-heartbeat-api:problem:headers_too_large',
    title: 'Request headers too large',
    status: 431,
    detail: 'The request\'s headers are larger than 16 KiB together.',
    code: 'headers_too_large'
  })
  t.ok(tooLarge.closed, 'and the connection is closed')

  const notHttp = await rawExchange(port, 'HELLO\r\n\r\n')
  t.equal(notHttp.status, 400, 'bytes that are not HTTP: 400')
  t.equal(JSON.parse(notHttp.body).code, 'bad_request')

  const before = await rowText(db.admin)
  const body = JSON.stringify({ status: 'stopping', paused_reason: 'x'.repeat(17 * 1024) })
  const bodyTooLarge = await rawExchange(port, `PATCH /heartbeat HTTP/1.1\r\nHost: x\r\nAuthorization: ${admin.authorization}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`)
  t.equal(bodyTooLarge.status, 413, 'a body over 16 KiB: 413')
  t.equal(JSON.parse(bodyTooLarge.body).code, 'body_too_large')
  t.equal(await rowText(db.admin), before, 'the row is unchanged')
})

t.test('timeouts and keep-alive: the production values', async (t) => {
  const { app } = await startTestApp(t, { db, env: PRODUCTION_LIMIT })
  const base = await app.listen({ host: '127.0.0.1', port: 0 })
  t.equal(app.server.requestTimeout, HTTP_LIMITS.requestTimeoutMs, 'a request must arrive within 30 s')
  t.equal(HTTP_LIMITS.requestTimeoutMs, 30_000)
  t.equal(app.server.timeout, 60_000, 'an idle socket is closed after 60 s')

  const agent = new Agent({ keepAlive: true, maxSockets: 1 })
  t.teardown(() => { agent.destroy() })
  const answers: Array<{ status: number, keepAlive: string, reused: boolean }> = []
  for (let i = 0; i < 3; i++) {
    answers.push(await new Promise((resolve, reject) => {
      const req = httpRequest(`${base}/livez`, { agent }, (res) => {
        res.resume()
        res.on('end', () => { resolve({ status: res.statusCode ?? 0, keepAlive: String(res.headers['keep-alive']), reused: req.reusedSocket }) })
      })
      req.on('error', reject).end()
    }))
  }
  t.same(answers.map((a) => a.status), [200, 200, 200])
  t.same(answers.map((a) => a.reused), [false, true, true], 'three requests over one connection')
  t.equal(answers[0]?.keepAlive, 'timeout=72', 'Keep-Alive: timeout=72 (past the usual 60 s of proxies, so they close first)')
})

t.test('timeouts: unfinished requests are cut, an event stream is not', async (t) => {
  const REQUEST_TIMEOUT_MS = 1000
  const IDLE_TIMEOUT_MS = 1500
  const { app } = await startTestApp(t, {
    db,
    env: { ...PRODUCTION_LIMIT, EVENTS_KEEPALIVE_MS: '200' },
    limits: { requestTimeoutMs: REQUEST_TIMEOUT_MS, timeoutCheckIntervalMs: 100, connectionTimeoutMs: IDLE_TIMEOUT_MS }
  })
  const base = await app.listen({ host: '127.0.0.1', port: 0 })
  const port = (app.server.address() as { port: number }).port

  // Slowloris: headers started and never finished.
  const stream = await connectSse(`${base}/heartbeat/events`, reader)
  t.teardown(stream.close)
  t.equal(stream.status, 200, 'an event stream opened')
  const slow = await rawExchange(port, 'GET /heartbeat/liveness HTTP/1.1\r\nHost: x\r\nX-Slow: ', 20_000)
  t.equal(slow.status, 408, 'unfinished headers: 408')
  t.equal(JSON.parse(slow.body).code, 'request_timeout')
  t.ok(slow.closed, 'and the connection is closed')
  // Node's requestTimeout stops counting once the headers are in (seen on Node 20): a body that stops arriving is cut
  // by the idle timeout instead, without an answer.
  const before = await rowText(db.admin)
  const stalled = await rawExchange(port, `PATCH /heartbeat HTTP/1.1\r\nHost: x\r\nAuthorization: ${admin.authorization}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"status":`, 20_000)
  t.ok(stalled.closed, `a body that stops arriving: the connection is closed (idle timeout ${IDLE_TIMEOUT_MS} ms)`)
  t.equal(stalled.status, 0, 'with no answer')
  t.equal(await rowText(db.admin), before, 'and the row is unchanged')

  // The stream was opened before both and has lived through several request and idle timeouts.
  await delay(2 * IDLE_TIMEOUT_MS)
  const from = stream.messages.length
  const keepAlive = await stream.next((message) => message.kind === 'comment', 5000, from)
  t.equal(keepAlive.comment, 'keep-alive', `the event stream still delivers after more than ${2 * IDLE_TIMEOUT_MS} ms (request timeout ${REQUEST_TIMEOUT_MS} ms, idle timeout ${IDLE_TIMEOUT_MS} ms)`)
  await writeRow(db.admin, { instance_id: 'scheduler-after-timeout' })
  const event = await stream.next((message) => message.kind === 'heartbeat' && (message.data ?? '').includes('scheduler-after-timeout'), 10_000, from)
  t.ok(event, 'and a change of the row reaches it')
})
