// Signing keys as a Supabase project publishes them: a loopback JWKS endpoint whose key set (or failure) the test
// changes at will, ES256 key pairs with a kid, and apps built to trust it, with the JWKS timings shortened.
import { once } from 'node:events'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { FastifyInstance } from 'fastify'
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK, type JWTPayload } from 'jose'
import { buildApp, type BuildAppOptions } from '../../src/app.js'
import type { JwtSettings } from '../../src/auth/jwt.js'
import { loadConfig, type AppConfig } from '../../src/config.js'
import type { TestDatabase } from './database.js'

interface Teardown { teardown: (fn: () => unknown) => void }

export interface SigningKey {
  kid: string
  privateKey: CryptoKey
  /** The public key as the JWKS publishes it. */
  jwk: JWK
  /** A token signed with this key: exp one hour ahead unless the claims say otherwise. */
  sign: (claims: JWTPayload) => Promise<string>
}

export async function signingKey (kid: string, alg: 'ES256' | 'RS256' = 'ES256'): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true })
  const jwk = { ...await exportJWK(publicKey), kid, alg, use: 'sig' }
  const sign = async (claims: JWTPayload): Promise<string> => {
    const { exp, ...rest } = claims
    return await new SignJWT(rest).setProtectedHeader({ alg, kid, typ: 'JWT' })
      .setExpirationTime(exp ?? Math.floor(Date.now() / 1000) + 3600).sign(privateKey)
  }
  return { kid, privateKey, jwk, sign }
}

export interface KeySetServer {
  url: string
  /** How many times the set was fetched. */
  requests: () => number
  /** What the endpoint answers from now on: a key set, or an HTTP status with no set. */
  publish: (...keys: JWK[]) => void
  fail: (status: number) => void
}

/** A JWKS endpoint on 127.0.0.1 at Supabase's path; closed at teardown. */
export async function startKeySetServer (t: Teardown, ...keys: JWK[]): Promise<KeySetServer> {
  let answer: { keys: JWK[] } | number = { keys }
  let requests = 0
  const server = createServer((request, response) => {
    requests++
    if (request.url !== '/auth/v1/.well-known/jwks.json') {
      response.writeHead(404).end()
    } else if (typeof answer === 'number') {
      response.writeHead(answer).end()
    } else {
      response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer))
    }
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(async () => {
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
  })
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}/auth/v1/.well-known/jwks.json`,
    requests: () => requests,
    publish: (...next) => { answer = { keys: next } },
    fail: (status) => { answer = status }
  }
}

export type JwksTimings = Pick<JwtSettings, 'jwksTimeoutMs' | 'jwksCacheMaxAgeMs' | 'jwksCooldownMs'>

/** An app built as the process builds it from `env`, with the JWKS timings (not environment variables) given. */
export async function startAppWith (t: Teardown, db: TestDatabase, env: Record<string, string>, timings: JwksTimings = {}, options: BuildAppOptions = {}): Promise<FastifyInstance> {
  const config = loadConfig({
    DATABASE_URL: db.apiUrl, LOG_LEVEL: 'silent', DB_STATEMENT_TIMEOUT_MS: '2000', DB_POOL_MAX: '2', AUTH_FAILURE_LIMIT_PER_MINUTE: '0', ...env
  }) as AppConfig
  const app = await buildApp({ ...config, jwt: { ...config.jwt, ...timings } }, options)
  t.teardown(async () => { await app.close() })
  await app.ready()
  return app
}
