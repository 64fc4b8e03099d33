// `pause --wait` / `resume --wait`: what reads of the row after an accepted PATCH say about the scheduler (pure).
// A PATCH never changes the scheduler's own columns, and the scheduler stamps updated_at with last_poll_at: so the
// row itself says who wrote last. The limits of that inference are in docs/scheduler.md.
import type { Liveness } from '../domain/liveness.js'
import type { HeartbeatJson } from '../domain/heartbeat.js'
import type { HeartbeatAnswer } from './format.js'

export type WaitGoal = 'pause' | 'resume'

export type WaitOutcome = 'acknowledged' | 'overwritten' | 'superseded' | 'no_word' | 'unreachable'

/** 0 confirmed; 1 not in force (the scheduler or another operator undid it); 2 not confirmed in time; 3 could not look. */
export const WAIT_EXIT_CODES: Readonly<Record<WaitOutcome, number>> = {
  acknowledged: 0, overwritten: 1, superseded: 1, no_word: 2, unreachable: 3
}

/**
 * How far apart updated_at and last_poll_at may be and still be one scheduler write. The real scheduler's two clock
 * readings are microseconds apart; every millisecond more is a window in which a PATCH that follows a scheduler
 * write between two reads is taken for the scheduler's.
 */
export const SAME_WRITE_MS = 100

/** What one read of GET /heartbeat gave. */
export type Sighting =
  | { kind: 'row' } & HeartbeatAnswer
  /** 304: row and verdict as last seen. */
  | { kind: 'unchanged' }
  /** 404: no row. */
  | { kind: 'missing' }
  /** The API or its database could not be reached (network error, timeout, 503): may pass, so the wait goes on. */
  | { kind: 'unreachable', reason: string }
  /** Any other answer (401 after the token expired, 403...): reading again will not help. */
  | { kind: 'refused', reason: string }

/** Why no scheduler write settled it in time. */
export type Silence =
  /** The row was gone at the last read. */
  | 'missing'
  /** The scheduler's last write, before the PATCH, was a graceful stop (stopped, no reason): nothing will come. */
  | 'stopped'
  /** The heartbeat is overdue beyond its grace: the scheduler is not polling. */
  | 'stale'
  /** The scheduler took the pause (stopping, reason kept) and has not written stopped yet: jobs still draining. */
  | 'draining'
  /** The scheduler wrote, but another operator's change followed each write before it could be read. */
  | 'hidden'
  /** Within the grace: idle or slow (adaptive polling stretches the interval up to 3×); a longer wait may settle it. */
  | 'not_yet'

export interface WaitDecision {
  outcome: WaitOutcome
  /** The row that decided it, or the last one seen (null when the last read found no row or none succeeded). */
  heartbeat: HeartbeatJson | null
  liveness: Liveness | null
  /** last_poll_at of the latest scheduler write seen since the PATCH (the scheduler's clock). */
  schedulerWroteAt: string | null
  /** updated_at of another operator's change that ended the wait (superseded). */
  operatorWroteAt: string | null
  silence: Silence | null
  /** Why the last read failed (unreachable). */
  failure: string | null
}

export interface WaitState {
  goal: WaitGoal
  /** The pause reason the operators now ask for: ours as stored (trimmed), or a later operator's. Null for resume. */
  askedReason: string | null
  /** The row before the PATCH, when it could be read: its last scheduler write tells a stopped scheduler. */
  before: HeartbeatJson | null
  /** The row our accepted PATCH left. */
  patched: HeartbeatJson
  /** The last row seen (the PATCH's answer until a read returns one). */
  seen: HeartbeatJson
  liveness: Liveness
  missing: boolean
  /** Set while the latest read failed; cleared by the next one that succeeds. */
  failure: string | null
  /** The latest scheduler write seen since the PATCH, whether or not it could be judged. */
  schedulerWrite: HeartbeatJson | null
  /** The latest scheduler write seen was hidden by an operator's change that followed it. */
  hidden: boolean
  decision: WaitDecision | null
}

const SCHEDULER_COLUMNS = ['instance_id', 'started_at', 'last_poll_at', 'next_poll_at', 'poll_count', 'dispatch_count', 'error_count'] as const

/** Did the scheduler write between these two readings? Only it writes these columns. */
export function schedulerWrote (earlier: HeartbeatJson, later: HeartbeatJson): boolean {
  return SCHEDULER_COLUMNS.some((column) => earlier[column] !== later[column]) ||
    JSON.stringify(earlier.metadata) !== JSON.stringify(later.metadata)
}

