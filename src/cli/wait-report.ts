// What `pause --wait` and `resume --wait` print: one line for people, one JSON object for scripts. Pure.
import type { HeartbeatJson } from '../domain/heartbeat.js'
import { seconds } from './format.js'
import { WAIT_EXIT_CODES, type WaitDecision, type WaitGoal } from './wait-decision.js'

export const HONOURING_DOCS = 'see "Honouring a pause" in docs/scheduler.md'

export interface WaitContext {
  goal: WaitGoal
  /** The reason the pause asked for (as stored); null for resume. */
  reason: string | null
  waitSeconds: number
  /** From the accepted PATCH to the decision, on this host's clock. */
  waitedSeconds: number
  /** updated_at of the accepted PATCH (database clock); null when nothing was written. */
  patchedAt: string | null
  /** The row before the PATCH, when read: its last write tells a stopped scheduler. */
  before: HeartbeatJson | null
}

const quoted = (reason: string | null): string => reason === null ? 'no paused_reason' : `paused_reason ${JSON.stringify(reason)}`
const controls = (row: HeartbeatJson): string => `status ${row.status}, ${quoted(row.paused_reason)}`
const noun = (goal: WaitGoal): string => goal === 'pause' ? 'pause' : 'resume'
const failed = (goal: WaitGoal): string => goal === 'pause' ? 'not paused' : 'not resumed'

function silenceText (decision: WaitDecision, context: WaitContext): string {
  const row = decision.heartbeat
  const live = decision.liveness
  switch (decision.silence) {
    case 'missing': return 'the heartbeat row is gone (verdict missing)'
    case 'stopped':
      return `no scheduler write; its last one, at ${context.before?.last_poll_at ?? '?'}, was a graceful stop (status stopped): ` +
        'a stopped scheduler writes nothing until it is started again'
    case 'draining':
      return `the scheduler took the pause at ${decision.schedulerWroteAt ?? '?'} (status stopping, reason kept) but has not ` +
        'written stopped yet: work it dispatched before is still running'
    case 'hidden':
      return `the scheduler wrote (last at ${decision.schedulerWroteAt ?? '?'}), but another operator's change followed ` +
        'each of its writes before the row could be read'
    case 'stale':
      return `no scheduler write; the heartbeat is stale: last poll at ${row?.last_poll_at ?? '?'}` +
        `${live?.seconds_since_last_poll == null ? '' : ` (${seconds(live.seconds_since_last_poll)} ago)`}, beyond next_poll_at ` +
        `and a grace of ${live?.grace_seconds == null ? '?' : seconds(live.grace_seconds)}: the scheduler is not polling`
    default:
      return `no scheduler write yet; last poll at ${row?.last_poll_at ?? 'never'}, next announced for ${row?.next_poll_at ?? '?'}, ` +
        'still within the grace: it may be idle (adaptive polling stretches its interval up to 3×); wait longer than its interval'
  }
}

/** The one line that says how the wait ended. */
export function waitSummary (decision: WaitDecision, context: WaitContext): string {
  const { goal } = context
  const row = decision.heartbeat
  const verdict = decision.liveness === null ? '' : `; verdict ${decision.liveness.state} (${decision.liveness.status})`
  const after = `${seconds(context.waitedSeconds)} after the ${noun(goal)}`
  switch (decision.outcome) {
    case 'acknowledged':
      return goal === 'pause'
        ? `paused: the scheduler stopped at ${decision.schedulerWroteAt ?? '?'}, keeping ${quoted(row?.paused_reason ?? null)} (seen ${after})${verdict}`
        : `resumed: the scheduler is running again, polled at ${decision.schedulerWroteAt ?? '?'} (seen ${after})${verdict}`
    case 'overwritten':
      return goal === 'pause'
        ? `${failed(goal)}: the scheduler overwrote the pause at ${decision.schedulerWroteAt ?? '?'} (${row === null ? '?' : controls(row)}): ` +
          `this scheduler does not honour pauses; stop its process instead (${HONOURING_DOCS})`
        : `${failed(goal)}: the scheduler wrote ${row === null ? '?' : controls(row)} at ${decision.schedulerWroteAt ?? '?'}, after the ` +
          `resume: it did not take it (${HONOURING_DOCS})`
    case 'superseded':
      return `${failed(goal)}: another operator changed the row at ${decision.operatorWroteAt ?? '?'} (${row === null ? '?' : controls(row)}) ` +
        `before the scheduler took the ${noun(goal)}`
    case 'no_word':
      return `not confirmed within ${context.waitSeconds} s of the ${noun(goal)}: ${silenceText(decision, context)}${verdict}`
    case 'unreachable':
      return context.patchedAt === null
        ? `${failed(goal)}: ${decision.failure ?? 'the API could not be reached'}; the API did not confirm the ${noun(goal)} ` +
          '(eva-heartbeat status shows the row)'
        : `not confirmed: ${decision.failure ?? 'the API could not be reached'}; the ${noun(goal)} was written at ${context.patchedAt}, ` +
          'whether the scheduler took it is unknown'
  }
}

/** The one object `--json` prints. */
export function waitReport (decision: WaitDecision, context: WaitContext): Record<string, unknown> {
  return {
    command: context.goal,
    outcome: decision.outcome,
    exit_code: WAIT_EXIT_CODES[decision.outcome],
    summary: waitSummary(decision, context),
    paused_reason: context.reason,
    wait_seconds: context.waitSeconds,
    waited_seconds: Math.round(context.waitedSeconds * 1000) / 1000,
    patched_at: context.patchedAt,
    scheduler_wrote_at: decision.schedulerWroteAt,
    operator_wrote_at: decision.operatorWroteAt,
    silence: decision.silence,
    failure: decision.failure,
    heartbeat: decision.heartbeat,
    liveness: decision.liveness
  }
}
