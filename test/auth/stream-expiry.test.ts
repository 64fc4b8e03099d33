// /heartbeat/events ends when its token does, and at the latest after EVENTS_MAX_LIFETIME_SECONDS. Short-lived tokens
// and API keys against the real server over real HTTP (app.listen on loopback), and a JWKS served by the test over
// loopback HTTP whose keys the test removes.
import t from 'tap'
import { MAX_LIFETIME_END, REAUTHENTICATE_EVENT } from '../../src/domain/events.js'
import { boundLease, EventHub } from '../../src/events/hub.js'
import { startTestDatabase } from '../helpers/database.js'
import { TEST_SECRET, token, writeRow } from '../helpers/app.js'
import { signingKey, startAppWith, startKeySetServer } from '../helpers/jwks.js'
import { connectSse, isHeartbeat, type SseConnection, type SseMessage } from '../helpers/sse.js'
import { delay, eventually } from '../helpers/wait.js'

const db = await startTestDatabase()
t.teardown(db.close)
await writeRow(db.admin, { lastPollAgo: 5, nextPollIn: 3600 })

const nowSeconds = (): number => Math.floor(Date.now() / 1000)
const isEnd = (message: SseMessage): boolean => message.kind === REAUTHENTICATE_EVENT
const STREAM_ENV = { EVENTS_INTERVAL_MS: '100', EVENTS_KEEPALIVE_MS: '200' }

async function open (t: Tap, base: string, jwt: string): Promise<SseConnection> {
  const stream = await connectSse(`${base}/heartbeat/events`, { authorization: `Bearer ${jwt}` })
  t.teardown(stream.close)
  t.equal(stream.status, 200, 'the stream opens')
  await stream.next(isHeartbeat, 10_000, 0)
  return stream
}

type Tap = Parameters<Parameters<typeof t.test>[0]>[0]

/** The reauthenticate event's data, after checking it is the stream's last message and carries no id. */
async function endOf (t: Tap, stream: SseConnection, timeoutMs: number): Promise<{ reason: string, detail: string }> {
  const end = await stream.next(isEnd, timeoutMs, 0)
  await stream.ended
  t.equal(stream.messages.at(-1), end, 'reauthenticate is the last message; then the server ends the stream')
  t.equal(end.id, undefined, 'no id: the client\'s Last-Event-ID stays its last heartbeat')
  return JSON.parse(end.data ?? 'null') as { reason: string, detail: string }
}

t.test('an HS256 token: the stream ends once exp plus the clock tolerance has passed, not before', async (t) => {
  const TOLERANCE = 2
  const app = await startAppWith(t, db, { JWT_SECRET: TEST_SECRET, JWT_CLOCK_TOLERANCE_SECONDS: String(TOLERANCE), ...STREAM_ENV })
  const base = await app.listen({ host: '127.0.0.1', port: 0 })
  const exp = nowSeconds() + 3
  const shortLived = await open(t, base, await token({ role: 'authenticated', sub: 'short', exp }))
  const longLived = await open(t, base, await token({ role: 'authenticated', sub: 'long' }))

  // Past exp, within the tolerance: still streaming (the token is still good, as it would be for a new request).
  await delay(Math.max(0, exp * 1000 + 500 - Date.now()))
  t.notOk(shortLived.messages.some(isEnd), 'not ended at exp itself: the tolerance applies')
  const withinTolerance = await app.inject({ url: '/heartbeat', headers: { authorization: `Bearer ${await token({ role: 'authenticated', exp })}` } })
  t.equal(withinTolerance.statusCode, 200, 'a request with the same exp is still served then')

  const data = await endOf(t, shortLived, 20_000)
  t.ok(Date.now() >= (exp + TOLERANCE) * 1000, 'ended no earlier than exp + tolerance')
  t.same(data, { reason: 'token_expired', detail: 'The token has expired (exp, plus the clock tolerance); reconnect with a fresh token.' })

  const after = longLived.messages.length
  await longLived.next((message) => message.kind === 'comment', 5000, after)
  t.equal(app.events.stats().clients, 1, 'the other stream goes on')
  longLived.close()
  await eventually(() => app.events.stats().clients === 0, 10_000, 'every client removed')
})

