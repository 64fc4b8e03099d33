import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import type { FastifyRequest } from 'fastify'
import { deriveLiveness, livenessHttpStatus, withDemoLabel, type GraceSettings, type HeartbeatReading, type Verdict } from '../domain/liveness.js'
import { entityTag, heartbeatJson, noneMatch } from '../domain/representation.js'
import { databaseUnavailable, heartbeatNotFound, ProblemError } from '../http/problems.js'
import { routeAccess } from '../http/access.js'
import { GraceQuery, HEADERS, heartbeatResponse, LivenessSchema, problem, ProblemSchema } from '../http/schemas.js'

export interface HeartbeatRoutesOptions {
  grace: { graceSeconds: number, graceFactor: number }
  livenessPublic: boolean
  /** The row is demo data: every verdict says so. */
  demoData?: boolean
}

const HEALTH_JSON = 'application/health+json'

const GRACE_TEXT = /^(?:\d+(?:\.\d*)?|\.\d+)$/

/**
 * `?grace=` must be written as plain decimal seconds. The schema alone is not enough: ajv's number coercion turns
 * `` (empty) into 0 and accepts `Infinity`, `1e999`, `0x10` and ` 5` (an infinite grace even passes `maximum` and then
 * breaks the serializer). The range itself is left to the schema.
 */
async function refuseLooseGrace (request: FastifyRequest): Promise<void> {
  const mark = request.url.indexOf('?')
  if (mark === -1) return
  const query = request.url.slice(mark + 1)
  for (const value of new URLSearchParams(query).getAll('grace')) {
    if (!GRACE_TEXT.test(value)) {
      throw new ProblemError(400, 'invalid_request', 'Invalid request', 'querystring grace must be a number of seconds from 0 to 86400.')
    }
  }
}

const heartbeatRoutes: FastifyPluginAsyncTypebox<HeartbeatRoutesOptions> = async (app, options) => {
  const graceFor = (grace: number | undefined): GraceSettings =>
    grace === undefined ? options.grace : { ...options.grace, overrideSeconds: grace }
  const livenessVerdict = (reading: HeartbeatReading, grace: number | undefined): Verdict => deriveLiveness(reading, graceFor(grace))
  const heartbeatAccess = routeAccess(app, 'select')
  const livenessAccess = routeAccess(app, options.livenessPublic ? 'public' : 'select')

  app.get('/heartbeat', {
    schema: {
      operationId: 'getHeartbeat',
      summary: 'The heartbeat row and its derived liveness',
      description: 'Roles `authenticated` and `service_role`. ETag changes when the row or the verdict changes; send it back in If-None-Match for a 304.',
      tags: ['heartbeat'],
      security: heartbeatAccess.security,
      querystring: GraceQuery,
      response: {
        200: heartbeatResponse('The row and its verdict'),
        304: { description: 'Not modified: the ETag in If-None-Match is current', headers: { ETag: HEADERS.etag }, type: 'null' },
        400: problem('A query parameter is not valid'),
        ...heartbeatAccess.refusals,
        404: problem('The table has no heartbeat row'),
        503: problem('The database or the signing keys (JWKS_URL) are unavailable', 503)
      }
    },
    preValidation: refuseLooseGrace,
    preHandler: heartbeatAccess.gate
  }, async (request, reply) => {
    const reading = await app.store.read(heartbeatAccess.principal(request))
    if (!reading.reachable) throw databaseUnavailable()
    if (reading.row === null) throw heartbeatNotFound()
    const { liveness } = livenessVerdict(reading, request.query.grace)
    const heartbeat = heartbeatJson(reading.row)
    const etag = entityTag(heartbeat, liveness)
    void reply.headers({ etag, 'last-modified': reading.row.updated_at.toUTCString(), 'cache-control': 'no-cache' })
    if (noneMatch(request.headers['if-none-match'], etag)) return await reply.code(304).send()
    return { heartbeat, liveness: withDemoLabel(liveness, options.demoData ?? false) }
  })

  app.get('/heartbeat/liveness', {
    schema: {
      operationId: 'getLiveness',
      summary: 'The liveness verdict, for uptime monitors',
      description: '200 for pass and warn (503 for warn too with `strict=true`), 503 for fail, with Retry-After. ' +
        (livenessAccess.public ? 'Public (LIVENESS_PUBLIC=true).' : 'Roles `authenticated` and `service_role` (LIVENESS_PUBLIC=false).'),
      tags: ['heartbeat'],
      security: livenessAccess.security,
      querystring: GraceQuery,
      response: {
        200: { description: 'pass or warn', headers: { 'Cache-Control': HEADERS.noStore }, content: { [HEALTH_JSON]: { schema: Type.Ref(LivenessSchema) } } },
        400: problem('A query parameter is not valid'),
        ...livenessAccess.refusals,
        503: {
          description: 'fail (or warn with strict=true)' + (livenessAccess.public ? '' : '; or, as problem+json, the signing keys (JWKS_URL) could not be fetched to check the token'),
          headers: { 'Cache-Control': HEADERS.noStore, 'Retry-After': HEADERS.retryAfter },
          content: {
            [HEALTH_JSON]: { schema: Type.Ref(LivenessSchema) },
            ...(livenessAccess.public ? {} : { 'application/problem+json': { schema: Type.Ref(ProblemSchema) } })
          }
        }
      }
    },
    preValidation: refuseLooseGrace,
    preHandler: livenessAccess.gate
  }, async (request, reply) => {
    const reading = await app.store.read(livenessAccess.principal(request))
    const { liveness, retryAfterSeconds } = livenessVerdict(reading, request.query.grace)
    const code = livenessHttpStatus(liveness, request.query.strict ?? false)
    void reply.code(code).type(HEALTH_JSON).header('cache-control', 'no-store')
    if (code === 503) void reply.header('retry-after', String(retryAfterSeconds))
    return withDemoLabel(liveness, options.demoData ?? false)
  })
}

export default heartbeatRoutes
