// The decision behind `pause --wait` / `resume --wait`, case by case: who wrote the row, and what that write means.
import t from 'tap'
import {
  conclude, isPause, lastWriteIsScheduler, observe, SAME_WRITE_MS, schedulerWrote, silenceOf, startWait, WAIT_EXIT_CODES,
  type Sighting, type WaitGoal, type WaitState
} from '../../src/cli/wait-decision.js'
import type { Liveness } from '../../src/domain/liveness.js'
import type { HeartbeatJson } from '../../src/domain/heartbeat.js'

const T0 = Date.parse('2026-12-02T06:00:00.000Z')
const at = (seconds: number): string => new Date(T0 + seconds * 1000).toISOString()

/** The row as the scheduler left it at T0: running, polled at T0, next poll in 60 s. */
const BASE: HeartbeatJson = {
  id: 1,
  instance_id: 'scheduler-0a1b2c3d',
  started_at: at(-3600),
  last_poll_at: at(0),
  next_poll_at: at(60),
  poll_count: 10,
  dispatch_count: 4,
  error_count: 0,
  circuit_breaker_state: 'CLOSED',
  paused_reason: null,
  status: 'running',
  metadata: { observe_only: false, round_execution_count: 10 },
  updated_at: at(0)
}

function live (over: Partial<Liveness> = {}): Liveness {
  return {
    status: 'warn', state: 'paused', checked_at: at(5), last_poll_at: at(0), next_poll_at: at(60),
    seconds_since_last_poll: 5, seconds_overdue: 0, grace_seconds: 180, output: 'Paused.', ...over
  }
}

type Controls = Partial<Pick<HeartbeatJson, 'status' | 'paused_reason' | 'circuit_breaker_state'>>

/** What an operator's PATCH does: the control fields and updated_at (database clock), nothing else. */
const operator = (row: HeartbeatJson, seconds: number, controls: Controls): HeartbeatJson => ({ ...row, ...controls, updated_at: at(seconds) })

/** What the scheduler's upsert does: a new poll, with updated_at and last_poll_at from one clock reading. */
const scheduler = (row: HeartbeatJson, seconds: number, controls: Controls): HeartbeatJson => ({
  ...row,
  ...controls,
  last_poll_at: at(seconds),
  next_poll_at: at(seconds + 60),
  poll_count: row.poll_count + 1,
  metadata: { observe_only: false, round_execution_count: row.poll_count + 1 },
  updated_at: at(seconds)
})

const seen = (heartbeat: HeartbeatJson, liveness: Liveness = live()): Sighting => ({ kind: 'row', heartbeat, liveness })

const PAUSED = operator(BASE, 5, { status: 'stopping', paused_reason: 'deploy' })
const RESUMED = operator({ ...BASE, status: 'stopped', paused_reason: 'deploy' }, 5, { status: 'running', paused_reason: null })

function waitFor (goal: WaitGoal, patched: HeartbeatJson, before: HeartbeatJson | null = BASE): WaitState {
  return startWait(goal, { heartbeat: patched, liveness: live() }, before)
}

const run = (state: WaitState, ...sightings: Sighting[]): WaitState => sightings.reduce(observe, state)

t.test('exit codes: 0 taken, 1 undone, 2 no word in time, 3 could not look', async (t) => {
  t.same(WAIT_EXIT_CODES, { acknowledged: 0, overwritten: 1, superseded: 1, no_word: 2, unreachable: 3 })
})

t.test('schedulerWrote: any column only the scheduler writes, and nothing an operator writes', async (t) => {
  t.notOk(schedulerWrote(BASE, BASE), 'the same row')
  t.notOk(schedulerWrote(BASE, operator(BASE, 9, { status: 'stopped', paused_reason: 'x', circuit_breaker_state: 'OPEN' })), 'a PATCH')
  const changes: Array<[string, Partial<HeartbeatJson>]> = [
    ['instance_id (a restart)', { instance_id: 'scheduler-ffffffff' }],
    ['started_at (the row re-created)', { started_at: at(1) }],
    ['last_poll_at', { last_poll_at: at(1) }],
    ['last_poll_at going back (clock stepped)', { last_poll_at: at(-1) }],
    ['next_poll_at', { next_poll_at: at(61) }],
    ['poll_count', { poll_count: 11 }],
    ['dispatch_count', { dispatch_count: 5 }],
    ['error_count', { error_count: 1 }],
    ['metadata', { metadata: { observe_only: true } }]
  ]
  for (const [what, change] of changes) t.ok(schedulerWrote(BASE, { ...BASE, ...change }), what)
})

