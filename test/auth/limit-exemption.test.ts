// Issue 10, item 2 (review finding): a client holding a JWKS token already verified is never refused by the
// failed-authentication limit, even once jose's copy of the key set is older than its cache age; and such a holder
// whose key has been removed from the set is refused at verification (401), not served. A key-set change forgets only
// the tokens a JWKS key verified: an HS256 token stays known.
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import t from 'tap'
import { startTestDatabase } from '../helpers/database.js'
import { TEST_SECRET, token, writeRow } from '../helpers/app.js'
import { signingKey, startAppWith, startKeySetServer } from '../helpers/jwks.js'
import { delay } from '../helpers/wait.js'

const db = await startTestDatabase()
t.teardown(db.close)
await writeRow(db.admin, { lastPollAgo: 5, nextPollIn: 3600 })

const CACHE_MS = 500
const LIMIT = 3
const key = await signingKey('current')
const other = await signingKey('other')
const jwks = await startKeySetServer(t, key.jwk, other.jwk)
const app: FastifyInstance = await startAppWith(t, db, { JWKS_URL: jwks.url, JWT_SECRET: TEST_SECRET, AUTH_FAILURE_LIMIT_PER_MINUTE: String(LIMIT) },
  { jwksCacheMaxAgeMs: CACHE_MS, jwksCooldownMs: 100, jwksTimeoutMs: 10_000 })

const get = async (bearerToken: string): Promise<LightMyRequestResponse> =>
  await app.inject({ url: '/heartbeat', headers: { authorization: `Bearer ${bearerToken}` } })
const forged = await token({ role: 'service_role' }, 'a-secret-this-service-has-never-heard-of-0123456789')

t.test('a verified JWKS token outlives the key set\'s cache age behind the limit; a removed key is a 401', async (t) => {
  const holder = await key.sign({ role: 'authenticated', sub: 'holder' })
  const removed = await other.sign({ role: 'authenticated', sub: 'removed' })
  const legacy = await token({ role: 'service_role', iss: 'supabase' })
  t.equal((await get(legacy)).statusCode, 200, 'an HS256 holder, first request: 200')
  t.equal((await get(holder)).statusCode, 200, 'the holder, first request: 200')
  t.equal((await get(removed)).statusCode, 200, 'the other key\'s holder, first request: 200')
  await delay(CACHE_MS * 2)
  for (let i = 0; i < LIMIT; i++) t.equal((await get(forged)).statusCode, 401, `forged token ${i + 1}: 401`)
  t.equal((await get(forged)).statusCode, 429, 'the limit is reached for this address')
  t.equal((await get(await key.sign({ role: 'authenticated', sub: 'new' }))).statusCode, 429, 'a token never verified: 429')
  const served = await get(holder)
  t.equal(served.statusCode, 200, 'the holder, key set stale, limit reached: still served')

  jwks.publish(key.jwk)
  await delay(CACHE_MS * 2)
  const refused = await get(removed)
  t.equal(refused.statusCode, 401, 'the holder whose key was removed: 401 at verification, not 200 (nor 429)')
  t.equal(refused.json<{ code: string }>().code, 'invalid_token')
  // The new key set forgot the JWKS-verified tokens (they are checked again once the limit allows), not HS256 ones.
  t.equal((await get(legacy)).statusCode, 200, 'the HS256 holder, after the key set changed, limit reached: still 200')
})
