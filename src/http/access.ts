// Whether a route is public or needs a token, and for which table action, is declared once per route: routeAccess()
// gives its OpenAPI security, the refusals its gate can answer, the gate itself and whom its handler reads as.
import type { FastifyInstance, FastifyRequest, preHandlerAsyncHookHandler, RouteOptions } from 'fastify'
import { SERVICE_READER, type Principal } from '../auth/principal.js'
import { missingCredential } from '../auth/rejection.js'
import type { TableAction } from '../domain/policies.js'
import { problem, PUBLIC } from './schemas.js'

export type Access = 'public' | TableAction

const FORBIDDEN: Record<TableAction, string> = {
  select: 'The token\'s role may not read the heartbeat',
  update: 'The token\'s role may not change the heartbeat, or the database\'s policies refused the change'
}

export interface RouteAccess {
  public: boolean
  /** The operation's `security` in the OpenAPI document. */
  security: Array<Record<string, string[]>>
  /** The answers the gate can give (401, 403, 503 when the signing keys cannot be had); none on a public route. */
  refusals: Partial<Record<401 | 403 | 503, ReturnType<typeof problem>>>
  /** The hooks that authenticate and authorize; empty on a public route. A preHandler, or onRequest before a body is read. */
  gate: preHandlerAsyncHookHandler[]
  /** Whom the handler reads as: the gate's principal, or on a public route the service reader. Never undefined. */
  principal: (request: FastifyRequest) => Principal
}

export function routeAccess (app: FastifyInstance, access: Access): RouteAccess {
  if (access === 'public') return { public: true, security: PUBLIC, refusals: {}, gate: [], principal: () => SERVICE_READER }
  return {
    public: false,
    // Wherever a bearer token is accepted, a secret API key in the apikey header is too (either one, not both).
    security: [{ bearerAuth: [] }, { apiKeyAuth: [] }],
    refusals: {
      401: problem('No token, or one that does not verify', 401),
      403: problem(FORBIDDEN[access], 403),
      503: problem('The signing keys (JWKS_URL) could not be fetched to check the token', 503)
    },
    gate: [async (request) => { request.principal = await app.authenticate(request, access) }],
    // Fails closed: a route whose gate set no principal reads nothing (never as a stand-in reader).
    principal: (request) => {
      if (request.principal === undefined) throw missingCredential()
      return request.principal
    }
  }
}

/**
 * Fails the start when a route forgets its access: each must declare its OpenAPI security (through routeAccess) or be
 * hidden documentation or an asset; a route that asks for a token must have a gate. A forgotten gate is never public.
 */
export function undeclaredAccess (route: Pick<RouteOptions, 'method' | 'url' | 'schema' | 'preHandler' | 'onRequest'>): string | undefined {
  const schema = route.schema as { security?: unknown[], hide?: boolean } | undefined
  const name = `${String(route.method)} ${route.url}`
  if (schema?.security === undefined) return schema?.hide === true ? undefined : `${name} declares no access (routeAccess)`
  const hooks = [route.preHandler, route.onRequest].flat().filter((hook) => hook !== undefined)
  if (schema.security.length > 0 && hooks.length === 0) return `${name} asks for a token but has no gate`
  return undefined
}

/** Registering a route that fails undeclaredAccess throws, so the app never starts with it. */
export function enforceDeclaredAccess (app: FastifyInstance): void {
  app.addHook('onRoute', (route) => {
    const problem = undeclaredAccess(route)
    if (problem !== undefined) throw new Error(problem)
  })
}
