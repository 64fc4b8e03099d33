// Bearer authentication and the policy mirror: `app.requireRole(action)` is the only gate routes use.
import type { FastifyRequest, preHandlerAsyncHookHandler } from 'fastify'
import fp from 'fastify-plugin'
import { bearerToken, forbidden, JwksUnavailableProblem, singleAuthorization, TokenVerifier, unauthorized, type JwtSettings } from '../auth/jwt.js'
import { TokenCache } from '../auth/token-cache.js'
import type { DbIdentity } from '../db/heartbeat.js'
import { isApiRole, mayPerform, type ApiRole, type TableAction } from '../domain/policies.js'
import { ProblemError } from '../errors.js'

export interface Principal extends DbIdentity {
  role: ApiRole
  /** Who, for logs: `sub`, else the role with the key's `jti`/`kid`. Never the token. */
  subject: string
}

declare module 'fastify' {
  interface FastifyInstance {
    verifier: TokenVerifier
    requireRole: (action: TableAction) => preHandlerAsyncHookHandler
    authenticate: (request: FastifyRequest, action: TableAction) => Promise<Principal>
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
    return { role, claims, subject }
  }

  async function authenticate (request: FastifyRequest, action: TableAction): Promise<Principal> {
    await app.authFailures.refuseIfLimited(request)
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
  app.decorate('requireRole', (action: TableAction): preHandlerAsyncHookHandler => async (request) => {
    request.principal = await authenticate(request, action)
  })
}, { name: 'auth', dependencies: ['auth-limit'] })