t.test('lastWriteIsScheduler: updated_at within SAME_WRITE_MS of last_poll_at', async (t) => {
  t.equal(SAME_WRITE_MS, 100)
  t.ok(lastWriteIsScheduler(BASE), 'one clock reading')
  t.ok(lastWriteIsScheduler({ ...BASE, updated_at: at(0.001) }), 'two readings a millisecond apart (the real scheduler)')
  t.ok(lastWriteIsScheduler({ ...BASE, updated_at: at(0.1) }), 'at the bound')
  t.ok(lastWriteIsScheduler({ ...BASE, updated_at: at(-0.1) }), 'either way')
  t.notOk(lastWriteIsScheduler({ ...BASE, updated_at: at(0.101) }), 'a PATCH after the poll')
  t.notOk(lastWriteIsScheduler({ ...BASE, updated_at: at(-5) }), 'a PATCH with the scheduler\'s clock ahead')
  t.notOk(lastWriteIsScheduler({ ...BASE, last_poll_at: null }), 'never polled')
  t.notOk(lastWriteIsScheduler({ ...BASE, last_poll_at: 'not a date' }), 'unreadable')
})

t.test('isPause: stopping or stopped with a reason that is not blank', async (t) => {
  const cases: Array<[string, string | null, boolean]> = [
    ['stopping', 'deploy', true], ['stopped', 'deploy', true], ['running', 'deploy', false],
    ['stopped', null, false], ['stopping', '  ', false], ['running', 'circuit_breaker_open', false]
  ]
  for (const [status, reason, expected] of cases) t.equal(isPause({ status, paused_reason: reason }), expected, `${status} ${String(reason)}`)
})

t.test('pause: the scheduler writes stopped with the reason: acknowledged', async (t) => {
  const ack = scheduler(PAUSED, 8, { status: 'stopped' })
  const state = run(waitFor('pause', PAUSED), { kind: 'unchanged' }, seen(ack))
  t.match(state.decision, { outcome: 'acknowledged', heartbeat: ack, schedulerWroteAt: at(8), operatorWroteAt: null, silence: null, failure: null })
})

t.test('pause: stopping first (draining), then stopped', async (t) => {
  const draining = scheduler(PAUSED, 8, {})
  let state = run(waitFor('pause', PAUSED), seen(draining))
  t.equal(state.decision, null, 'stopping with the reason: still draining')
  t.equal(silenceOf(state), 'draining')
  t.match(conclude(state), { outcome: 'no_word', silence: 'draining', schedulerWroteAt: at(8) }, 'at the deadline: not confirmed')
  state = observe(state, seen(scheduler(draining, 9, { status: 'stopped' })))
  t.match(state.decision, { outcome: 'acknowledged', schedulerWroteAt: at(9) })
})

t.test('pause: every way a scheduler write undoes it is overwritten', async (t) => {
  const writes: Array<[string, Controls]> = [
    ['running, reason cleared (today\'s real scheduler)', { status: 'running', paused_reason: null, circuit_breaker_state: 'CLOSED' }],
    ['running, its breaker note', { status: 'running', paused_reason: 'circuit_breaker_open', circuit_breaker_state: 'OPEN' }],
    ['stopped, reason cleared (its graceful stop)', { status: 'stopped', paused_reason: null }],
    ['stopped, another reason', { status: 'stopped', paused_reason: 'scheduler says so' }],
    ['stopping, reason cleared', { status: 'stopping', paused_reason: null }]
  ]
  for (const [what, controls] of writes) {
    const write = scheduler(PAUSED, 8, controls)
    t.match(observe(waitFor('pause', PAUSED), seen(write)).decision, { outcome: 'overwritten', heartbeat: write, schedulerWroteAt: at(8) }, what)
  }
})

