// The JSON shapes the API answers with. The domain's types derive from them (Static<>); src/http/schemas.ts gives
// the shared ones their $id, which names their OpenAPI component.
import { Type, type Static, type TSchema } from '@sinclair/typebox'

// A type array (`["string", "null"]`), not anyOf: fast-json-stringify serializes it by typeof, where anyOf runs the
// validator on every nullable value (3.8 µs against 1.1 µs for a liveness body).
const Nullable = <T extends TSchema>(schema: T) => Type.Unsafe<Static<T> | null>({ ...schema, type: [schema.type as string, 'null'] })
const Timestamp = Type.String({ format: 'date-time', description: 'ISO 8601, UTC' })

const Pass = Type.Literal('pass')
const Warn = Type.Literal('warn')
const Fail = Type.Literal('fail')

export const HealthStatusSchema = Type.Union([Pass, Warn, Fail])

export const LIVENESS_STATES = ['unknown', 'missing', 'paused', 'stopped', 'stale', 'stopping', 'circuit_open', 'degraded', 'starting', 'late', 'alive'] as const

export const LivenessStateSchema = Type.Union(LIVENESS_STATES.map((state) => Type.Literal(state)))

export const LivenessSchema = Type.Object({
  status: HealthStatusSchema,
  state: LivenessStateSchema,
  checked_at: Timestamp,
  last_poll_at: Nullable(Timestamp),
  next_poll_at: Nullable(Timestamp),
  seconds_since_last_poll: Nullable(Type.Number({ description: 'Negative when the scheduler\'s clock is ahead of the database\'s' })),
  seconds_overdue: Nullable(Type.Number({ minimum: 0 })),
  grace_seconds: Nullable(Type.Number({ minimum: 0 })),
  output: Type.Optional(Type.String({ description: 'One human sentence, whenever status is not pass' })),
  demo: Type.Optional(Type.Literal(true, { description: 'Present only when the verdict is about demo data: the embedded database (no DATABASE_URL), not a real scheduler' }))
}, { description: 'The derived liveness verdict (draft-inadarei-api-health-check style)' })

/** The row as JSON; as read from the database its timestamps are Dates (HeartbeatRow in heartbeat.ts). */
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
  // Loosely typed: the value comes from the database, whose CHECK constraint is not ours to trust blindly.
  status: Type.String({ examples: ['running', 'stopping', 'stopped'] }),
  metadata: Type.Unknown({ description: 'Opaque JSON written by the scheduler' }),
  updated_at: Timestamp
}, { description: 'The eva_scheduler_heartbeat row (id = 1), all 13 columns' })

export const CheckSchema = Type.Object({
  status: Type.Union([Pass, Fail]),
  output: Type.Optional(Type.String({ description: 'What the check found wrong; only for service_role callers' }))
})

// warn, not fail: a read replica serves every read, so the API stays ready (200); only PATCH is refused.
export const WritesCheckSchema = Type.Object({
  status: Type.Union([Pass, Warn, Fail]),
  output: Type.Optional(Type.String())
}, { description: 'warn when the database is read-only (a hot standby, or default_transaction_read_only on): reads are served, PATCH answers 503 database_read_only' })

/** One entry per check: a new check is one more key here and in db/readiness.ts. */
export const ReadinessSchema = Type.Object({
  status: Type.Union([Pass, Fail]),
  checks: Type.Object({ database: CheckSchema, table: CheckSchema, policies: CheckSchema, writes: WritesCheckSchema })
}, {
  description: 'Whether this API can serve: database reachable, table and policies as expected. Every caller gets each ' +
    'check\'s status; only a service_role token or secret API key also gets the failing checks\' `output`.'
})
