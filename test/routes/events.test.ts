// GET /heartbeat/events over real HTTP (app.listen on a loopback port), with a raw node:http client for the bytes
// on the wire and the `eventsource` package as a real EventSource client.
import { EventSource } from 'eventsource'
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import type { DbIdentity } from '../../src/db/heartbeat.js'
import type { HeartbeatReading } from '../../src/domain/liveness.js'
import { bearer, rowText, startTestApp, writeRow } from '../helpers/app.js'
import { parseSamples, valueOf } from '../helpers/prometheus.js'
import { connectSse, dataOf, isHeartbeat, type SseConnection } from '../helpers/sse.js'
import { delay, eventually } from '../helpers/wait.js'

const INTERVAL_MS = 100
const { app, db } = await startTestApp(t, { env: { EVENTS_INTERVAL_MS: String(INTERVAL_MS), EVENTS_KEEPALIVE_MS: '300' } })
const base = await app.listen({ host: '127.0.0.1', port: 0 })
const reader = await bearer('authenticated')

/** Counts the store's reads, wrapping the method every route and the hub call through the app instance. */
function countReads (target: FastifyInstance): { count: () => number } {
  const store = target.store
  const original = store.read.bind(store)
  let reads = 0
  store.read = async (who: DbIdentity): Promise<HeartbeatReading> => {
    reads++
    return await original(who)
  }
  return { count: () => reads }
}
const reads = countReads(app)

async function open (headers: Record<string, string> = reader, url = `${base}/heartbeat/events`): Promise<SseConnection> {
  const connection = await connectSse(url, headers)
  t.teardown(connection.close)
  return connection
}

async function heartbeatEtag (): Promise<{ etag: string, body: { heartbeat: unknown, liveness: { state: string } } }> {
  const res = await app.inject({ url: '/heartbeat', headers: reader })
  return { etag: String(res.headers.etag), body: res.json() }
}

const closeAll = async (connections: SseConnection[]): Promise<void> => {
  for (const connection of connections) connection.close()
  await eventually(() => app.events.stats().clients === 0, 10_000, 'every client removed')
}

t.test('who may connect', async (t) => {
  const anonymous = await open({})
  t.equal(anonymous.status, 401)
  t.match(String(anonymous.headers['content-type']), /^application\/problem\+json/)
  t.match(String(anonymous.headers['www-authenticate']), /^Bearer/)
  await anonymous.ended
  const anon = await open(await bearer('anon'))
  t.equal(anon.status, 403)
  await anon.ended
  const tooLong = await open({ ...reader, 'last-event-id': 'x'.repeat(201) })
  t.equal(tooLong.status, 400)
  t.match(String(tooLong.headers['content-type']), /^application\/problem\+json/)
  await tooLong.ended
  t.equal(app.events.stats().clients, 0, 'refused requests never join the hub')
})

t.test('on connect: headers, retry, then the current state as GET /heartbeat shows it', async (t) => {
  await writeRow(db.admin, { poll_count: 11 })
  for (const role of ['authenticated', 'service_role']) {
    const stream = await open(await bearer(role))
    t.equal(stream.status, 200, role)
    t.equal(stream.headers['content-type'], 'text/event-stream; charset=utf-8')
    t.equal(stream.headers['cache-control'], 'no-cache')
    t.equal(stream.headers['x-accel-buffering'], 'no')
    const first = await stream.next(() => true, 10_000, 0)
    t.same(first, { kind: 'retry', retry: 3000 }, 'the stream opens with retry:')
    const event = await stream.next(isHeartbeat, 10_000, 0)
    const { etag, body } = await heartbeatEtag()
    t.equal(`"${String(event.id)}"`, etag, 'the event id is the ETag\'s opaque part')
    const data = dataOf(event)
    t.same(data.heartbeat, body.heartbeat, 'data.heartbeat is GET /heartbeat\'s heartbeat')
    t.equal(data.liveness.state, 'alive')
    t.same(Object.keys(data.liveness), Object.keys(body.liveness), 'the same liveness fields')
    stream.close()
  }
  await eventually(() => app.events.stats().clients === 0)
})

t.test('one event per change of the row, none while nothing changes, keep-alive comments between', async (t) => {
  await writeRow(db.admin, { poll_count: 20 })
  const stream = await open()
  const first = await stream.next(isHeartbeat)
  t.equal(dataOf(first).heartbeat?.poll_count, 20)

  await delay(INTERVAL_MS * 8)
  t.equal(stream.messages.filter(isHeartbeat).length, 1, 'no repeated event while the row and the verdict stay the same')
  await stream.next((m) => m.kind === 'comment' && m.comment === 'keep-alive', 5000, 0)

  const seen = stream.messages.length
  await writeRow(db.admin, { poll_count: 21 })
  const changed = await stream.next(isHeartbeat, 10_000, seen)
  t.equal(dataOf(changed).heartbeat?.poll_count, 21, 'the new row')
  t.not(changed.id, first.id, 'a new id')
  t.equal(`"${String(changed.id)}"`, (await heartbeatEtag()).etag)
  await closeAll([stream])
})

