import { generateKeyPair, SignJWT, type JWTPayload } from 'jose'
import t from 'tap'
import { bearerToken, claimAt, MAX_TOKEN_BYTES, singleAuthorization, TokenVerifier, type JwtSettings } from '../../src/auth/jwt.js'
import { AuthRejection } from '../../src/auth/rejection.js'
import { authProblem, type ProblemError } from '../../src/http/problems.js'

const SECRET = 'unit-test-secret-for-the-token-verifier-0123'
const OTHER_SECRET = 'another-secret-that-this-service-does-not-know'
const nowSeconds = (): number => Math.floor(Date.now() / 1000)

const SETTINGS: JwtSettings = {
  secret: SECRET,
  jwksUrl: undefined,
  audience: undefined,
  issuer: undefined,
  clockToleranceSeconds: 30,
  roleClaim: 'role'
}

const verifier = (overrides: Partial<JwtSettings> = {}): TokenVerifier => new TokenVerifier({ ...SETTINGS, ...overrides })

/** An HS256 token; `exp` one hour ahead unless the claims carry their own (null: no exp at all). */
async function sign (claims: Omit<JWTPayload, 'exp'> & { exp?: number | null } = {}, secret = SECRET): Promise<string> {
  const { exp, ...rest } = claims
  const jwt = new SignJWT(rest).setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
  if (exp !== null) jwt.setExpirationTime(exp ?? nowSeconds() + 3600)
  return await jwt.sign(new TextEncoder().encode(secret))
}

/** The answer a call's refusal becomes; fails the test when it does not fail that way. */
async function problemFrom (work: () => unknown): Promise<ProblemError> {
  try {
    await work()
  } catch (error) {
    if (error instanceof AuthRejection) return authProblem(error)
    throw error
  }
  throw new Error('expected an AuthRejection, but the call succeeded')
}

t.test('bearerToken', async (t) => {
  t.test('no header or an empty one is no token', async (t) => {
    t.equal(bearerToken(undefined), undefined)
    t.equal(bearerToken(''), undefined)
    t.equal(bearerToken('   '), undefined)
  })

  t.test('the token after the Bearer scheme, whatever its case', async (t) => {
    t.equal(bearerToken('Bearer aaa.bbb.ccc'), 'aaa.bbb.ccc')
    t.equal(bearerToken('bearer aaa.bbb.ccc'), 'aaa.bbb.ccc')
    t.equal(bearerToken('BEARER aaa.bbb.ccc'), 'aaa.bbb.ccc')
    t.equal(bearerToken('BeArEr aaa.bbb.ccc'), 'aaa.bbb.ccc')
    t.equal(bearerToken('Bearer   aaa.bbb.ccc  '), 'aaa.bbb.ccc', 'extra spaces around the token are tolerated')
    t.equal(bearerToken('Bearer abc-_~+/=='), 'abc-_~+/==', 'every token68 character')
  })

  for (const header of ['Bearer', 'Bearer ', 'Basic abc', 'Bearer a b', 'Token abc', 'Bearerabc', 'Bearer "abc"', 'Bearer a,b', 'abc']) {
    t.test(`malformed header ${JSON.stringify(header)} is a 401 invalid_token`, async (t) => {
      const problem = await problemFrom(() => bearerToken(header))
      t.equal(problem.status, 401)
      t.equal(problem.code, 'invalid_token')
      t.match(problem.headers['www-authenticate'], /^Bearer realm="eva-heartbeat-api", error="invalid_token", error_description="[^"]+"$/)
    })
  }
})