t.test('a JWKS token: ends at its exp too, and once its key leaves the set; other keys\' streams go on', async (t) => {
  const current = await signingKey('key-current')
  const standby = await signingKey('key-standby')
  const jwks = await startKeySetServer(t, current.jwk, standby.jwk)
  const CACHE_MS = 1000
  const app = await startAppWith(t, db, { JWKS_URL: jwks.url, JWT_CLOCK_TOLERANCE_SECONDS: '0', ...STREAM_ENV },
    { jwksCacheMaxAgeMs: CACHE_MS, jwksCooldownMs: 200, jwksTimeoutMs: 10_000 })
  const base = await app.listen({ host: '127.0.0.1', port: 0 })

  t.test('exp', async (t) => {
    const exp = nowSeconds() + 2
    const stream = await open(t, base, await current.sign({ role: 'authenticated', sub: 'user-1', exp }))
    const data = await endOf(t, stream, 20_000)
    t.ok(Date.now() >= exp * 1000, 'not before exp')
    t.equal(data.reason, 'token_expired')
  })

  t.test('a removed key', async (t) => {
    const doomed = await open(t, base, await current.sign({ role: 'authenticated', sub: 'user-1' }))
    const kept = await open(t, base, await standby.sign({ role: 'service_role', sub: 'ops' }))
    await delay(3 * CACHE_MS)
    t.notOk(doomed.messages.some(isEnd), 'while the key is published, the stream goes on past several refreshes')

    jwks.publish(standby.jwk)
    const removedAt = Date.now()
    const data = await endOf(t, doomed, 20_000)
    // The bound is the cache age plus the recheck interval (both CACHE_MS here); the margin is for a loaded machine.
    t.ok(Date.now() - removedAt < 2 * CACHE_MS + 8000, 'ended within the JWKS refresh bound')
    t.equal(data.reason, 'key_removed')
    t.match(data.detail, /No signing key matches the token/)

    const after = kept.messages.length
    await kept.next((message) => message.kind === 'comment', 5000, after)
    t.notOk(kept.messages.some(isEnd), 'the stream of a token whose key is still published goes on')
    const again = await connectSse(`${base}/heartbeat/events`, { authorization: `Bearer ${await current.sign({ role: 'authenticated' })}` })
    t.equal(again.status, 401, 'reconnecting with a token of the removed key is refused')
    await again.ended
    kept.close()
  })

  t.test('keys that cannot be fetched end nothing: the token may be good', async (t) => {
    jwks.publish(current.jwk, standby.jwk)
    const stream = await open(t, base, await standby.sign({ role: 'authenticated', sub: 'user-2' }))
    jwks.fail(500)
    const failedFrom = jwks.requests()
    await eventually(() => jwks.requests() >= failedFrom + 2, 20_000, 'the stream\'s rechecks asked the failing JWKS')
    await stream.next((message) => message.kind === 'comment', 5000, stream.messages.length)
    t.notOk(stream.messages.some(isEnd), 'still streaming while the JWKS answers 500')
    jwks.publish(current.jwk, standby.jwk)
    stream.close()
  })
})

t.test('an API key never expires: its stream ends at EVENTS_MAX_LIFETIME_SECONDS with reauthenticate, and its slot is free again', async (t) => {
  const KEY = 'sb_secret_N7UND0UgjKTVK-Uodkm0Hg_xSvEMPvz'
  const LIFETIME = 2
  const app = await startAppWith(t, db, {
    JWT_SECRET: TEST_SECRET, SERVICE_API_KEYS: `ops:${KEY}`, EVENTS_MAX_LIFETIME_SECONDS: String(LIFETIME), EVENTS_MAX_PER_PRINCIPAL: '1', ...STREAM_ENV
  })
  const base = await app.listen({ host: '127.0.0.1', port: 0 })
  const opened = Date.now()
  const keyed = await connectSse(`${base}/heartbeat/events`, { apikey: KEY })
  t.teardown(keyed.close)
  t.equal(keyed.status, 200)
  // A token whose exp is an hour off is bounded the same way.
  const longToken = await open(t, base, await token({ role: 'authenticated', sub: 'dashboard' }))
  const data = await endOf(t, keyed, 20_000)
  t.ok(Date.now() - opened >= LIFETIME * 900, 'not before the lifetime, less its 10% spread')
  t.same(data, {
    reason: 'max_lifetime',
    detail: 'The stream has reached its maximum lifetime (EVENTS_MAX_LIFETIME_SECONDS); reconnect, with Last-Event-ID, to go on.'
  })
  t.ok(keyed.messages.some(isHeartbeat), 'heartbeats came before the end')
  t.equal((await endOf(t, longToken, 20_000)).reason, 'max_lifetime', 'a token that outlives the lifetime: ended at the lifetime')

  await eventually(() => app.streamSlots.stats().open === 0, 10_000, 'both slots given back')
  const again = await connectSse(`${base}/heartbeat/events`, { apikey: KEY })
  t.teardown(again.close)
  t.equal(again.status, 200, 'the key may open its one stream again (EVENTS_MAX_PER_PRINCIPAL=1)')
})

