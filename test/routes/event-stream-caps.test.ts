// The caps on open /heartbeat/events streams (EVENTS_MAX_PER_PRINCIPAL, EVENTS_MAX_PER_ADDRESS, EVENTS_MAX_TOTAL),
// over real HTTP (app.listen on loopback) with raw SSE clients, some connecting from 127.0.0.2 and 127.0.0.3 to be
// other client addresses.
import { readFile } from 'node:fs/promises'
import t from 'tap'
import { parseOpenFileLimit } from '../../src/events/stream-slots.js'
import { startTestDatabase } from '../helpers/database.js'
import { token, startTestApp, writeRow } from '../helpers/app.js'
import { parseSamples, valueOf } from '../helpers/prometheus.js'
import { connectSse, isHeartbeat, type SseConnection } from '../helpers/sse.js'
import { eventually } from '../helpers/wait.js'

type Tap = Parameters<Parameters<typeof t.test>[0]>[0]

const db = await startTestDatabase()
t.teardown(db.close)
await writeRow(db.admin, { lastPollAgo: 5, nextPollIn: 3600 })

const STREAM_ENV = { EVENTS_INTERVAL_MS: '100', EVENTS_KEEPALIVE_MS: '300' }
const as = async (sub: string, role = 'authenticated'): Promise<Record<string, string>> =>
  ({ authorization: `Bearer ${await token({ role, sub })}` })

async function start (t: Tap, env: Record<string, string>): Promise<{ app: Awaited<ReturnType<typeof startTestApp>>['app'], url: string }> {
  const { app } = await startTestApp(t, { db, env: { ...STREAM_ENV, ...env } })
  const base = await app.listen({ host: '127.0.0.1', port: 0 })
  return { app, url: `${base}/heartbeat/events` }
}

/** An open stream: 200 and its first heartbeat. */
async function stream (t: Tap, url: string, headers: Record<string, string>, localAddress?: string): Promise<SseConnection> {
  const connection = await connectSse(url, headers, { localAddress })
  t.teardown(connection.close)
  t.equal(connection.status, 200, `a stream opens (${headers.authorization?.slice(-8) ?? 'apikey'} from ${localAddress ?? '127.0.0.1'})`)
  await connection.next(isHeartbeat, 10_000, 0)
  return connection
}

/** A refused request: its status, Retry-After and problem body. */
async function refused (url: string, headers: Record<string, string>, localAddress?: string): Promise<{ status: number, retryAfter: string | undefined, contentType: string | undefined, body: Record<string, unknown> }> {
  const connection = await connectSse(url, headers, { localAddress })
  if (connection.status === 200) {
    // Not refused: a stream, which would never end by itself.
    connection.close()
    return { status: 200, retryAfter: undefined, contentType: connection.headers['content-type'], body: {} }
  }
  const text = await connection.body()
  return {
    status: connection.status,
    retryAfter: connection.headers['retry-after'] as string | undefined,
    contentType: connection.headers['content-type'],
    body: JSON.parse(text) as Record<string, unknown>
  }
}

t.test('per principal: the stream past EVENTS_MAX_PER_PRINCIPAL gets 429, from any address; other principals go on', async (t) => {
  const { app, url } = await start(t, { EVENTS_MAX_PER_PRINCIPAL: '2' })
  const alice = await as('alice')
  await stream(t, url, alice)
  await stream(t, url, alice, '127.0.0.2')
  const third = await refused(url, alice, '127.0.0.3')
  t.equal(third.status, 429)
  t.match(third.contentType, /^application\/problem\+json/)
  t.equal(third.retryAfter, '30')
  t.same(third.body, {
    type: 'urn:eva-heartbeat-api:problem:too_many_streams_for_principal',
    title: 'Too many event streams for this principal',
    status: 429,
    detail: 'This principal already holds 2 open event streams (EVENTS_MAX_PER_PRINCIPAL); close one first.',
    code: 'too_many_streams_for_principal'
  })
  // A fresh token of the same sub is the same principal.
  t.equal((await refused(url, { authorization: `Bearer ${await token({ role: 'authenticated', sub: 'alice', jti: 'another' })}` })).status, 429,
    'another token of the same sub is refused too')
  await stream(t, url, await as('bob'))
  t.equal(app.events.stats().clients, 3, 'the refused requests never joined the hub')

  const samples = parseSamples(await app.metrics.registry.metrics())
  t.equal(valueOf(samples, 'eva_heartbeat_api_event_stream_refusals_total', { cap: 'principal' }), 2, 'the refusals are counted')
  t.equal(valueOf(samples, 'eva_heartbeat_api_event_stream_refusals_total', { cap: 'total' }), 0)
})

t.test('per principal: tokens without sub share their role\'s count; an API key is its own principal', async (t) => {
  const KEY = 'sb_secret_N7UND0UgjKTVK-Uodkm0Hg_xSvEMPvz'
  const { url } = await start(t, { EVENTS_MAX_PER_PRINCIPAL: '1', SERVICE_API_KEYS: `ops:${KEY}` })
  await stream(t, url, { authorization: `Bearer ${await token({ role: 'authenticated', jti: 'one' })}` })
  const other = await refused(url, { authorization: `Bearer ${await token({ role: 'authenticated', jti: 'two' })}` })
  t.equal(other.status, 429, 'a second sub-less token of the same role: minting a fresh jti is no way round the cap')
  t.equal(other.body.code, 'too_many_streams_for_principal')
  await stream(t, url, { apikey: KEY })
  t.equal((await refused(url, { apikey: KEY }, '127.0.0.2')).body.code, 'too_many_streams_for_principal', 'one API key, one principal')
})

