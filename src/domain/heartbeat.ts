// The heartbeat row, exactly as the seed describes the table and as postgres.js hands it over.

/** The values the table's CHECK constraint allows for `status`. */
export const SCHEDULER_STATUSES = ['running', 'stopping', 'stopped'] as const
export type SchedulerStatus = typeof SCHEDULER_STATUSES[number]

/** The breaker states the scheduler and the API write. Others can appear in the column (it is free text). */
export const BREAKER_STATES = ['CLOSED', 'OPEN', 'HALF_OPEN'] as const
export type BreakerState = typeof BREAKER_STATES[number]

/** The row as postgres.js returns it (timestamptz → Date, jsonb → parsed JSON). */
export interface HeartbeatRow {
  id: number
  instance_id: string
  started_at: Date
  last_poll_at: Date | null
  next_poll_at: Date | null
  poll_count: number
  dispatch_count: number
  error_count: number
  circuit_breaker_state: string | null
  paused_reason: string | null
  /** Comes from the database, so typed loosely: the CHECK constraint is not ours to trust blindly. */
  status: string
  metadata: unknown
  updated_at: Date
}
