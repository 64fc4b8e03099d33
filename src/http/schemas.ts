// Shared response schemas. Each carries an $id, which becomes its OpenAPI component name.
import { Type, type Static, type TSchema } from '@sinclair/typebox'

/**
 * `T | null` as one schema with a type array (`"type": ["string", "null"]`), not `anyOf`: fast-json-stringify
 * serializes a type array by `typeof`, while for `anyOf` it runs the validator (the date-time format included) on
 * every nullable value of every answer — 3.8 µs against 1.1 µs for a liveness body.
 */
const Nullable = <T extends TSchema>(schema: T) => Type.Unsafe<Static<T> | null>({ ...schema, type: [schema.type as string, 'null'] })
const Timestamp = Type.String({ format: 'date-time', description: 'ISO 8601, UTC' })

export const ProblemSchema = Type.Object({
  type: Type.String({ description: 'URI reference naming the problem type', examples: ['urn:eva-heartbeat-api:problem:token_expired'] }),
  title: Type.String(),
  status: Type.Integer({ minimum: 400, maximum: 599 }),
  detail: Type.String({ description: 'What was wrong, in one sentence' }),
  code: Type.String({ description: 'Stable machine-readable code', examples: ['token_expired', 'insufficient_scope', 'unknown_field', 'database_unavailable'] })
}, { $id: 'Problem', description: 'RFC 9457 problem details' })

export const LIVENESS_STATES = ['unknown', 'missing', 'paused', 'stopped', 'stale', 'stopping', 'circuit_open', 'degraded', 'starting', 'late', 'alive'] as const

export const LivenessSchema = Type.Object({
  status: Type.Union([Type.Literal('pass'), Type.Literal('warn'), Type.Literal('fail')]),
  state: Type.Union(LIVENESS_STATES.map((state) => Type.Literal(state))),
  checked_at: Timestamp,
  last_poll_at: Nullable(Timestamp),
  next_poll_at: Nullable(Timestamp),
  seconds_since_last_poll: Nullable(Type.Number({ description: 'Negative when the scheduler\'s clock is ahead of the database\'s' })),
  seconds_overdue: Nullable(Type.Number({ minimum: 0 })),
  grace_seconds: Nullable(Type.Number({ minimum: 0 })),
  output: Type.Optional(Type.String({ description: 'One human sentence, whenever status is not pass' })),
  demo: Type.Optional(Type.Literal(true, { description: 'Present only when the verdict is about demo data: the embedded database (no DATABASE_URL), not a real scheduler' }))
}, { $id: 'Liveness', description: 'The derived liveness verdict (draft-inadarei-api-health-check style)' })

export const HeartbeatRowSchema = Type.Object({
  id: Type.Integer(),
  instance_id: Type.String(),
  started_at: Timestamp,
  last_poll_at: Nullable(Timestamp),
  next_poll_at: Nullable(Timestamp),
  poll_count: Type.Integer(),
  dispatch_count: Type.Integer(),
  error_count: Type.Integer(),
  circuit_breaker_state: Nullable(Type.String()),
  paused_reason: Nullable(Type.String()),
  status: Type.String({ examples: ['running', 'stopping', 'stopped'] }),
  metadata: Type.Unknown({ description: 'Opaque JSON written by the scheduler' }),
  updated_at: Timestamp
}, { $id: 'HeartbeatRow', description: 'The eva_scheduler_heartbeat row (id = 1), all 13 columns' })

export const HeartbeatResponseSchema = Type.Object({
  heartbeat: Type.Ref(HeartbeatRowSchema),
  liveness: Type.Ref(LivenessSchema)
}, { $id: 'HeartbeatResponse' })

export const SHARED_SCHEMAS = [ProblemSchema, LivenessSchema, HeartbeatRowSchema, HeartbeatResponseSchema]

/** `security` of a public operation: said explicitly, so that no client assumes the document's default. */
export const PUBLIC: Array<Record<string, string[]>> = []

const header = (description: string) => ({ type: 'string', description })

/** Response headers, for the OpenAPI document. */
export const HEADERS = {
  etag: header('Strong validator of the row and the verdict; send it back in If-None-Match (GET) or If-Match (PATCH)'),
  lastModified: header('The row\'s updated_at, as an HTTP date'),
  cacheControl: header('no-cache: revalidate with If-None-Match'),
  noStore: header('no-store'),
  retryAfter: header('Whole seconds (at least 1) until a new answer could differ'),
  wwwAuthenticate: header('Bearer challenge (RFC 6750), with error= when a token was sent')
}

const CHALLENGED = new Set([401, 403])

/** A response of `application/problem+json` for the OpenAPI document and the serializer. */
export function problem (description: string, status?: number) {
  const headers = status === undefined
    ? undefined
    : CHALLENGED.has(status) ? { 'WWW-Authenticate': HEADERS.wwwAuthenticate } : status === 503 || status === 429 ? { 'Retry-After': HEADERS.retryAfter } : undefined
  return { description, ...(headers === undefined ? {} : { headers }), content: { 'application/problem+json': { schema: Type.Ref(ProblemSchema) } } }
}

/** The GET /heartbeat body with its caching headers (PATCH answers the same). */
export function heartbeatResponse (description: string) {
  return {
    description,
    headers: { ETag: HEADERS.etag, 'Last-Modified': HEADERS.lastModified, 'Cache-Control': HEADERS.cacheControl },
    content: { 'application/json': { schema: Type.Ref(HeartbeatResponseSchema) } }
  }
}

export const GraceQuery = Type.Object({
  grace: Type.Optional(Type.Number({ minimum: 0, maximum: 86400, description: 'Grace in seconds for this request, instead of the configured rule' })),
  strict: Type.Optional(Type.Boolean({ default: false, description: 'Answer 503 for every warn verdict too' }))
})
