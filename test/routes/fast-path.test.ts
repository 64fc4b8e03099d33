// The fast path, pinned by what users see: cached tokens still expire and still die with their key, refused tokens
// are not remembered, concurrent reads are shared only by callers of one role and the same claims, a write is seen by
// the next read, and a failed read leaves nothing behind. Statements are counted by pg_stat_statements.
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { exportJWK, generateKeyPair, SignJWT, type JWTPayload } from 'jose'
import t from 'tap'
import { buildApp } from '../../src/app.js'
import { loadConfig, type AppConfig } from '../../src/config.js'
import { READINESS_REUSE_MS } from '../../src/db/readiness.js'
import { bearer, startTestApp, TEST_SECRET, token, writeRow } from '../helpers/app.js'
import { countStatements, resetStatements, startTestDatabase } from '../helpers/database.js'

const nowSeconds = (): number => Math.floor(Date.now() / 1000)
const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }
/** Waits until the clock's whole second (jose's "now") is at least `second`. */
const untilSecond = async (second: number): Promise<void> => { await sleep(Math.max(0, second * 1000 - Date.now() + 50)) }

/** The role-switched transactions the API ran: each has exactly one set_config('role', …). */
const SWITCHES = "set_config\\('role'"
/** The heartbeat row select, by the role it ran as. */
const ROW_READS = 'left join public\\.eva_scheduler_heartbeat h on'
const total = (counts: Record<string, number>): number => Object.values(counts).reduce((sum, n) => sum + n, 0)

const db = await startTestDatabase({ statements: true })
t.teardown(db.close)
await writeRow(db.admin, { instance_id: 'scheduler-00000001', lastPollAgo: 5, nextPollIn: 3600 })
const { app } = await startTestApp(t, { db, env: { JWT_CLOCK_TOLERANCE_SECONDS: '0' } })

async function get (target: FastifyInstance, url: string, headers: Record<string, string> = {}): Promise<LightMyRequestResponse> {
  return await target.inject({ method: 'GET', url, headers })
}

const restorePolicy = async (): Promise<void> => {
  await db.admin`alter policy eva_scheduler_heartbeat_authenticated_select on public.eva_scheduler_heartbeat using (true)`
}

