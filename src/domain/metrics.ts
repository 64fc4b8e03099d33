// What one scrape reports about the scheduler: a pure function of the reading and the verdict deriveLiveness gave
// for it (never a verdict of its own). The metrics plugin only copies these numbers into prom-client gauges.
import { BREAKER_STATES, SCHEDULER_STATUSES } from './heartbeat.js'
import type { HeartbeatReading, Liveness, LivenessState } from './liveness.js'

/** The breaker state set: the values the scheduler writes, and `other` for anything else in the free-text column. */
export const BREAKER_METRIC_STATES = [...BREAKER_STATES, 'other'] as const
export type BreakerMetricState = typeof BREAKER_METRIC_STATES[number]

export type SchedulerStatusMetric = typeof SCHEDULER_STATUSES[number]

/**
 * One scrape's values. `null` means "not known from this reading" (database unreachable, no row, or a null column):
 * the series is then left out rather than set to 0, because 0 is a real value for these (a counter at 0 followed by
 * its true value reads to rate() as a reset and a jump; a timestamp of 0 is 1970, not "unknown").
 */
export interface SchedulerSample {
  /** 1 unless the verdict's status is fail. */
  up: 0 | 1
  /** The verdict's state: exactly one series of the state set is 1. */
  state: LivenessState
  /** The row's status when it is one the table allows, else null (every series of the state set is 0). */
  status: SchedulerStatusMetric | null
  /** The row's breaker state; null when the column is null or there is no row (every series 0). */
  breaker: BreakerMetricState | null
  /** 1 iff the verdict is an operator pause. */
  paused: 0 | 1
  databaseUp: 0 | 1
  /** The verdict's checked_at (the database's clock; the API's when the database was unreachable). */
  checkedAtSeconds: number
  lastPollSeconds: number | null
  nextPollSeconds: number | null
  updatedSeconds: number | null
  createdSeconds: number | null
  polls: number | null
  dispatches: number | null
  errors: number | null
  instanceId: string | null
  graceSeconds: number | null
}

const seconds = (date: Date | null): number | null => date === null ? null : date.getTime() / 1000
/** A counter cannot go below 0; a negative column value (never written by the scheduler) is reported as unknown. */
const count = (value: number | undefined): number | null => value === undefined || value < 0 ? null : value

function breakerOf (value: string | null): BreakerMetricState | null {
  if (value === null) return null
  return (BREAKER_STATES as readonly string[]).includes(value) ? value as BreakerMetricState : 'other'
}

function statusOf (value: string): SchedulerStatusMetric | null {
  return (SCHEDULER_STATUSES as readonly string[]).includes(value) ? value as SchedulerStatusMetric : null
}

export function schedulerSample (reading: HeartbeatReading, liveness: Liveness): SchedulerSample {
  const row = reading.reachable ? reading.row : null
  return {
    up: liveness.status === 'fail' ? 0 : 1,
    state: liveness.state,
    status: row === null ? null : statusOf(row.status),
    breaker: row === null ? null : breakerOf(row.circuit_breaker_state),
    paused: liveness.state === 'paused' ? 1 : 0,
    databaseUp: reading.reachable ? 1 : 0,
    checkedAtSeconds: Date.parse(liveness.checked_at) / 1000,
    lastPollSeconds: seconds(row?.last_poll_at ?? null),
    nextPollSeconds: seconds(row?.next_poll_at ?? null),
    updatedSeconds: seconds(row?.updated_at ?? null),
    createdSeconds: seconds(row?.started_at ?? null),
    polls: count(row?.poll_count),
    dispatches: count(row?.dispatch_count),
    errors: count(row?.error_count),
    instanceId: row?.instance_id ?? null,
    graceSeconds: liveness.grace_seconds
  }
}
