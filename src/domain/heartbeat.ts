// The heartbeat row, exactly as the seed describes the table and as postgres.js hands it over.
import type { Static } from '@sinclair/typebox'
import type { HeartbeatRowSchema } from './schemas.js'

/** The values the table's CHECK constraint allows for `status`. */
export const SCHEDULER_STATUSES = ['running', 'stopping', 'stopped'] as const
export type SchedulerStatus = typeof SCHEDULER_STATUSES[number]

/** The breaker states the scheduler and the API write. Others can appear in the column (it is free text). */
export const BREAKER_STATES = ['CLOSED', 'OPEN', 'HALF_OPEN'] as const
export type BreakerState = typeof BREAKER_STATES[number]

/** The timestamptz columns: ISO 8601 strings in JSON, Dates as postgres.js hands them over. */
type TimestampColumn = 'started_at' | 'last_poll_at' | 'next_poll_at' | 'updated_at'
/** The row as JSON: every timestamp an ISO 8601 UTC string, everything else as stored. */
export type HeartbeatJson = Static<typeof HeartbeatRowSchema>

/** The row as postgres.js returns it (timestamptz → Date, jsonb → parsed JSON); its JSON form is HeartbeatRowSchema. */
export type HeartbeatRow = {
  [K in keyof HeartbeatJson]: K extends TimestampColumn ? Date | Exclude<HeartbeatJson[K], string> : HeartbeatJson[K]
}
