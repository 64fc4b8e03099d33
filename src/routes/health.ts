import type { FastifyRequest } from 'fastify'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import { readCredential } from '../auth/credentials.js'
import { AuthRejection } from '../auth/rejection.js'
import { checkReadiness, READINESS_REUSE_MS, SharedResult } from '../db/readiness.js'
import { DETAILS_ROLE, withoutDetails } from '../domain/readiness.js'
import { routeAccess } from '../http/access.js'
import { ProblemError } from '../http/problems.js'
import { ReadinessSchema } from '../http/schemas.js'

const HEALTH_JSON = 'application/health+json'

const healthRoutes: FastifyPluginAsyncTypebox<{ statementTimeoutMs: number }> = async (app, { statementTimeoutMs }) => {
  const open = routeAccess(app, 'public')
  const readiness = new SharedResult(async () => await checkReadiness(app.sql, { statementTimeoutMs }), READINESS_REUSE_MS)

  /**
   * Whether the caller may see the checks' details. /readyz stays public: no credential is never an attempt (a probe
   * never meets the failed-authentication limit), and a credential that is refused gets the public answer, not a 401.
   */
  async function showsDetails (request: FastifyRequest): Promise<boolean> {
    try {
      if (readCredential(request.raw.rawHeaders).kind === 'none') return false
    } catch {} // a malformed credential header is an attempt: authenticate() counts it as one
    try {
      request.principal = await app.authenticate(request, 'select')
    } catch (error) {
      if (error instanceof AuthRejection || error instanceof ProblemError) return false
      throw error
    }
    return request.principal.role === DETAILS_ROLE
  }

  app.get('/livez', {
    schema: {
      operationId: 'getLivez',
      summary: 'The API process is up (no database call)',
      tags: ['health'],
      security: open.security,
      response: { 200: { description: 'Up', content: { [HEALTH_JSON]: { schema: Type.Object({ status: Type.Literal('pass') }) } } } }
    }
  }, async (_request, reply) => {
    void reply.type(HEALTH_JSON).header('cache-control', 'no-store')
    return { status: 'pass' as const }
  })

  app.get('/readyz', {
    schema: {
      operationId: 'getReadyz',
      summary: 'Database reachable, table shape as expected, policies as mirrored',
      description: `Public. One check runs at a time, and its result is reused for ${READINESS_REUSE_MS} ms from its start, ` +
        'so a flood of probes costs the database about one catalog check a second. The checks\' `output` (drift, ' +
        'policy expressions) is sent only to a service_role token or secret API key; a credential that is refused ' +
        'gets the public answer.',
      tags: ['health'],
      // Public (a credential is optional: see the description), so no 401 or 429 is ever sent.
      security: open.security,
      response: {
        200: { description: 'Ready', content: { [HEALTH_JSON]: { schema: Type.Ref(ReadinessSchema) } } },
        503: { description: 'Not ready: the failing check says which (and, to service_role, why)', content: { [HEALTH_JSON]: { schema: Type.Ref(ReadinessSchema) } } }
      }
    }
  }, async (request, reply) => {
    void reply.type(HEALTH_JSON).header('cache-control', 'no-store')
    const detailed = await showsDetails(request)
    const report = await readiness.get()
    if (report.checks.database.status === 'fail') void reply.header('retry-after', '5')
    return await reply.code(report.status === 'pass' ? 200 : 503).send(detailed ? report : withoutDetails(report))
  })
}

export default healthRoutes
