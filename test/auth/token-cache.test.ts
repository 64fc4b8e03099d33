// The verified-token cache in front of the real verifier (jose, keys from a JWKS served on loopback): what it
// remembers, for how long, and what makes it forget. The verifier counts its calls, so a hit shows as no call.
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { exportJWK, generateKeyPair, SignJWT, type JWTPayload } from 'jose'
import t from 'tap'
import { TokenVerifier, type JwtSettings, type VerifiedToken } from '../../src/auth/jwt.js'
import { TokenCache } from '../../src/auth/token-cache.js'
import { AuthRejection } from '../../src/auth/rejection.js'

const SECRET = 'token-cache-test-secret-0123456789abcdef'
const nowSeconds = (): number => Math.floor(Date.now() / 1000)
const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }
/** Waits until the clock's whole second (jose's "now") is at least `second`. */
const untilSecond = async (second: number): Promise<void> => { await sleep(Math.max(0, second * 1000 - Date.now() + 50)) }

class CountingVerifier extends TokenVerifier {
  calls = 0
  override async verify (token: string): Promise<VerifiedToken> {
    this.calls += 1
    return await super.verify(token)
  }
}

const settings = (overrides: Partial<JwtSettings> = {}): JwtSettings => ({
  secret: SECRET, jwksUrl: undefined, audience: undefined, issuer: undefined, clockToleranceSeconds: 0, roleClaim: 'role', ...overrides
})

async function hs256 (claims: JWTPayload & { exp?: number }, secret = SECRET): Promise<string> {
  const { exp, ...rest } = claims
  return await new SignJWT(rest).setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setExpirationTime(exp ?? nowSeconds() + 3600).sign(new TextEncoder().encode(secret))
}

async function refusal (work: Promise<unknown>): Promise<string> {
  try {
    await work
  } catch (error) {
    if (error instanceof AuthRejection) return error.code
    throw error
  }
  throw new Error('the token was accepted')
}

t.test('the same token is verified once; another token is verified on its own', async (t) => {
  const verifier = new CountingVerifier(settings())
  const cache = new TokenCache(verifier, { clockToleranceSeconds: 0 })
  const token = await hs256({ role: 'authenticated', sub: 'a' })
  for (let i = 0; i < 5; i++) t.equal((await cache.verify(token)).role, 'authenticated')
  t.equal(verifier.calls, 1, 'five uses, one verification')
  t.equal((await cache.verify(await hs256({ role: 'service_role', sub: 'b' }))).role, 'service_role')
  t.equal(verifier.calls, 2)
  t.equal(cache.size, 2)
})

t.test('bounded: the least recently used token is forgotten first', async (t) => {
  const verifier = new CountingVerifier(settings())
  const cache = new TokenCache(verifier, { clockToleranceSeconds: 0, max: 2 })
  const [a, b, c] = await Promise.all(['a', 'b', 'c'].map(async (sub) => await hs256({ role: 'authenticated', sub })))
  if (a === undefined || b === undefined || c === undefined) throw new Error('no tokens')
  await cache.verify(a)
  await cache.verify(b)
  await cache.verify(a) // a is now the most recently used
  await cache.verify(c) // evicts b
  t.equal(cache.size, 2)
  t.equal(verifier.calls, 3)
  await cache.verify(a)
  t.equal(verifier.calls, 3, 'a was kept')
  await cache.verify(b)
  t.equal(verifier.calls, 4, 'b had been forgotten')
})

t.test('a refused token is never remembered', async (t) => {
  const verifier = new CountingVerifier(settings())
  const cache = new TokenCache(verifier, { clockToleranceSeconds: 0 })
  const forged = await hs256({ role: 'service_role' }, 'a-secret-this-service-has-never-heard-of-0123456789')
  t.equal(await refusal(cache.verify(forged)), 'invalid_token')
  t.equal(await refusal(cache.verify(forged)), 'invalid_token')
  t.equal(verifier.calls, 2, 'checked again every time')
  t.equal(cache.size, 0)
})