t.test('claimAt', async (t) => {
  const claims: JWTPayload = {
    role: 'authenticated',
    app_metadata: { role: 'service_role', nested: { deep: 'yes' }, list: ['a'] },
    roles: ['authenticated'],
    count: 3,
    nothing: null
  }

  t.test('a top-level claim and dotted paths', async (t) => {
    t.equal(claimAt(claims, 'role'), 'authenticated')
    t.equal(claimAt(claims, 'app_metadata.role'), 'service_role')
    t.equal(claimAt(claims, 'app_metadata.nested.deep'), 'yes')
    t.same(claimAt(claims, 'app_metadata.nested'), { deep: 'yes' })
    t.same(claimAt(claims, 'roles'), ['authenticated'], 'the value itself may be an array')
  })

  t.test('a missing key or a path through a non-object is undefined', async (t) => {
    t.equal(claimAt(claims, 'missing'), undefined)
    t.equal(claimAt(claims, 'app_metadata.missing'), undefined)
    t.equal(claimAt(claims, 'role.length'), undefined, 'no stepping into a string')
    t.equal(claimAt(claims, 'count.toFixed'), undefined, 'no stepping into a number')
    t.equal(claimAt(claims, 'nothing.role'), undefined, 'no stepping into null')
    t.equal(claimAt(claims, 'roles.0'), undefined, 'no indexing into an array')
    t.equal(claimAt(claims, 'app_metadata.list.0'), undefined)
    t.equal(claimAt(claims, 'roles.length'), undefined)
  })

  t.test('no lookups on the prototype chain', async (t) => {
    t.equal(claimAt(claims, '__proto__'), undefined)
    t.equal(claimAt(claims, 'constructor'), undefined)
    t.equal(claimAt(claims, 'constructor.name'), undefined)
    t.equal(claimAt(claims, 'toString'), undefined)
    t.equal(claimAt(claims, 'hasOwnProperty'), undefined)
    t.equal(claimAt(claims, 'app_metadata.__proto__'), undefined)
    t.equal(claimAt(claims, 'app_metadata.constructor'), undefined)
    t.equal(claimAt({}, '__proto__.role'), undefined)
  })

  t.test('a role smuggled onto the prototype is not found', async (t) => {
    const polluted = JSON.parse('{"sub":"x"}') as JWTPayload
    Object.setPrototypeOf(polluted, { role: 'service_role' })
    t.equal(claimAt(polluted, 'role'), undefined)
  })
})

t.test('TokenVerifier.algorithms follows the configured keys', async (t) => {
  t.same(verifier().algorithms, ['HS256'], 'secret only: HS256 only')
  t.same(verifier({ secret: undefined, jwksUrl: 'http://127.0.0.1:9/jwks.json' }).algorithms, ['ES256', 'RS256'], 'JWKS only: no HS256')
  t.same(verifier({ jwksUrl: 'http://127.0.0.1:9/jwks.json' }).algorithms, ['HS256', 'ES256', 'RS256'], 'both')
  for (const algorithms of [verifier().algorithms, verifier({ jwksUrl: 'http://127.0.0.1:9/jwks.json' }).algorithms]) {
    t.notOk(algorithms.some((alg) => alg.toLowerCase() === 'none'), 'never none')
  }
})

