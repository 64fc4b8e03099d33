// Every schema the routes share, each with an $id, which names its OpenAPI component. The domain's shapes come from
// src/domain/schemas.ts, where the domain's types derive from them.
import { CloneType, Type } from '@sinclair/typebox'
import * as shapes from '../domain/schemas.js'

export const ProblemSchema = Type.Object({
  type: Type.String({ description: 'URI reference naming the problem type', examples: ['urn:eva-heartbeat-api:problem:token_expired'] }),
  title: Type.String(),
  status: Type.Integer({ minimum: 400, maximum: 599 }),
  detail: Type.String({ description: 'What was wrong, in one sentence' }),
  code: Type.String({ description: 'Stable machine-readable code', examples: ['token_expired', 'insufficient_scope', 'unknown_field', 'database_unavailable'] })
}, { $id: 'Problem', description: 'RFC 9457 problem details' })

export const LivenessSchema = CloneType(shapes.LivenessSchema, { $id: 'Liveness' })
export const HeartbeatRowSchema = CloneType(shapes.HeartbeatRowSchema, { $id: 'HeartbeatRow' })

export const HeartbeatResponseSchema = Type.Object({
  heartbeat: Type.Ref(HeartbeatRowSchema),
  liveness: Type.Ref(LivenessSchema)
}, { $id: 'HeartbeatResponse' })

export const ReadinessSchema = CloneType(shapes.ReadinessSchema, { $id: 'Readiness' })

export const ShieldsEndpointSchema = Type.Object({
  schemaVersion: Type.Literal(1),
  label: Type.String(),
  message: Type.String({ description: 'The verdict state in words; followed by " (demo)" when the verdict is about demo data (the embedded database)', examples: ['alive', 'late', 'stale', 'circuit open', 'alive (demo)'] }),
  color: Type.String({ description: 'brightgreen (pass), yellow (warn), red (fail), lightgrey (unknown: the database could not be read)' })
}, { $id: 'ShieldsEndpoint', description: 'shields.io endpoint badge (https://shields.io/badges/endpoint-badge)' })

/** In this order, so that the OpenAPI document's components keep theirs. */
export const SHARED_SCHEMAS = [ProblemSchema, LivenessSchema, HeartbeatRowSchema, HeartbeatResponseSchema, ReadinessSchema, ShieldsEndpointSchema]

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