t.test('pause: other operators', async (t) => {
  t.test('one who only trips the breaker changes nothing the wait is about', async (t) => {
    const breaker = operator(PAUSED, 6, { circuit_breaker_state: 'OPEN' })
    const state = run(waitFor('pause', PAUSED), seen(breaker))
    t.equal(state.decision, null)
    t.match(observe(state, seen(scheduler(breaker, 8, { status: 'stopped' }))).decision, { outcome: 'acknowledged' })
  })
  t.test('one who pauses again with another reason: that reason is the one to keep', async (t) => {
    const again = operator(PAUSED, 6, { paused_reason: 'migration' })
    const state = run(waitFor('pause', PAUSED), seen(again))
    t.equal(state.askedReason, 'migration')
    t.match(observe(state, seen(scheduler(again, 8, { status: 'stopped' }))).decision, { outcome: 'acknowledged' }, 'kept: acknowledged')
    t.match(observe(state, seen(scheduler(again, 8, { status: 'stopped', paused_reason: 'deploy' }))).decision, { outcome: 'overwritten' },
      'the old reason written back: overwritten')
  })
  t.test('one who resumes ends the wait: superseded, not the scheduler\'s doing', async (t) => {
    const resumed = operator(PAUSED, 6, { status: 'running', paused_reason: null })
    t.match(observe(waitFor('pause', PAUSED), seen(resumed)).decision,
      { outcome: 'superseded', operatorWroteAt: at(6), schedulerWroteAt: null, heartbeat: resumed })
    t.match(observe(waitFor('pause', PAUSED), seen(operator(PAUSED, 6, { paused_reason: null }))).decision,
      { outcome: 'superseded' }, 'clearing the reason alone')
  })
  t.test('a scheduler write followed by an operator\'s before the next read: the operator\'s row decides', async (t) => {
    const hiddenAck = operator(scheduler(PAUSED, 8, { status: 'stopped' }), 10, { circuit_breaker_state: 'HALF_OPEN' })
    const state = observe(waitFor('pause', PAUSED), seen(hiddenAck))
    t.equal(state.decision, null, 'the pause still stands, but the scheduler\'s answer is hidden')
    t.match(conclude(state), { outcome: 'no_word', silence: 'hidden', schedulerWroteAt: at(8) })
    t.match(observe(state, seen(scheduler(hiddenAck, 12, {}))).decision, { outcome: 'acknowledged', schedulerWroteAt: at(12) },
      'the next scheduler write settles it')
    const hiddenResume = operator(scheduler(PAUSED, 8, { status: 'stopped' }), 10, { status: 'running', paused_reason: null })
    t.match(observe(waitFor('pause', PAUSED), seen(hiddenResume)).decision, { outcome: 'superseded', operatorWroteAt: at(10) })
    const tooClose = operator(scheduler(PAUSED, 8, { status: 'stopped' }), 8.05, { status: 'running', paused_reason: null })
    t.match(observe(waitFor('pause', PAUSED), seen(tooClose)).decision, { outcome: 'overwritten' },
      'a limit: a PATCH within SAME_WRITE_MS of the scheduler\'s write is taken for the scheduler\'s')
  })
})

t.test('resume: running after a scheduler write is acknowledged; anything else is overwritten', async (t) => {
  t.match(observe(waitFor('resume', RESUMED), seen(scheduler(RESUMED, 8, {}))).decision, { outcome: 'acknowledged', schedulerWroteAt: at(8) })
  t.match(observe(waitFor('resume', RESUMED), seen(scheduler(RESUMED, 8, { paused_reason: 'circuit_breaker_open', circuit_breaker_state: 'OPEN' }))).decision,
    { outcome: 'acknowledged' }, 'running with its breaker open is running')
  for (const controls of [{ status: 'stopped', paused_reason: 'deploy' }, { status: 'stopping', paused_reason: 'deploy' }, { status: 'stopped', paused_reason: null }]) {
    t.match(observe(waitFor('resume', RESUMED), seen(scheduler(RESUMED, 8, controls))).decision, { outcome: 'overwritten' }, JSON.stringify(controls))
  }
  t.equal(waitFor('resume', RESUMED).askedReason, null)
})

t.test('resume: other operators', async (t) => {
  const breaker = operator(RESUMED, 6, { circuit_breaker_state: 'CLOSED' })
  t.equal(observe(waitFor('resume', RESUMED), seen(breaker)).decision, null, 'a breaker change: still waiting')
  t.match(observe(waitFor('resume', RESUMED), seen(operator(RESUMED, 6, { status: 'stopping', paused_reason: 'again' }))).decision,
    { outcome: 'superseded', operatorWroteAt: at(6) }, 'paused again')
})