t.test('a verdict that changes with no write: alive → late → stale', async (t) => {
  const { app: quick } = await startTestApp(t, {
    db,
    env: { EVENTS_INTERVAL_MS: String(INTERVAL_MS), STALE_GRACE_SECONDS: '3', STALE_GRACE_FACTOR: '0' }
  })
  const quickBase = await quick.listen({ host: '127.0.0.1', port: 0 })
  // Due in 2.5 s; late from then, stale 3 s later (wide windows: the machine may be busy).
  await writeRow(db.admin, { lastPollAgo: 10, nextPollIn: 2.5 })
  const written = await rowText(db.admin)
  const stream = await open(reader, `${quickBase}/heartbeat/events`)
  const stale = await stream.next((m) => isHeartbeat(m) && dataOf(m).liveness.state === 'stale', 15_000, 0)
  const states = stream.messages.filter(isHeartbeat).map((m) => dataOf(m).liveness.state)
  t.same(states, ['alive', 'late', 'stale'], 'one event per verdict, in order')
  t.equal(new Set(stream.messages.filter(isHeartbeat).map((m) => m.id)).size, 3, 'three ids')
  t.equal(dataOf(stale).liveness.status, 'fail')
  t.equal(await rowText(db.admin), written, 'the row was never written meanwhile')
  stream.close()
})

t.test('Last-Event-ID', async (t) => {
  await writeRow(db.admin, { poll_count: 30 })
  const first = await open()
  const current = await first.next(isHeartbeat)

  const resumed = await open({ ...reader, 'last-event-id': String(current.id) })
  t.equal(resumed.status, 200)
  await delay(INTERVAL_MS * 6)
  t.same(resumed.messages.filter(isHeartbeat), [], 'no initial event when the client already has the current state')
  t.same(resumed.messages[0], { kind: 'retry', retry: 3000 })

  const outdated = await open({ ...reader, 'last-event-id': 'some-older-state' })
  t.equal(dataOf(await outdated.next(isHeartbeat, 10_000, 0)).heartbeat?.poll_count, 30, 'an older id gets the current state')

  await writeRow(db.admin, { poll_count: 31 })
  const next = await resumed.next(isHeartbeat, 10_000, 0)
  t.equal(dataOf(next).heartbeat?.poll_count, 31, 'the resumed client gets the next change')

  // The id names the state, not the process: another API instance gives the same id for the same row.
  const { app: other } = await startTestApp(t, { db, env: { EVENTS_INTERVAL_MS: String(INTERVAL_MS) } })
  const otherBase = await other.listen({ host: '127.0.0.1', port: 0 })
  const afterRestart = await open({ ...reader, 'last-event-id': String(next.id) }, `${otherBase}/heartbeat/events`)
  await eventually(() => other.events.stats().reads >= 3, 10_000, 'the other instance polled')
  t.same(afterRestart.messages.filter(isHeartbeat), [], 'the id is still current on another instance (a restart)')
  afterRestart.close()
  await closeAll([first, resumed, outdated])
})

t.test('a real EventSource client reconnects with Last-Event-ID and misses nothing', async (t) => {
  await writeRow(db.admin, { poll_count: 40 })
  const authorization = reader.authorization
  const opened: number[] = []
  const source = new EventSource(`${base}/heartbeat/events`, {
    fetch: async (input, init) => await fetch(input, { ...init, headers: { ...init.headers, authorization } })
  })
  t.teardown(() => { source.close() })
  const received: Array<{ id: string, pollCount: unknown }> = []
  source.addEventListener('open', () => { opened.push(Date.now()) })
  source.addEventListener('heartbeat', (event) => {
    received.push({ id: event.lastEventId, pollCount: (JSON.parse(event.data) as { heartbeat: { poll_count: unknown } }).heartbeat.poll_count })
  })
  await eventually(() => received.length === 1, 10_000, 'the first event')
  t.equal(received[0]?.pollCount, 40)

  // Drop every connection; the client waits `retry` (3 s) and comes back with Last-Event-ID.
  app.server.closeAllConnections()
  await eventually(() => opened.length === 2, 15_000, 'the client reconnected')
  await eventually(() => app.events.stats().clients === 1, 5000, 'one client again')
  await delay(INTERVAL_MS * 5)
  t.equal(received.length, 1, 'no duplicate of the state it already had')

  await writeRow(db.admin, { poll_count: 41 })
  await eventually(() => received.length === 2, 10_000, 'the change after the reconnect')
  t.equal(received[1]?.pollCount, 41)
  t.not(received[1]?.id, received[0]?.id)
  source.close()
  await eventually(() => app.events.stats().clients === 0, 10_000, 'the closed EventSource was removed')
})