t.test('verify', async (t) => {
  t.test('a valid token gives its claims, header and role', async (t) => {
    const verified = await verifier().verify(await sign({ role: 'authenticated', sub: 'user-1' }))
    t.equal(verified.role, 'authenticated')
    t.equal(verified.claims.sub, 'user-1')
    t.equal(verified.header.alg, 'HS256')
  })

  t.test('a token without the role claim verifies with role undefined', async (t) => {
    const verified = await verifier().verify(await sign({ sub: 'user-1' }))
    t.equal(verified.role, undefined)
  })

  t.test('the role at a dotted path', async (t) => {
    const verified = await verifier({ roleClaim: 'app_metadata.role' }).verify(
      await sign({ role: 'authenticated', app_metadata: { role: 'service_role' } }))
    t.equal(verified.role, 'service_role')
  })

  t.test('a role that is not a string is invalid_token', async (t) => {
    for (const role of [['service_role'], { name: 'service_role' }, 1, true]) {
      const problem = await problemFrom(async () => await verifier().verify(await sign({ role })))
      t.equal(problem.status, 401, JSON.stringify(role))
      t.equal(problem.code, 'invalid_token', JSON.stringify(role))
      t.match(problem.detail, /role claim must be a string/)
    }
  })

  t.test('nbf in the future is token_not_yet_valid', async (t) => {
    const problem = await problemFrom(async () => await verifier().verify(await sign({ role: 'authenticated', nbf: nowSeconds() + 120 })))
    t.equal(problem.status, 401)
    t.equal(problem.code, 'token_not_yet_valid')
  })

  t.test('nbf within the tolerance is accepted', async (t) => {
    const verified = await verifier().verify(await sign({ role: 'authenticated', nbf: nowSeconds() + 10 }))
    t.equal(verified.role, 'authenticated')
  })

  t.test('iat in the future beyond the tolerance is a 401', async (t) => {
    const problem = await problemFrom(async () => await verifier().verify(await sign({ role: 'authenticated', iat: nowSeconds() + 120 })))
    t.equal(problem.status, 401)
    t.equal(problem.code, 'invalid_token')
    t.match(problem.detail, /iat/)
  })

  t.test('iat slightly ahead (within the tolerance) and iat in the past are accepted', async (t) => {
    t.equal((await verifier().verify(await sign({ role: 'authenticated', iat: nowSeconds() + 10 }))).role, 'authenticated')
    t.equal((await verifier().verify(await sign({ role: 'authenticated', iat: nowSeconds() - 600 }))).role, 'authenticated')
  })

  t.test('the clock tolerance applies to exp', async (t) => {
    const recent = await sign({ role: 'authenticated', exp: nowSeconds() - 10 })
    t.equal((await verifier({ clockToleranceSeconds: 30 }).verify(recent)).role, 'authenticated', 'expired 10 s ago, tolerance 30: accepted')
    const problem = await problemFrom(async () => await verifier({ clockToleranceSeconds: 30 }).verify(await sign({ role: 'authenticated', exp: nowSeconds() - 40 })))
    t.equal(problem.status, 401)
    t.equal(problem.code, 'token_expired', 'expired 40 s ago, tolerance 30')
    const strict = await problemFrom(async () => await verifier({ clockToleranceSeconds: 0 }).verify(recent))
    t.equal(strict.code, 'token_expired', 'expired 10 s ago, tolerance 0')
  })

  t.test('exp is required', async (t) => {
    const problem = await problemFrom(async () => await verifier().verify(await sign({ role: 'authenticated', exp: null })))
    t.equal(problem.status, 401)
    t.equal(problem.code, 'invalid_token')
    t.match(problem.detail, /exp/)
  })

  t.test('issuer and audience are checked when configured', async (t) => {
    const checked = verifier({ issuer: 'https://project.supabase.co/auth/v1', audience: 'authenticated' })
    const ok = await checked.verify(await sign({ role: 'authenticated', iss: 'https://project.supabase.co/auth/v1', aud: 'authenticated' }))
    t.equal(ok.role, 'authenticated')
    const issuer = await problemFrom(async () => await checked.verify(await sign({ role: 'authenticated', iss: 'https://evil.example', aud: 'authenticated' })))
    t.equal(issuer.status, 401)
    t.equal(issuer.code, 'invalid_issuer')
    const noIssuer = await problemFrom(async () => await checked.verify(await sign({ role: 'authenticated', aud: 'authenticated' })))
    t.equal(noIssuer.status, 401, 'a missing iss is refused too')
    const audience = await problemFrom(async () => await checked.verify(await sign({ role: 'authenticated', iss: 'https://project.supabase.co/auth/v1', aud: 'other' })))
    t.equal(audience.code, 'invalid_audience')
    t.equal((await verifier().verify(await sign({ role: 'authenticated', iss: 'anyone', aud: 'any' }))).role, 'authenticated',
      'unconfigured: not checked')
  })

  t.test('a token signed with another secret is invalid_token', async (t) => {
    const problem = await problemFrom(async () => await verifier().verify(await sign({ role: 'service_role' }, OTHER_SECRET)))
    t.equal(problem.status, 401)
    t.equal(problem.code, 'invalid_token')
  })

  t.test('an ES256 token against a secret-only verifier is invalid_token', async (t) => {
    const { privateKey } = await generateKeyPair('ES256')
    const es = await new SignJWT({ role: 'service_role' }).setProtectedHeader({ alg: 'ES256' }).setExpirationTime('1h').sign(privateKey)
    const problem = await problemFrom(async () => await verifier().verify(es))
    t.equal(problem.status, 401)
    t.equal(problem.code, 'invalid_token')
  })

  t.test('an unsecured token (alg none) is invalid_token', async (t) => {
    const part = (value: object): string => Buffer.from(JSON.stringify(value)).toString('base64url')
    const unsecured = `${part({ alg: 'none', typ: 'JWT' })}.${part({ role: 'service_role', exp: nowSeconds() + 3600 })}.`
    const problem = await problemFrom(async () => await verifier().verify(unsecured))
    t.equal(problem.status, 401)
    t.equal(problem.code, 'invalid_token')
  })

  t.test('garbage is invalid_token', async (t) => {
    for (const garbage of ['abc', 'a.b.c', 'eyJ.eyJ.sig']) {
      const problem = await problemFrom(async () => await verifier().verify(garbage))
      t.equal(problem.status, 401, garbage)
      t.equal(problem.code, 'invalid_token', garbage)
    }
  })

  t.test('a token over 8 KiB is token_too_large, before any signature check', async (t) => {
    const big = await sign({ role: 'authenticated', padding: 'x'.repeat(MAX_TOKEN_BYTES) })
    t.ok(Buffer.byteLength(big) > MAX_TOKEN_BYTES)
    const problem = await problemFrom(async () => await verifier().verify(big))
    t.equal(problem.status, 401)
    t.equal(problem.code, 'token_too_large')
    const garbage = await problemFrom(async () => await verifier().verify('x'.repeat(MAX_TOKEN_BYTES + 1)))
    t.equal(garbage.code, 'token_too_large', 'garbage of that size is refused by size, not parsed')
  })

  t.test('a token of exactly 8 KiB is not refused for its size', async (t) => {
    const base = await sign({ role: 'authenticated', padding: '' })
    // base64url grows by 4/3: pad the claim until the token is as close to the limit as it can get without passing it.
    let padding = Math.floor((MAX_TOKEN_BYTES - base.length) * 3 / 4)
    let fit = await sign({ role: 'authenticated', padding: 'x'.repeat(padding) })
    while (Buffer.byteLength(fit) > MAX_TOKEN_BYTES) {
      padding -= 1
      fit = await sign({ role: 'authenticated', padding: 'x'.repeat(padding) })
    }
    t.ok(Buffer.byteLength(fit) > MAX_TOKEN_BYTES - 8)
    t.equal((await verifier().verify(fit)).role, 'authenticated')
  })

  t.test('a problem never carries the token', async (t) => {
    const expired = await sign({ role: 'authenticated', exp: nowSeconds() - 3600 })
    const problem = await problemFrom(async () => await verifier().verify(expired))
    t.notOk(JSON.stringify(problem.toProblem()).includes(expired))
    t.notOk(Object.values(problem.headers).join('\n').includes(expired))
  })
})

t.test('singleAuthorization', async (t) => {
  t.equal(singleAuthorization([]), undefined, 'no header')
  t.equal(singleAuthorization(['Host', 'x', 'Authorization', 'Bearer a']), 'Bearer a', 'one header')
  t.equal(singleAuthorization(['authorization', 'Bearer a', 'accept', '*/*']), 'Bearer a', 'the name in any case')
  for (const raw of [['Authorization', 'Bearer a', 'authorization', 'Bearer b'], ['AUTHORIZATION', 'Bearer a', 'Authorization', '']]) {
    const problem = await problemFrom(() => singleAuthorization(raw))
    t.equal(problem.status, 401)
    t.equal(problem.code, 'invalid_token')
  }
})
