// Bearer authentication and the policy mirror: `app.requireRole(action)` is the only gate routes use.
import type { FastifyRequest, preHandlerAsyncHookHandler } from 'fastify'
import fp from 'fastify-plugin'
import { bearerToken, forbidden, JwksUnavailableProblem, singleAuthorization, TokenVerifier, unauthorized, type JwtSettings } from '../auth/jwt.js'
import { TokenCache } from '../auth/token-cache.js'
import type { DbIdentity } from '../db/heartbeat.js'
import { isApiRole, mayPerform, type ApiRole, type TableAction } from '../domain/policies.js'
import { ProblemError } from '../errors.js'
import type { StreamEnd } from '../domain/events.js'
import type { StreamLease } from '../events/hub.js'

export interface Principal extends DbIdentity {
  role: ApiRole
  /** Who, for logs: `sub`, else the role with the key's `jti`/`kid`. Never the token. */
  subject: string
  /** When the credential stops being valid, in ms since the epoch (exp plus the clock tolerance); undefined: never. */
  expiresAt?: number
}

declare module 'fastify' {
  interface FastifyInstance {
    verifier: TokenVerifier
    requireRole: (action: TableAction) => preHandlerAsyncHookHandler
    authenticate: (request: FastifyRequest, action: TableAction) => Promise<Principal>
    /** How long the credential of an authenticated request holds, for a stream that outlives the request. */
    streamLease: (request: FastifyRequest) => StreamLease
  }
  interface FastifyRequest {
    principal: Principal | undefined
  }
}

/**
 * Anonymous callers of public routes (liveness, and metrics when public) are served by the service reading as
 * `authenticated`, the least role a policy lets read; what such routes answer is limited by their schemas.
 */
export const SERVICE_READER: Principal = Object.freeze({
  role: 'authenticated',
  claims: Object.freeze({ role: 'authenticated', sub: 'eva-heartbeat-api' }),
  subject: 'eva-heartbeat-api'
})

export default fp<{ jwt: JwtSettings }>(async (app, { jwt }) => {
  const verifier = new TokenVerifier(jwt)
  const tokens = new TokenCache(verifier, { clockToleranceSeconds: jwt.clockToleranceSeconds })
  app.decorate('verifier', verifier)
  app.decorateRequest('principal', undefined)
  /** The token each authenticated request carried, for a stream's later checks; never logged, gone with the request. */
  const tokenOf = new WeakMap<FastifyRequest, { token: string, fromKeySet: boolean }>()

  async function verifyRequest (request: FastifyRequest, action: TableAction): Promise<Principal> {
    const token = bearerToken(singleAuthorization(request.raw.rawHeaders))
    if (token === undefined) throw unauthorized('missing_token', 'This endpoint needs a bearer token (Authorization: Bearer <JWT>).', false)
    const { claims, header, role } = await tokens.verify(token).catch((error: unknown) => {
      // The answer says only "try again shortly"; the operator needs to know why.
      if (error instanceof JwksUnavailableProblem) request.log.warn({ jwks: error.reason }, 'JWKS unavailable')
      throw error
    })
    if (role === undefined) throw forbidden(`The token has no ${jwt.roleClaim} claim, so it may not ${action} the heartbeat.`)
    if (!isApiRole(role) || !mayPerform(role, action)) throw forbidden(`Role ${role} may not ${action} the heartbeat.`)
    const subject = typeof claims.sub === 'string' && claims.sub !== ''
      ? claims.sub
      : [role, claims.jti ?? header.kid].filter((part) => part !== undefined).join(':')
    tokenOf.set(request, { token, fromKeySet: header.alg !== 'HS256' })
    const expiresAt = typeof claims.exp === 'number' ? (claims.exp + jwt.clockToleranceSeconds) * 1000 : undefined
    return { role, claims, subject, expiresAt }
  }

  /**
   * A token signed by a JWKS key is checked again through the token cache: a cache hit while the key set is fresh,
   * else a verification that makes jose fetch the set anew, so a removed key ends the stream within the cache age.
   * Keys that cannot be fetched end nothing (the token may be good); an HS256 secret is fixed for the process's life.
   */
  function streamLease (request: FastifyRequest): StreamLease {
    const principal = request.principal
    const credential = tokenOf.get(request)
    if (principal === undefined || credential === undefined) return {}
    const { token, fromKeySet } = credential
    const recheck = fromKeySet
      ? async (): Promise<StreamEnd | undefined> => {
        try {
          await tokens.verify(token)
          return undefined
        } catch (error) {
          if (!(error instanceof ProblemError) || error.status !== 401) return undefined
          return error.code === 'token_expired'
            ? { reason: 'token_expired', detail: error.detail }
            : { reason: 'key_removed', detail: `${error.detail} The signing key was removed from the JWKS; reconnect with a fresh token.` }
        }
      }
      : undefined
    return { expiresAt: principal.expiresAt, recheck }
  }

  /** Whether the request's token is one verified before and still usable without a signature check. */
  function holdsVerifiedToken (request: FastifyRequest): boolean {
    try {
      const token = bearerToken(singleAuthorization(request.raw.rawHeaders))
      return token !== undefined && tokens.peek(token) !== undefined
    } catch {
      return false
    }
  }

  async function authenticate (request: FastifyRequest, action: TableAction): Promise<Principal> {
    // The limit bounds the signatures others can make us check; a token verified before costs none, so its holder is
    // never refused because of other requests' failures from the same address (a proxy's, say).
    if (!holdsVerifiedToken(request)) await app.authFailures.refuseIfLimited(request)
    try {
      return await verifyRequest(request, action)
    } catch (error) {
      // A token that does not verify, or a malformed Authorization header, counts as a failure. No token at all is not
      // an attempt; a 403 comes from a genuine token; a 503 (keys unavailable) is not the client's failure.
      if (error instanceof ProblemError && error.status === 401 && error.code !== 'missing_token') await app.authFailures.count(request)
      throw error
    }
  }

  app.decorate('authenticate', authenticate)
  app.decorate('streamLease', streamLease)
  app.decorate('requireRole', (action: TableAction): preHandlerAsyncHookHandler => async (request) => {
    request.principal = await authenticate(request, action)
  })
}, { name: 'auth', dependencies: ['auth-limit'] })