t.test('per address: many principals (anonymous sign-ins each have their own sub) from one address get 429 past EVENTS_MAX_PER_ADDRESS', async (t) => {
  const { url } = await start(t, { EVENTS_MAX_PER_ADDRESS: '3' })
  for (const sub of ['anon-1', 'anon-2', 'anon-3']) await stream(t, url, await as(sub))
  const fourth = await refused(url, await as('anon-4'))
  t.equal(fourth.status, 429)
  t.equal(fourth.retryAfter, '30')
  t.match(fourth.contentType, /^application\/problem\+json/)
  t.same(fourth.body, {
    type: 'urn:eva-heartbeat-api:problem:too_many_streams_from_address',
    title: 'Too many event streams from this address',
    status: 429,
    detail: 'This client address already holds 3 open event streams (EVENTS_MAX_PER_ADDRESS); close one first.',
    code: 'too_many_streams_from_address'
  })
  await stream(t, url, await as('anon-4'), '127.0.0.2')
})

t.test('per address: the address is the one TRUST_PROXY makes Fastify believe', async (t) => {
  const { url } = await start(t, { EVENTS_MAX_PER_ADDRESS: '1', TRUST_PROXY: '127.0.0.1' })
  await stream(t, url, { ...await as('u1'), 'x-forwarded-for': '203.0.113.5' })
  t.equal((await refused(url, { ...await as('u2'), 'x-forwarded-for': '203.0.113.5' })).body.code, 'too_many_streams_from_address',
    'the same forwarded client')
  await stream(t, url, { ...await as('u3'), 'x-forwarded-for': '203.0.113.6' })

  const { url: untrusting } = await start(t, { EVENTS_MAX_PER_ADDRESS: '1' })
  await stream(t, untrusting, { ...await as('u1'), 'x-forwarded-for': '203.0.113.5' })
  t.equal((await refused(untrusting, { ...await as('u2'), 'x-forwarded-for': '203.0.113.6' })).body.code, 'too_many_streams_from_address',
    'without TRUST_PROXY a forged X-Forwarded-For is no way round the cap')
})

t.test('overall: past EVENTS_MAX_TOTAL the answer is 503 with Retry-After', async (t) => {
  const { app, url } = await start(t, { EVENTS_MAX_TOTAL: '2' })
  await stream(t, url, await as('a'))
  await stream(t, url, await as('b'), '127.0.0.2')
  const third = await refused(url, await as('c'), '127.0.0.3')
  t.equal(third.status, 503)
  t.equal(third.retryAfter, '15')
  t.match(third.contentType, /^application\/problem\+json/)
  t.same(third.body, {
    type: 'urn:eva-heartbeat-api:problem:event_streams_full',
    title: 'No event stream available',
    status: 503,
    detail: 'This instance already holds 2 open event streams (EVENTS_MAX_TOTAL); try again shortly.',
    code: 'event_streams_full'
  })
  const samples = parseSamples(await app.metrics.registry.metrics())
  t.equal(valueOf(samples, 'eva_heartbeat_api_event_stream_refusals_total', { cap: 'total' }), 1)
  t.equal((await app.inject({ url: '/heartbeat', headers: await as('c') })).statusCode, 200, 'the other routes still answer')
})

t.test('a slot is released when the stream closes: client gone, HEAD, shutdown', async (t) => {
  const { app, url } = await start(t, { EVENTS_MAX_PER_PRINCIPAL: '1', EVENTS_MAX_TOTAL: '5' })
  const carol = await as('carol')
  const first = await stream(t, url, carol)
  t.equal((await refused(url, carol)).status, 429, 'held while open')
  first.close()
  await eventually(() => app.streamSlots.stats().open === 0, 10_000, 'the slot given back')
  const second = await stream(t, url, carol)
  t.equal(app.streamSlots.stats().open, 1)
  second.close()
  await eventually(() => app.streamSlots.stats().open === 0, 10_000, 'given back again')

  for (let i = 0; i < 3; i++) {
    const head = await fetch(url, { method: 'HEAD', headers: carol })
    t.equal(head.status, 200, `HEAD ${i + 1}: a HEAD holds its slot only while it is answered`)
  }
  await eventually(() => app.streamSlots.stats().open === 0, 10_000, 'HEADs hold nothing')

  const { app: closing, url: closingUrl } = await start(t, { EVENTS_MAX_TOTAL: '2' })
  const open = [await stream(t, closingUrl, await as('x')), await stream(t, closingUrl, await as('y'))]
  t.equal(closing.streamSlots.stats().open, 2)
  await closing.close()
  await Promise.all(open.map(async (s) => await s.ended))
  await eventually(() => closing.streamSlots.stats().open === 0, 10_000, 'shutdown gives every slot back')
})

t.test('the caps in force and their defaults', async (t) => {
  const { app } = await start(t, {})
  const { caps } = app.streamSlots
  t.equal(caps.perPrincipal, 20)
  t.equal(caps.perAddress, 256)
  t.ok(caps.total >= 1 && caps.total <= 10_000, `the total cap is derived from the open-file limit: ${caps.total}`)

  const lines: string[] = []
  const { app: over } = await startTestApp(t, { db, env: { LOG_LEVEL: 'warn', EVENTS_MAX_TOTAL: '1000000' }, logStream: { write: (line) => { lines.push(line) } } })
  t.equal(over.streamSlots.caps.total, 1_000_000, 'a configured total is taken as it is')
  const files = parseOpenFileLimit(await readFile('/proc/self/limits', 'utf8').catch(() => ''))
  if (files !== undefined && files / 2 < 1_000_000) {
    t.match(lines.join(''), /EVENTS_MAX_TOTAL=1000000 is above half the open-file limit/, 'but a total the descriptors cannot hold is warned of at start')
  }
})
