// The liveness verdict: a pure function of one database reading (the row and the database's now(), read in the
// same query) and the grace settings, by the contract's table (first match wins). The API host's clock is never read.
import type { Static } from '@sinclair/typebox'
import type { HeartbeatRow } from './heartbeat.js'
import type { HealthStatusSchema, LivenessSchema, LivenessStateSchema } from './schemas.js'

export type LivenessState = Static<typeof LivenessStateSchema>
export type HealthStatus = Static<typeof HealthStatusSchema>

export interface GraceSettings {
  /** STALE_GRACE_SECONDS: the floor of the grace (default 60). */
  graceSeconds: number
  /** STALE_GRACE_FACTOR: multiplies the announced interval next_poll_at − last_poll_at (default 3). */
  graceFactor: number
  /** ?grace= from the request: replaces the whole formula */
  overrideSeconds?: number
}

/**
 * What one read of the database gave: either unreachable (checkedAt = the API's clock, the only clock there is)
 * or the row (null = no row) with the database's now() read in the same query.
 */
export type HeartbeatReading =
  | { reachable: false, checkedAt: Date }
  | { reachable: true, row: HeartbeatRow | null, now: Date }

/** The liveness body exactly as the contract shows it (snake_case). */
export type Liveness = Static<typeof LivenessSchema>

export interface Verdict {
  liveness: Liveness
  /** Whole seconds (>= 1) until a new verdict could differ: for Retry-After. */
  retryAfterSeconds: number
}

const STATUS_OF: Readonly<Record<LivenessState, HealthStatus>> = {
  unknown: 'fail',
  missing: 'fail',
  paused: 'warn',
  stopped: 'fail',
  stale: 'fail',
  stopping: 'warn',
  circuit_open: 'warn',
  degraded: 'warn',
  starting: 'pass',
  late: 'warn',
  alive: 'pass'
}

/** Retry-After when the database could not be read: soon, it may be back. */
const UNKNOWN_RETRY_SECONDS = 5
/** Retry-After for write-driven states when the scheduler announced no usable interval. */
const DEFAULT_RETRY_SECONDS = 60
const MIN_RETRY_SECONDS = 1
const MAX_RETRY_SECONDS = 300

/** Seconds rounded to 3 decimals (millisecond precision), never -0. */
function round3 (seconds: number): number {
  const rounded = Math.round(seconds * 1000) / 1000
  return rounded === 0 ? 0 : rounded
}

/** A number as a sentence shows it: at most 3 decimals, no trailing zeros ("180", "12.3"). */
const show = (seconds: number): string => String(round3(seconds))

const iso = (date: Date | null): string | null => date === null ? null : date.toISOString()

const clampRetry = (seconds: number): number => Math.min(MAX_RETRY_SECONDS, Math.max(MIN_RETRY_SECONDS, seconds))

/**
 * The grace after which a missed poll makes the scheduler stale: `?grace=` when given (even when smaller), else
 * max(graceSeconds, graceFactor × the announced interval), so a slow scheduler is not called stale between its polls.
 */
export function graceSeconds (row: HeartbeatRow, settings: GraceSettings): number {
  if (settings.overrideSeconds !== undefined) return settings.overrideSeconds
  return Math.max(settings.graceSeconds, settings.graceFactor * announcedIntervalSeconds(row))
}

/** next_poll_at − last_poll_at in seconds, or 0 when either is null or the difference is negative. */
function announcedIntervalSeconds (row: HeartbeatRow): number {
  if (row.last_poll_at === null || row.next_poll_at === null) return 0
  return Math.max(0, (row.next_poll_at.getTime() - row.last_poll_at.getTime()) / 1000)
}

interface Classification {
  state: LivenessState
  /** Epoch ms at which the verdict changes by the passing of time alone, or null when only a write can change it. */
  changesAtMs: number | null
}

/** The contract's table, first matching row wins (rows 1 and 2 are handled by the caller). */
function classify (row: HeartbeatRow, nowMs: number, graceMs: number): Classification {
  const nextMs = row.next_poll_at === null ? null : row.next_poll_at.getTime()
  // Row 5's deadline: next_poll_at + grace, or updated_at + grace while no next poll has been announced.
  const staleAtMs = (nextMs ?? row.updated_at.getTime()) + graceMs
  const pausedReason = row.paused_reason === null ? '' : row.paused_reason.trim()

  if ((row.status === 'stopping' || row.status === 'stopped') && pausedReason !== '') return { state: 'paused', changesAtMs: null }
  if (row.status === 'stopped') return { state: 'stopped', changesAtMs: null }
  if (nowMs > staleAtMs) return { state: 'stale', changesAtMs: null }
  // From here on nothing but a write can stop the clock running out at staleAtMs.
  if (row.status === 'stopping') return { state: 'stopping', changesAtMs: staleAtMs }
  if (row.circuit_breaker_state === 'OPEN') return { state: 'circuit_open', changesAtMs: staleAtMs }
  if (row.circuit_breaker_state !== null && row.circuit_breaker_state !== 'CLOSED') return { state: 'degraded', changesAtMs: staleAtMs }
  if (nextMs === null) return { state: 'starting', changesAtMs: staleAtMs }
  if (nowMs > nextMs) return { state: 'late', changesAtMs: staleAtMs }
  // alive: late comes first (grace is never negative in practice; min() keeps this right even if it were).
  return { state: 'alive', changesAtMs: Math.min(nextMs, staleAtMs) }
}

