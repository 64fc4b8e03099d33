// PATCH /heartbeat: the operator's write path (pause, resume, trip or reset the breaker). Role service_role only;
// the database's own policies decide again, and every accepted change leaves one audit line.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import type { FastifyRequest } from 'fastify'
import { UpdateRefusedError, type HeartbeatChange, type LockedHeartbeat } from '../db/heartbeat.js'
import { deriveLiveness, withDemoLabel, type GraceSettings } from '../domain/liveness.js'
import { describeChanges, HeartbeatPatchSchema, normalisePatch } from '../domain/patch.js'
import { entityTag, heartbeatJson, ifMatch } from '../domain/representation.js'
import { heartbeatNotFound, ProblemError } from '../http/problems.js'
import { routeAccess } from '../http/access.js'
import { useStrictJsonBodies } from '../http/json-body.js'
import { HeartbeatResponseSchema, problem } from '../http/schemas.js'

export interface AdminRoutesOptions {
  grace: { graceSeconds: number, graceFactor: number }
  /** The row is demo data: the verdict in the answer says so. */
  demoData?: boolean
}

/** The contract's cap for a PATCH body. */
export const PATCH_BODY_LIMIT_BYTES = 16 * 1024
export const PATCH_MEDIA_TYPES = ['application/json', 'application/merge-patch+json'] as const
const ACCEPT_PATCH = PATCH_MEDIA_TYPES.join(', ')

/** Only JSON bodies: Fastify would otherwise parse text/plain too and the schema would answer 400, not 415. */
async function requireJsonBody (request: FastifyRequest): Promise<void> {
  const given = request.headers['content-type']
  const essence = (given ?? '').split(';')[0]?.trim().toLowerCase() ?? ''
  if (!(PATCH_MEDIA_TYPES as readonly string[]).includes(essence)) {
    const got = given === undefined ? 'no Content-Type' : `Content-Type ${JSON.stringify(given.slice(0, 100))}`
    throw new ProblemError(415, 'unsupported_media_type', 'Unsupported media type',
      `Send the body as application/json or application/merge-patch+json (got ${got}).`, { 'accept-patch': ACCEPT_PATCH })
  }
}

const adminRoutes: FastifyPluginAsyncTypebox<AdminRoutesOptions> = async (app, options) => {
  const grace: GraceSettings = options.grace
  const access = routeAccess(app, 'update')
  /** The ETag GET /heartbeat (without ?grace=) gives for this reading. */
  const tagOf = ({ row, now }: LockedHeartbeat): string =>
    entityTag(heartbeatJson(row), deriveLiveness({ reachable: true, row, now }, grace).liveness)

  // Scoped to this plugin: both media types are JSON, read as strict UTF-8 and parsed by Fastify's own parser
  // (which refuses __proto__ and constructor.prototype keys).
  useStrictJsonBodies(app, PATCH_MEDIA_TYPES)

  app.patch('/heartbeat', {
    bodyLimit: PATCH_BODY_LIMIT_BYTES,
    schema: {
      operationId: 'patchHeartbeat',
      summary: 'Pause, resume, trip or reset the breaker',
      description: 'Role `service_role`. Writes only `status`, `paused_reason` and `circuit_breaker_state`, with `updated_at = now()`, ' +
        'in one transaction; answers like GET /heartbeat with the new ETag. `If-Match` (an ETag from GET /heartbeat) makes the change ' +
        'conditional: 412 when the row or its verdict has changed since. Pause: `{"status":"stopping","paused_reason":"deploy"}`; ' +
        'resume: `{"status":"running","paused_reason":null}`.',
      tags: ['heartbeat'],
      security: access.security,
      consumes: [...PATCH_MEDIA_TYPES],
      headers: Type.Object({
        'if-match': Type.Optional(Type.String({ description: 'An ETag from GET /heartbeat; the change happens only while it is current' }))
      }),
      body: HeartbeatPatchSchema,
      response: {
        200: Type.Ref(HeartbeatResponseSchema),
        400: problem('The body is not valid JSON, names a field that may not be written, or has a value that is not allowed'),
        ...access.refusals,
        404: problem('The table has no heartbeat row'),
        412: problem('If-Match does not match the current ETag: the row (or its verdict) changed; read it again'),
        413: problem('The body is larger than 16 KiB'),
        415: problem('The body is not application/json or application/merge-patch+json'),
        503: problem('The database or the signing keys (JWKS_URL) are unavailable, or the database is read-only (database_read_only: a hot standby; nothing was written)', 503)
      }
    },
    // Authentication first, before the body is read: a caller without the role learns nothing about the body rules.
    onRequest: [...access.gate, requireJsonBody]
  }, async (request, reply) => {
    const principal = access.principal(request)
    const normalised = normalisePatch(request.body)
    if (!normalised.ok) throw new ProblemError(400, 'invalid_request', 'Invalid request', normalised.detail)

    const condition = request.headers['if-match']
    let change: HeartbeatChange | null
    try {
      change = await app.store.update(principal, normalised.changes, (current) => {
        const etag = tagOf(current)
        if (!ifMatch(condition, etag)) {
          throw new ProblemError(412, 'precondition_failed', 'Precondition failed',
            'If-Match does not match the current ETag: the heartbeat (or its verdict) has changed since it was read; read it again.', { etag })
        }
      })
    } catch (error) {
      if (!(error instanceof UpdateRefusedError)) throw error
      // The API's policy mirror allowed what the database refused: worth an operator's attention (/readyz shows drift).
      request.log.warn({ who: principal.subject, role: principal.role, reason: error.message }, 'heartbeat change refused by the database')
      throw new ProblemError(403, 'update_refused', 'Forbidden',
        `The database refused to let role ${principal.role} change the heartbeat row; it is unchanged.`)
    }
    if (change === null) throw heartbeatNotFound()

    request.log.info({
      audit: {
        who: principal.subject,
        role: principal.role,
        ip: request.ip,
        changes: describeChanges(change.before, change.after, normalised.changes)
      }
    }, 'heartbeat changed')

    const reading = { reachable: true as const, row: change.after, now: change.now }
    const { liveness } = deriveLiveness(reading, grace)
    const heartbeat = heartbeatJson(change.after)
    void reply.headers({
      etag: entityTag(heartbeat, liveness),
      'last-modified': change.after.updated_at.toUTCString(),
      'cache-control': 'no-cache'
    })
    return { heartbeat, liveness: withDemoLabel(liveness, options.demoData ?? false) }
  })
}

export default adminRoutes
