// The security headers, worked out once at start instead of by @fastify/helmet on every request: every kind of
// answer carries exactly the headers @fastify/helmet gives with the same options (a bare Fastify with the plugin is
// the reference), and the list a user sees is written out here too, so a helmet upgrade that changes it is noticed.
import helmetPlugin from '@fastify/helmet'
import Fastify from 'fastify'
import t from 'tap'
import { HELMET_OPTIONS } from '../../src/plugins/security-headers.js'
import { bearer, startTestApp, writeRow } from '../helpers/app.js'
import { startTestDatabase } from '../helpers/database.js'
import { connectSse } from '../helpers/sse.js'

const db = await startTestDatabase()
t.teardown(db.close)
await writeRow(db.admin)
const reader = await bearer('authenticated')

const EXPECTED = {
  'content-security-policy': "default-src 'none';frame-ancestors 'none'",
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  'origin-agent-cluster': '?1',
  'referrer-policy': 'no-referrer',
  'x-content-type-options': 'nosniff',
  'x-dns-prefetch-control': 'off',
  'x-download-options': 'noopen',
  'x-frame-options': 'DENY',
  'x-permitted-cross-domain-policies': 'none',
  'x-xss-protection': '0'
}

/** What @fastify/helmet itself sends with the app's options, on a bare route. */
async function helmetReference (): Promise<Record<string, string>> {
  const bare = Fastify()
  // The same object; @fastify/helmet declares helmet's option types from its CommonJS build, unrelated to the ESM ones.
  await bare.register(helmetPlugin, HELMET_OPTIONS as never)
  bare.get('/', async () => ({ ok: true }))
  const res = await bare.inject({ url: '/' })
  await bare.close()
  const plain = await (async () => {
    const none = Fastify()
    none.get('/', async () => ({ ok: true }))
    const answer = await none.inject({ url: '/' })
    await none.close()
    return answer.headers
  })()
  // Only what helmet added.
  return Object.fromEntries(Object.entries(res.headers).filter(([name]) => !(name in plain)).map(([name, value]) => [name, String(value)]))
}

const pick = (headers: Record<string, unknown>, names: string[]): Record<string, string | undefined> =>
  Object.fromEntries(names.map((name) => [name, headers[name] === undefined ? undefined : String(headers[name])]))

t.test('@fastify/helmet with the same options sends exactly the listed headers', async (t) => {
  t.same(await helmetReference(), EXPECTED)
})

t.test('every kind of answer carries them, with the same values', async (t) => {
  const { app } = await startTestApp(t, { db })
  const names = Object.keys(EXPECTED)
  const first = await app.inject({ url: '/heartbeat', headers: reader })
  const etag = String(first.headers.etag)
  const answers: Array<[string, Promise<{ statusCode: number, headers: Record<string, unknown> }>, number]> = [
    ['GET /heartbeat', Promise.resolve(first), 200],
    ['HEAD /heartbeat', app.inject({ method: 'HEAD', url: '/heartbeat', headers: reader }), 200],
    ['a 304', app.inject({ url: '/heartbeat', headers: { ...reader, 'if-none-match': etag } }), 304],
    ['a 401', app.inject({ url: '/heartbeat' }), 401],
    ['a 400', app.inject({ url: '/heartbeat/liveness?grace=soon' }), 400],
    ['a 404', app.inject({ url: '/nowhere' }), 404],
    ['GET /heartbeat/liveness', app.inject({ url: '/heartbeat/liveness' }), 200],
    ['GET /metrics', app.inject({ url: '/metrics', headers: reader }), 200],
    ['GET /livez', app.inject({ url: '/livez' }), 200]
  ]
  for (const [what, answer, status] of answers) {
    const res = await answer
    t.equal(res.statusCode, status, `${what}: ${status}`)
    t.same(pick(res.headers, names), EXPECTED, `${what}: the security headers`)
    t.equal(res.headers['x-powered-by'], undefined, `${what}: no x-powered-by`)
    t.equal(res.headers['strict-transport-security'], undefined, `${what}: no HSTS`)
  }
  const base = await app.listen({ host: '127.0.0.1', port: 0 })
  const stream = await connectSse(`${base}/heartbeat/events`, reader)
  t.teardown(stream.close)
  t.equal(stream.status, 200)
  t.same(pick(stream.headers, names), EXPECTED, 'the event stream: the security headers')
})

t.test('a route that sets one of them itself keeps its own: /docs has the UI\'s policy', async (t) => {
  const { app } = await startTestApp(t, { db })
  const page = await app.inject({ url: '/docs/' })
  t.equal(page.statusCode, 200)
  t.match(String(page.headers['content-security-policy']), /^default-src 'self'/)
  t.equal(page.headers['x-content-type-options'], 'nosniff', 'the others stay')
})