t.test('tokens', async (t) => {
  t.test('a cached token still expires on time (clock tolerance 0)', async (t) => {
    const exp = nowSeconds() + 2
    const headers = { authorization: `Bearer ${await token({ role: 'authenticated', exp })}` }
    t.equal((await get(app, '/heartbeat', headers)).statusCode, 200, 'accepted')
    t.equal((await get(app, '/heartbeat', headers)).statusCode, 200, 'accepted again (from the cache)')
    await untilSecond(exp)
    const expired = await get(app, '/heartbeat', headers)
    t.equal(expired.statusCode, 401, 'refused once exp has passed')
    t.equal(expired.json<{ code: string }>().code, 'token_expired')
    t.match(expired.headers['www-authenticate'], /error="invalid_token"/)
  })

  t.test('a refused token is not remembered: one that is not valid yet is accepted once it is', async (t) => {
    const nbf = nowSeconds() + 2
    const headers = { authorization: `Bearer ${await token({ role: 'authenticated', nbf })}` }
    const early = await get(app, '/heartbeat', headers)
    t.equal(early.statusCode, 401)
    t.equal(early.json<{ code: string }>().code, 'token_not_yet_valid')
    await untilSecond(nbf)
    t.equal((await get(app, '/heartbeat', headers)).statusCode, 200, 'the same token, now valid, is checked again and accepted')
  })

  t.test('a cached token is refused after a key change (JWKS rotated)', async (t) => {
    const first = await generateKeyPair('ES256')
    const second = await generateKeyPair('ES256')
    let keys = [{ ...await exportJWK(first.publicKey), kid: 'key-1', alg: 'ES256', use: 'sig' }]
    const server: Server = createServer((_request, response) => {
      response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys }))
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    t.teardown(async () => {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    })
    const JWKS_URL = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks.json`
    // The key set jose holds goes stale after 1 s (JWKS timings are settings, not environment variables).
    const config = loadConfig({ DATABASE_URL: db.apiUrl, JWT_SECRET: TEST_SECRET, JWKS_URL, LOG_LEVEL: 'silent', DB_POOL_MAX: '2' }) as AppConfig
    const rotating = await buildApp({ ...config, jwt: { ...config.jwt, jwksCacheMaxAgeMs: 1000 } })
    t.teardown(async () => { await rotating.close() })
    await rotating.ready()
    const es256 = async (kid: string, key: CryptoKey, claims: JWTPayload): Promise<Record<string, string>> => ({
      authorization: `Bearer ${await new SignJWT(claims).setProtectedHeader({ alg: 'ES256', typ: 'JWT', kid }).setExpirationTime('1h').sign(key)}`
    })
    const old = await es256('key-1', first.privateKey, { role: 'authenticated', sub: 'old-key' })
    t.equal((await get(rotating, '/heartbeat', old)).statusCode, 200)
    t.equal((await get(rotating, '/heartbeat', old)).statusCode, 200, 'cached')

    keys = [{ ...await exportJWK(second.publicKey), kid: 'key-2', alg: 'ES256', use: 'sig' }]
    await sleep(1100) // the key set jose holds is now stale
    const refused = await get(rotating, '/heartbeat', old)
    t.equal(refused.statusCode, 401, 'the removed key\'s cached token is refused')
    t.equal(refused.json<{ code: string }>().code, 'invalid_token')
    t.equal((await get(rotating, '/heartbeat', await es256('key-2', second.privateKey, { role: 'authenticated', sub: 'new-key' }))).statusCode, 200, 'the new key works')
    // For HS256 a key change means a new JWT_SECRET, which takes a restart: the secret is fixed for the process.
    t.equal((await get(rotating, '/heartbeat', await bearer('authenticated'))).statusCode, 200, 'HS256 tokens are unaffected')
  })
})

t.test('reads', async (t) => {
  t.teardown(restorePolicy)

  t.test('concurrent readers with the same claims share one read: fewer transactions than requests, one database clock', async (t) => {
    await resetStatements(db.admin)
    const answers = await Promise.all(Array.from({ length: 20 }, async () => await get(app, '/heartbeat/liveness')))
    t.same(answers.map((answer) => answer.statusCode), Array(20).fill(200))
    const transactions = total(await countStatements(db.admin, SWITCHES))
    t.ok(transactions >= 1 && transactions < 20, `20 requests, ${transactions} transaction(s)`)
    const clocks = new Set(answers.map((answer) => answer.json<{ checked_at: string }>().checked_at))
    t.ok(clocks.size <= transactions, `as many database clocks (${clocks.size}) as reads at most`)
  })

  t.test('readers with different claims of one role each run their own read', async (t) => {
    await resetStatements(db.admin)
    const tokens = await Promise.all(Array.from({ length: 10 }, async (_, i) => await bearer('authenticated', { sub: `user-${i}` })))
    const answers = await Promise.all(tokens.map(async (headers) => await get(app, '/heartbeat', headers)))
    t.same(answers.map((answer) => answer.statusCode), Array(10).fill(200))
    t.equal((await countStatements(db.admin, ROW_READS)).authenticated, 10, 'ten callers, ten claims, ten reads')
  })

  t.test('readers of two roles each run their own read', async (t) => {
    await resetStatements(db.admin)
    const authenticated = await bearer('authenticated')
    const service = await bearer('service_role')
    const answers = await Promise.all(Array.from({ length: 20 }, async (_, i) => await get(app, '/heartbeat', i % 2 === 0 ? authenticated : service)))
    t.same(answers.map((answer) => answer.statusCode), Array(20).fill(200))
    const reads = await countStatements(db.admin, ROW_READS)
    t.ok((reads.authenticated ?? 0) >= 1, `authenticated ran its own read (${reads.authenticated ?? 0})`)
    t.ok((reads.service_role ?? 0) >= 1, `service_role ran its own read (${reads.service_role ?? 0})`)
    t.ok(total(reads) < 20, `and the 20 requests needed only ${total(reads)} reads`)
  })

  t.test('coalesced readers of different roles never share a result', async (t) => {
    await db.admin`alter policy eva_scheduler_heartbeat_authenticated_select on public.eva_scheduler_heartbeat using (false)`
    const authenticated = await bearer('authenticated')
    const service = await bearer('service_role')
    const answers = await Promise.all(Array.from({ length: 20 }, async (_, i) => await get(app, '/heartbeat', i % 2 === 0 ? authenticated : service)))
    t.same(answers.map((answer) => answer.statusCode), Array.from({ length: 20 }, (_, i) => i % 2 === 0 ? 404 : 200), 'authenticated 404, service_role 200, every one')

    t.equal((await get(app, '/readyz')).statusCode, 503, '/readyz sees the drift')
    await restorePolicy()
    await sleep(READINESS_REUSE_MS + 50) // the 503 above is reused that long
    t.equal((await get(app, '/readyz')).statusCode, 200)
  })

  t.test('a policy that reads the claims: concurrent callers of one role each get their own answer', async (t) => {
    await db.admin`
      alter policy eva_scheduler_heartbeat_authenticated_select on public.eva_scheduler_heartbeat
      using ((current_setting('request.jwt.claims', true)::jsonb ->> 'sub') = 'allowed-user')`
    const allowed = await bearer('authenticated', { sub: 'allowed-user' })
    const other = await bearer('authenticated', { sub: 'someone-else' })
    const answers = await Promise.all(Array.from({ length: 20 }, async (_, i) => await get(app, '/heartbeat', i % 2 === 0 ? allowed : other)))
    t.same(answers.map((answer) => answer.statusCode), Array.from({ length: 20 }, (_, i) => i % 2 === 0 ? 200 : 404),
      'a read made with one caller\'s claims under a changed policy serves no one else')
    await restorePolicy()
  })

  t.test('a write is visible to the next read', async (t) => {
    const headers = await bearer('service_role')
    t.equal((await get(app, '/heartbeat', headers)).json<{ heartbeat: { instance_id: string } }>().heartbeat.instance_id, 'scheduler-00000001')
    await writeRow(db.admin, { instance_id: 'scheduler-00000002', lastPollAgo: 1, nextPollIn: 3600 })
    t.equal((await get(app, '/heartbeat', headers)).json<{ heartbeat: { instance_id: string } }>().heartbeat.instance_id, 'scheduler-00000002')
    const liveness = (await get(app, '/heartbeat/liveness')).json<{ seconds_since_last_poll: number }>()
    t.ok(liveness.seconds_since_last_poll < 5, 'the liveness route reads it too')
  })
})

t.test('a failed read rolls back and leaves its connection as it found it (pool of one)', async (t) => {
  const { app: single } = await startTestApp(t, { db, env: { DB_POOL_MAX: '1' } })
  const service = await bearer('service_role')
  await db.admin`revoke select on public.eva_scheduler_heartbeat from authenticated`
  t.teardown(async () => { await db.admin`grant select on public.eva_scheduler_heartbeat to authenticated` })
  const failed = await get(single, '/heartbeat/liveness')
  t.equal(failed.statusCode, 503, 'the read as authenticated fails: 503, not 500')
  t.equal(failed.json<{ state: string }>().state, 'unknown')
  t.equal((await get(single, '/heartbeat', service)).statusCode, 200, 'the one connection serves the next read, as service_role')
  await db.admin`grant select on public.eva_scheduler_heartbeat to authenticated`
  t.equal((await get(single, '/heartbeat/liveness')).statusCode, 200, 'and authenticated again once granted')
})