/** Was this row's last write the scheduler's? It stamps updated_at and last_poll_at together; a PATCH only updated_at. */
export function lastWriteIsScheduler (row: HeartbeatJson): boolean {
  if (row.last_poll_at === null) return false
  const gap = Math.abs(Date.parse(row.updated_at) - Date.parse(row.last_poll_at))
  return Number.isFinite(gap) && gap <= SAME_WRITE_MS
}

/** The contract's pause: stopping or stopped with a reason that is not blank. */
export function isPause (row: Pick<HeartbeatJson, 'status' | 'paused_reason'>): boolean {
  return (row.status === 'stopping' || row.status === 'stopped') && row.paused_reason !== null && row.paused_reason.trim() !== ''
}

export function startWait (goal: WaitGoal, patched: HeartbeatAnswer, before: HeartbeatJson | null): WaitState {
  return {
    goal,
    askedReason: goal === 'pause' ? patched.heartbeat.paused_reason : null,
    before,
    patched: patched.heartbeat,
    seen: patched.heartbeat,
    liveness: patched.liveness,
    missing: false,
    failure: null,
    schedulerWrite: null,
    hidden: false,
    decision: null
  }
}

function decisionOf (state: WaitState, outcome: WaitOutcome, extra: Partial<WaitDecision> = {}): WaitDecision {
  return {
    outcome,
    heartbeat: state.missing ? null : state.seen,
    liveness: state.missing ? null : state.liveness,
    schedulerWroteAt: state.schedulerWrite?.last_poll_at ?? null,
    operatorWroteAt: null,
    silence: null,
    failure: null,
    ...extra
  }
}

const decide = (state: WaitState, outcome: WaitOutcome, extra: Partial<WaitDecision> = {}): WaitState =>
  ({ ...state, decision: decisionOf(state, outcome, extra) })

/** The scheduler wrote last: its control fields are its answer to the operators' request. */
function judgeSchedulerWrite (state: WaitState, row: HeartbeatJson): WaitState {
  if (state.goal === 'resume') return decide(state, row.status === 'running' ? 'acknowledged' : 'overwritten')
  if (!isPause(row) || row.paused_reason !== state.askedReason) return decide(state, 'overwritten')
  return row.status === 'stopped' ? decide(state, 'acknowledged') : state
}

/** An operator wrote last: a change that keeps the request updates it (a new reason), one that drops it ends the wait. */
function adoptOperatorWrite (state: WaitState, row: HeartbeatJson): WaitState {
  const keeps = state.goal === 'pause' ? isPause(row) : row.status === 'running'
  if (!keeps) return decide(state, 'superseded', { operatorWroteAt: row.updated_at })
  return state.goal === 'pause' ? { ...state, askedReason: row.paused_reason } : state
}

/** One read's worth of news. Once decided, the state no longer changes. */
export function observe (state: WaitState, sighting: Sighting): WaitState {
  if (state.decision !== null) return state
  switch (sighting.kind) {
    case 'unreachable': return { ...state, failure: sighting.reason }
    case 'refused': return decide({ ...state, failure: sighting.reason }, 'unreachable', { failure: sighting.reason })
    case 'unchanged': return { ...state, failure: null }
    case 'missing': return { ...state, failure: null, missing: true }
    case 'row': break
  }
  const previous = state.seen
  const row = sighting.heartbeat
  let next: WaitState = { ...state, seen: row, liveness: sighting.liveness, failure: null, missing: false }
  const byScheduler = schedulerWrote(previous, row)
  if (byScheduler) next = { ...next, schedulerWrite: row, hidden: !lastWriteIsScheduler(row) }
  if (byScheduler && !next.hidden) return judgeSchedulerWrite(next, row)
  if (row.updated_at !== previous.updated_at) return adoptOperatorWrite(next, row)
  return next
}

/** Why the scheduler has said nothing that settles it. */
export function silenceOf (state: WaitState): Silence {
  if (state.missing) return 'missing'
  if (state.schedulerWrite !== null) return state.hidden ? 'hidden' : 'draining'
  const before = state.before
  if (before !== null && lastWriteIsScheduler(before) && before.status === 'stopped' && before.paused_reason === null &&
    before.last_poll_at === state.seen.last_poll_at) return 'stopped'
  const { seconds_overdue: overdue, grace_seconds: grace } = state.liveness
  return overdue !== null && grace !== null && overdue > grace ? 'stale' : 'not_yet'
}

/** The deadline has come: what the wait established. */
export function conclude (state: WaitState): WaitDecision {
  if (state.decision !== null) return state.decision
  if (state.failure !== null) return decisionOf(state, 'unreachable', { failure: state.failure })
  return decisionOf(state, 'no_word', { silence: silenceOf(state) })
}
