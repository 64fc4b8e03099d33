// Authentication (a bearer JWT, or a secret API key in `apikey` or as the bearer) checked against the policy mirror:
// `app.authenticate(request, action)` gives the principal or throws an AuthRejection. Routes gate through routeAccess().
import type { FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { ApiKeySet, type ConfiguredApiKey } from '../auth/api-keys.js'
import { readCredential, type Credential } from '../auth/credentials.js'
import { TokenVerifier, type JwtSettings } from '../auth/jwt.js'
import { apiKeyPrincipal, tokenPrincipal, type Principal } from '../auth/principal.js'
import { AuthRejection, forbidden, invalidCredential, missingCredential } from '../auth/rejection.js'
import { TokenCache } from '../auth/token-cache.js'
import { isApiRole, mayPerform, type ApiRole, type TableAction } from '../domain/policies.js'

declare module 'fastify' {
  interface FastifyInstance {
    authenticate: (request: FastifyRequest, action: TableAction) => Promise<Principal>
    /**
     * A later check of the credential an authenticated request carried, for what outlives the request (a stream):
     * throws its AuthRejection once it no longer holds; undefined when only its expiry can end it (API key, HS256).
     */
    recheckCredential: (request: FastifyRequest) => (() => Promise<void>) | undefined
  }
  interface FastifyRequest {
    principal: Principal | undefined
  }
}

export interface AuthPluginOptions {
  jwt: JwtSettings
  apiKeys: readonly ConfiguredApiKey[]
}

export default fp<AuthPluginOptions>(async (app, { jwt, apiKeys }) => {
  const verifier = new TokenVerifier(jwt)
  const tokens = new TokenCache(verifier, { clockToleranceSeconds: jwt.clockToleranceSeconds })
  const keys = new ApiKeySet(apiKeys)
  app.decorateRequest('principal', undefined)
  /** The token each authenticated request carried, for a stream's later checks; never logged, gone with the request. */
  const tokenOf = new WeakMap<FastifyRequest, { token: string, fromKeySet: boolean }>()

  function allow (role: string, action: TableAction): asserts role is ApiRole {
    if (!isApiRole(role) || !mayPerform(role, action)) throw forbidden(`Role ${role} may not ${action} the heartbeat.`)
  }

  async function principalOfToken (request: FastifyRequest, token: string, action: TableAction): Promise<Principal> {
    const { claims, header, role } = await tokens.verify(token).catch((error: unknown) => {
      // The answer says only "try again shortly"; the operator needs to know why.
      if (error instanceof AuthRejection && error.kind === 'keys_unavailable') request.log.warn({ jwks: error.reason }, 'JWKS unavailable')
      throw error
    })
    if (role === undefined) throw forbidden(`The token has no ${jwt.roleClaim} claim, so it may not ${action} the heartbeat.`)
    allow(role, action)
    tokenOf.set(request, { token, fromKeySet: header.alg !== 'HS256' })
    return tokenPrincipal(claims, header, role, jwt.clockToleranceSeconds)
  }

  function principalOfKey (key: ConfiguredApiKey | undefined, action: TableAction): Principal {
    if (keys.size === 0) {
      throw invalidCredential('api_keys_not_configured',
        'API keys (sb_secret_…) must be configured in SERVICE_API_KEYS to be accepted, and this service has none; send a JWT instead.')
    }
    if (key === undefined) throw invalidCredential('invalid_api_key', 'The API key is not one this service accepts (SERVICE_API_KEYS).')
    allow('service_role', action)
    return apiKeyPrincipal(key)
  }

  async function principalOf (
    request: FastifyRequest, credential: Credential, key: ConfiguredApiKey | undefined, action: TableAction
  ): Promise<Principal> {
    switch (credential.kind) {
      case 'none': throw missingCredential()
      case 'publishable': throw forbidden(`A publishable key acts as role anon, which may not ${action} the heartbeat.`)
      case 'api_key': return principalOfKey(key, action)
      case 'jwt': return await principalOfToken(request, credential.token, action)
    }
  }

  async function authenticate (request: FastifyRequest, action: TableAction): Promise<Principal> {
    let credential: Credential | undefined
    let unreadable: unknown
    try {
      credential = readCredential(request.raw.rawHeaders)
    } catch (error) {
      unreadable = error
    }
    // Hashing a key costs what reading a header does, and matches every configured key whatever it is.
    const key = credential?.kind === 'api_key' ? keys.match(credential.key) : undefined
    // The limit bounds the signatures others can make us check. A configured key or a token verified before costs
    // none, so its holder is never refused because of other requests' failures from the same address (a proxy's).
    // known(), not peek(): a JWKS token must stay exempt once the key set is stale, so that its check can refresh it.
    const free = key !== undefined || (credential?.kind === 'jwt' && tokens.known(credential.token))
    if (!free) await app.authFailures.refuseIfLimited(request)
    try {
      if (credential === undefined) throw unreadable
      return await principalOf(request, credential, key, action)
    } catch (error) {
      // A credential that does not verify, or a malformed header, counts as a failure. No credential at all is not an
      // attempt; a forbidden one is genuine; keys that are unavailable are not the client's failure.
      if (error instanceof AuthRejection && error.kind === 'invalid_credential') await app.authFailures.count(request)
      throw error
    }
  }

  /**
   * A token signed by a JWKS key is checked again through the token cache: a cache hit while the key set is fresh,
   * else a verification that makes jose fetch the set anew. An HS256 secret is fixed for the process's life.
   */
  function recheckCredential (request: FastifyRequest): (() => Promise<void>) | undefined {
    const credential = tokenOf.get(request)
    if (credential?.fromKeySet !== true) return undefined
    const { token } = credential
    return async () => { await tokens.verify(token) }
  }

  app.decorate('authenticate', authenticate)
  app.decorate('recheckCredential', recheckCredential)
}, { name: 'auth', dependencies: ['auth-limit'] })