t.test('a token that expires before the lifetime still ends as token_expired', async (t) => {
  const app = await startAppWith(t, db, { JWT_SECRET: TEST_SECRET, JWT_CLOCK_TOLERANCE_SECONDS: '0', EVENTS_MAX_LIFETIME_SECONDS: '60', ...STREAM_ENV })
  const base = await app.listen({ host: '127.0.0.1', port: 0 })
  const stream = await open(t, base, await token({ role: 'authenticated', sub: 'short', exp: nowSeconds() + 2 }))
  t.equal((await endOf(t, stream, 20_000)).reason, 'token_expired')
})

t.test('boundLease: the credential\'s end when sooner, else the lifetime, spread over its last 10%', async (t) => {
  const now = 1_000_000
  t.same(boundLease({}, now, 10_000, 0), { expiresAt: now + 10_000, end: MAX_LIFETIME_END }, 'no expiry (an API key): the lifetime')
  t.same(boundLease({}, now, 10_000, 1), { expiresAt: now + 9000, end: MAX_LIFETIME_END }, 'at most 10% sooner')
  const soon = { expiresAt: now + 5000 }
  t.equal(boundLease(soon, now, 10_000, 0.5), soon, 'a token that expires first keeps its own end')
  const recheck = async (): Promise<undefined> => undefined
  const far = boundLease({ expiresAt: now + 86_400_000, recheck }, now, 10_000, 0.5)
  t.same(far, { expiresAt: now + 9500, end: MAX_LIFETIME_END, recheck }, 'a far exp is cut to the lifetime; the JWKS recheck stays')
})

t.test('the hub itself: a lease already past, a recheck that fails, a recheck that ends the stream', async (t) => {
  const errors: unknown[] = []
  const hub = new EventHub({
    intervalMs: 50,
    keepAliveMs: 1000,
    recheckMs: 50,
    produce: async () => ({ id: 'missing', data: { heartbeat: null, liveness: { state: 'missing' } as never } }),
    onError: (error) => { errors.push(error) }
  })
  t.teardown(async () => { await hub.close() })
  const sink = (): { frames: string[], ended: boolean, write: (frame: string) => void, end: () => void } => {
    const state = { frames: [] as string[], ended: false, write: (frame: string) => { state.frames.push(frame) }, end: () => { state.ended = true } }
    return state
  }

  const late = sink()
  hub.subscribe(late, undefined, { expiresAt: Date.now() - 1000 })
  await eventually(() => late.ended, 5000, 'a lease already past ends the stream at once')
  t.match(late.frames.at(-1), /^event: reauthenticate\ndata: \{"reason":"token_expired"/)

  const failing = sink()
  let calls = 0
  hub.subscribe(failing, undefined, { recheck: async () => { calls++; throw new Error('recheck broke') } })
  await eventually(() => calls >= 2, 5000, 'rechecked again after a failure')
  t.notOk(failing.ended, 'a recheck that fails ends nothing')
  t.match(String(errors[0]), /recheck broke/, 'and is reported')

  const revoked = sink()
  let valid = true
  hub.subscribe(revoked, undefined, { expiresAt: Date.now() + 2 ** 31 + 1000, recheck: async () => valid ? undefined : { reason: 'key_removed', detail: 'gone' } })
  await delay(200)
  t.notOk(revoked.ended, 'a far expiry (beyond one timer) and a passing recheck: still open')
  valid = false
  await eventually(() => revoked.ended, 5000, 'ended once the recheck says so')
  t.equal(revoked.frames.at(-1), 'event: reauthenticate\ndata: {"reason":"key_removed","detail":"gone"}\n\n')
  t.equal(hub.stats().clients, 1, 'only the failing-recheck client is left')
})