t.test('one database read per interval, however many clients', async (t) => {
  await writeRow(db.admin, { poll_count: 50 })
  await eventually(() => !app.events.stats().polling)
  const idleStart = reads.count()
  await delay(INTERVAL_MS * 5)
  t.equal(reads.count(), idleStart, 'no reads at all while nobody is connected')

  const CLIENTS = 6
  const streams = await Promise.all(Array.from({ length: CLIENTS }, async () => await open()))
  await Promise.all(streams.map(async (stream) => await stream.next(isHeartbeat, 10_000, 0)))
  const before = reads.count()
  const started = performance.now()
  await delay(2000)
  const elapsed = performance.now() - started
  const during = reads.count() - before
  const intervals = elapsed / INTERVAL_MS
  t.comment(`${CLIENTS} clients for ${Math.round(elapsed)} ms (${intervals.toFixed(1)} intervals): ${during} reads`)
  t.ok(during <= Math.ceil(intervals) + 1, `at most one read per interval: ${during} reads in ${intervals.toFixed(1)} intervals`)
  t.ok(during >= 3, 'the poller kept polling')
  t.ok(during < CLIENTS * intervals / 2, 'nowhere near one read per client per interval')
  t.equal(app.events.stats().clients, CLIENTS)

  const metrics = parseSamples((await app.inject({ url: '/metrics', headers: reader })).body)
  t.equal(valueOf(metrics, 'eva_heartbeat_api_event_stream_clients'), CLIENTS, 'the clients gauge')
  t.ok((valueOf(metrics, 'http_requests_total', { method: 'GET', route: '/heartbeat/events', status: '200' }) ?? 0) >= CLIENTS,
    'streams are counted as requests')
  await closeAll(streams)
})

t.test('clients that go away are removed, and the poller stops with the last one', async (t) => {
  const streams = await Promise.all([open(), open(), open()])
  await Promise.all(streams.map(async (stream) => await stream.next(isHeartbeat, 10_000, 0)))
  t.equal(app.events.stats().clients, 3)
  t.ok(app.events.stats().polling)
  streams[0]?.close()
  await eventually(() => app.events.stats().clients === 2, 10_000, 'one removed')
  t.ok(app.events.stats().polling, 'still polling for the others')
  streams[1]?.close()
  streams[2]?.close()
  await eventually(() => app.events.stats().clients === 0, 10_000, 'all removed')
  t.notOk(app.events.stats().polling, 'the poller stopped')
  const after = reads.count()
  await delay(INTERVAL_MS * 5)
  t.equal(reads.count(), after, 'and reads nothing more')
})

t.test('HEAD answers the stream\'s status and headers and ends', async (t) => {
  const res = await fetch(`${base}/heartbeat/events`, { method: 'HEAD', headers: reader })
  t.equal(res.status, 200)
  t.equal(res.headers.get('content-type'), 'text/event-stream; charset=utf-8')
  t.equal(await res.text(), '')
  await eventually(() => app.events.stats().clients === 0)
})

t.test('app.close() ends open streams at once instead of waiting for them', async (t) => {
  const { app: closing } = await startTestApp(t, { db, env: { EVENTS_INTERVAL_MS: String(INTERVAL_MS) } })
  const closingBase = await closing.listen({ host: '127.0.0.1', port: 0 })
  const streams = await Promise.all([open(reader, `${closingBase}/heartbeat/events`), open(reader, `${closingBase}/heartbeat/events`)])
  await Promise.all(streams.map(async (stream) => await stream.next(isHeartbeat, 10_000, 0)))
  const started = performance.now()
  await closing.close()
  const ms = performance.now() - started
  // The keep-alive timeout is 72 s: a close that waited for the streams would take that long.
  t.ok(ms < 10_000, `closed in ${Math.round(ms)} ms`)
  await Promise.all(streams.map(async (stream) => await stream.ended))
  t.same(closing.events.stats(), { clients: 0, polling: false, reads: closing.events.stats().reads })
  const samples = parseSamples(await closing.metrics.registry.metrics())
  t.equal(valueOf(samples, 'http_requests_total', { route: '/heartbeat/events' }), 2, 'each stream counted once, though the server ended them')
  t.same(samples.filter((s) => s.name.startsWith('http_request_duration_seconds') && s.labels.route === '/heartbeat/events'), [],
    'and no stream taken for a latency')
})

t.test('the database goes away: an unknown event with no heartbeat, then back', async (t) => {
  await writeRow(db.admin, { lastPollAgo: 1, nextPollIn: 300, poll_count: 60 })
  const stream = await open()
  t.equal(dataOf(await stream.next(isHeartbeat, 10_000, 0)).liveness.state, 'alive')
  await db.server.stop()
  let unknown
  try {
    unknown = await stream.next((m) => isHeartbeat(m) && dataOf(m).liveness.state === 'unknown', 15_000, 0)
  } finally {
    await db.server.start()
  }
  t.equal(unknown.id, 'unknown')
  t.equal(dataOf(unknown).heartbeat, null, 'nothing claimed about the row')
  t.equal(dataOf(unknown).liveness.status, 'fail')
  const back = await stream.next((m) => isHeartbeat(m) && dataOf(m).liveness.state === 'alive', 20_000, stream.messages.indexOf(unknown))
  t.equal(dataOf(back).heartbeat?.poll_count, 60, 'the row again once the database answers')
  t.equal(stream.messages.filter((m) => m.id === 'unknown').length, 1, 'one unknown event for the whole outage')
  await closeAll([stream])
})