t.test('expiry is checked on every use, with the clock tolerance, as jose checks it', async (t) => {
  const verifier = new CountingVerifier(settings({ clockToleranceSeconds: 1 }))
  const cache = new TokenCache(verifier, { clockToleranceSeconds: 1 })
  const exp = nowSeconds() + 1
  const token = await hs256({ role: 'authenticated', exp })
  await cache.verify(token)
  await untilSecond(exp)
  t.equal((await cache.verify(token)).role, 'authenticated', 'at exp, within the 1 s tolerance: still accepted')
  t.equal(verifier.calls, 1, 'from the cache')
  await untilSecond(exp + 1)
  t.equal(await refusal(cache.verify(token)), 'token_expired', 'past exp + tolerance: refused')
  t.equal(verifier.calls, 2, 'the cache let it go to the verifier, which refused it')
  t.equal(cache.size, 0)
})

t.test('keys from a JWKS', async (t) => {
  const first = await generateKeyPair('ES256')
  const second = await generateKeyPair('ES256')
  const published = { keys: [{ ...await exportJWK(first.publicKey), kid: 'first', alg: 'ES256', use: 'sig' }] }
  const server: Server = createServer((_request, response) => {
    response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(published))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => {
    server.closeAllConnections()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  })
  const jwksUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks.json`
  const es256 = async (kid: string, key: CryptoKey, sub: string): Promise<string> =>
    await new SignJWT({ role: 'authenticated', sub }).setProtectedHeader({ alg: 'ES256', typ: 'JWT', kid }).setExpirationTime('1h').sign(key)
  const rotate = async (): Promise<void> => {
    published.keys = [{ ...await exportJWK(second.publicKey), kid: 'second', alg: 'ES256', use: 'sig' }]
  }
  const restore = async (): Promise<void> => {
    published.keys = [{ ...await exportJWK(first.publicKey), kid: 'first', alg: 'ES256', use: 'sig' }]
  }

  t.test('a new key set, fetched for another token, empties the cache: the removed key\'s tokens are refused', async (t) => {
    await restore()
    // A long cache age: only the fetch that an unknown kid causes can bring the new set in.
    const verifier = new CountingVerifier(settings({ secret: undefined, jwksUrl, jwksCacheMaxAgeMs: 600_000 }))
    const cache = new TokenCache(verifier, { clockToleranceSeconds: 0 })
    const old = await es256('first', first.privateKey, 'old')
    await cache.verify(old)
    await cache.verify(old)
    t.equal(verifier.calls, 1, 'cached')
    await rotate()
    // jose refetches on an unknown kid only after its cooldown; reload() is that fetch, now.
    await verifier.keySet?.reload()
    t.equal((await cache.verify(await es256('second', second.privateKey, 'new'))).role, 'authenticated', 'the new key works')
    t.equal(await refusal(cache.verify(old)), 'invalid_token', 'the old key is gone: its cached token is refused')
  })

  t.test('once the key set is older than JWKS_CACHE_SECONDS, a cached token is checked against a fresh fetch', async (t) => {
    await restore()
    const verifier = new CountingVerifier(settings({ secret: undefined, jwksUrl, jwksCacheMaxAgeMs: 1000 }))
    const cache = new TokenCache(verifier, { clockToleranceSeconds: 0 })
    const old = await es256('first', first.privateKey, 'old')
    await cache.verify(old)
    await cache.verify(old)
    t.equal(verifier.calls, 1, 'cached while the key set is fresh')
    await rotate()
    await sleep(1100)
    t.equal(await refusal(cache.verify(old)), 'invalid_token', 'refused: the key set jose fetched again no longer has its key')
    t.equal(verifier.calls, 2)
  })

  t.test('an unchanged key set keeps the cache', async (t) => {
    await restore()
    const verifier = new CountingVerifier(settings({ secret: undefined, jwksUrl, jwksCacheMaxAgeMs: 600_000 }))
    const cache = new TokenCache(verifier, { clockToleranceSeconds: 0 })
    const one = await es256('first', first.privateKey, 'one')
    await cache.verify(one)
    await verifier.keySet?.reload()
    await cache.verify(await es256('first', first.privateKey, 'two'))
    await cache.verify(one)
    t.equal(verifier.calls, 2, 'the first token was still cached after a fetch that changed nothing')
  })
})