const UNKNOWN_OUTPUT = "The database could not be reached in time, so the scheduler's state is unknown."
const MISSING_OUTPUT = 'The heartbeat table has no row: the scheduler has never written its heartbeat here, or the row was deleted.'

/**
 * One sentence for a human on call about a non-healthy state reached with a row. It never names the healthy status
 * and carries no row data beyond the body's own fields (neither paused_reason nor the breaker's raw value).
 */
function sentence (state: LivenessState, body: Liveness, updatedAt: Date, grace: number): string {
  const g = show(grace)
  const last = body.last_poll_at
  const next = body.next_poll_at
  let text: string
  switch (state) {
    case 'paused':
      text = 'The scheduler is paused by an operator'
      break
    case 'stopped':
      text = last === null
        ? 'The scheduler has shut down without ever polling, and no operator pause explains it'
        : `The scheduler has shut down (last poll at ${last}), and no operator pause explains it`
      break
    case 'stale':
      text = next === null
        ? `The row was last written at ${updatedAt.toISOString()}, no next poll was announced, and the grace of ${g} s has run out`
        : `${last === null ? 'No poll has ever been recorded' : `No heartbeat since ${last}`}: the next poll was due at ${next} and the grace of ${g} s has run out`
      break
    case 'stopping':
      text = 'The scheduler is shutting down'
      break
    case 'circuit_open':
      text = "The scheduler's circuit breaker is open: it keeps polling but holds back work until the breaker closes"
      break
    case 'degraded':
      text = "The scheduler's circuit breaker is neither closed nor open (for example half-open), so work may be held back"
      break
    default: // late, the only other non-healthy state with a row: next_poll_at and seconds_overdue are set
      text = `The poll due at ${String(next)} is ${String(body.seconds_overdue)} s late, still within the grace of ${g} s`
      break
  }
  const since = body.seconds_since_last_poll
  if (since !== null && since < 0) {
    text += ` (the scheduler's clock is ${show(-since)} s ahead of the database's)`
  }
  return `${text}.`
}

/**
 * The liveness verdict for one reading. `retryAfterSeconds` is when time alone next changes the verdict, or, for
 * states only a write can change, the scheduler's announced interval (else 60); 5 for unknown; clamped to [1, 300].
 */
export function deriveLiveness (reading: HeartbeatReading, settings: GraceSettings): Verdict {
  if (!reading.reachable) {
    return {
      liveness: {
        status: 'fail',
        state: 'unknown',
        checked_at: reading.checkedAt.toISOString(),
        last_poll_at: null,
        next_poll_at: null,
        seconds_since_last_poll: null,
        seconds_overdue: null,
        grace_seconds: null,
        output: UNKNOWN_OUTPUT
      },
      retryAfterSeconds: clampRetry(UNKNOWN_RETRY_SECONDS)
    }
  }
  const { row, now } = reading
  if (row === null) {
    return {
      liveness: {
        status: 'fail',
        state: 'missing',
        checked_at: now.toISOString(),
        last_poll_at: null,
        next_poll_at: null,
        seconds_since_last_poll: null,
        seconds_overdue: null,
        grace_seconds: null,
        output: MISSING_OUTPUT
      },
      retryAfterSeconds: clampRetry(DEFAULT_RETRY_SECONDS)
    }
  }

  const nowMs = now.getTime()
  const grace = graceSeconds(row, settings)
  const { state, changesAtMs } = classify(row, nowMs, grace * 1000)
  const status = STATUS_OF[state]

  const sinceLastPoll = row.last_poll_at === null ? null : round3((nowMs - row.last_poll_at.getTime()) / 1000)
  const overdue = row.next_poll_at === null ? null : round3(Math.max(0, nowMs - row.next_poll_at.getTime()) / 1000)

  const liveness: Liveness = {
    status,
    state,
    checked_at: now.toISOString(),
    last_poll_at: iso(row.last_poll_at),
    next_poll_at: iso(row.next_poll_at),
    seconds_since_last_poll: sinceLastPoll,
    seconds_overdue: overdue,
    grace_seconds: round3(grace)
  }
  if (status !== 'pass') liveness.output = sentence(state, liveness, row.updated_at, grace)

  let retry: number
  if (changesAtMs !== null) {
    retry = Math.ceil((changesAtMs - nowMs) / 1000)
  } else {
    const interval = Math.ceil(announcedIntervalSeconds(row))
    retry = interval > 0 ? interval : DEFAULT_RETRY_SECONDS
  }
  return { liveness, retryAfterSeconds: clampRetry(retry) }
}

/** The liveness route's HTTP status: fail → 503; warn → 503 only when strict (`?strict=true`); pass → 200. */
export function livenessHttpStatus (liveness: Liveness, strict: boolean): 200 | 503 {
  if (liveness.status === 'fail') return 503
  if (liveness.status === 'warn' && strict) return 503
  return 200
}

/** The verdict as an answer shows it: marked `demo: true` when it was taken from demo data, else unchanged. */
export const withDemoLabel = (liveness: Liveness, demoData: boolean): Liveness =>
  demoData ? { ...liveness, demo: true } : liveness