t.test('reads that fail', async (t) => {
  let state = observe(waitFor('pause', PAUSED), { kind: 'unreachable', reason: '503 database_unavailable: down' })
  t.equal(state.decision, null, 'the database may come back: the wait goes on')
  t.match(conclude(state), { outcome: 'unreachable', failure: '503 database_unavailable: down', heartbeat: PAUSED })
  state = observe(state, { kind: 'unchanged' })
  t.equal(state.failure, null, 'a 304 clears it')
  t.match(conclude(state), { outcome: 'no_word' })
  state = run(waitFor('pause', PAUSED), { kind: 'unreachable', reason: 'x' }, seen(PAUSED))
  t.equal(state.failure, null, 'so does a row')
  t.match(observe(waitFor('pause', PAUSED), { kind: 'refused', reason: '401 token_expired: gone' }).decision,
    { outcome: 'unreachable', failure: '401 token_expired: gone' }, 'a refusal ends the wait at once')
})

t.test('the row gone, and back', async (t) => {
  const gone = observe(waitFor('pause', PAUSED), { kind: 'missing' })
  t.equal(gone.decision, null)
  t.match(conclude(gone), { outcome: 'no_word', silence: 'missing', heartbeat: null, liveness: null })
  const recreated = scheduler({ ...PAUSED, started_at: at(7) }, 8, { status: 'running', paused_reason: null })
  t.match(observe(gone, seen(recreated)).decision, { outcome: 'overwritten' }, 'the scheduler re-creating it running')
})

t.test('a new verdict on the same row settles nothing', async (t) => {
  const state = observe(waitFor('pause', PAUSED), seen(PAUSED, live({ state: 'paused', seconds_overdue: 500 })))
  t.equal(state.decision, null)
  t.equal(state.liveness.seconds_overdue, 500, 'but its ages are kept for the conclusion')
})

t.test('once decided, later reads change nothing', async (t) => {
  const decided = observe(waitFor('pause', PAUSED), seen(scheduler(PAUSED, 8, { status: 'running', paused_reason: null })))
  t.equal(run(decided, seen(scheduler(PAUSED, 9, { status: 'stopped' })), { kind: 'unreachable', reason: 'x' }), decided)
  t.equal(conclude(decided), decided.decision)
})

t.test('silence: why no scheduler write settled it', async (t) => {
  const stoppedBefore = { ...BASE, status: 'stopped' }
  t.equal(silenceOf(waitFor('pause', PAUSED, stoppedBefore)), 'stopped', 'its last write was a graceful stop')
  t.equal(silenceOf(waitFor('resume', { ...RESUMED, last_poll_at: BASE.last_poll_at }, stoppedBefore)), 'stopped', 'for resume too')
  t.equal(silenceOf(waitFor('pause', PAUSED, { ...stoppedBefore, paused_reason: 'deploy' })), 'not_yet',
    'stopped with a reason is a pause it took: it keeps polling')
  t.equal(silenceOf(waitFor('pause', PAUSED, operator(stoppedBefore, 3, {}))), 'not_yet', 'stopped by an operator, not by the scheduler')
  t.equal(silenceOf(waitFor('pause', scheduler(PAUSED, 4, {}), stoppedBefore)), 'not_yet',
    'the scheduler wrote between the read and the PATCH')
  t.equal(silenceOf(waitFor('pause', PAUSED, null)), 'not_yet', 'no read before')

  const at = (liveness: Liveness): WaitState => observe(waitFor('pause', PAUSED), seen(PAUSED, liveness))
  t.equal(silenceOf(at(live({ seconds_overdue: 181, grace_seconds: 180 }))), 'stale', 'overdue beyond the grace')
  t.equal(silenceOf(at(live({ seconds_overdue: 180, grace_seconds: 180 }))), 'not_yet', 'at the grace')
  t.equal(silenceOf(at(live({ seconds_overdue: null, grace_seconds: 180 }))), 'not_yet', 'nothing announced')
  t.equal(silenceOf(at(live({ seconds_overdue: 900, grace_seconds: null }))), 'not_yet')
  t.equal(silenceOf(waitFor('pause', PAUSED, stoppedBefore)), 'stopped', 'a graceful stop wins over stale')
})
