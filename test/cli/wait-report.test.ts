// What `pause --wait` / `resume --wait` print for each way a wait ends.
import t from 'tap'
import type { Silence, WaitDecision } from '../../src/cli/wait-decision.js'
import { waitReport, waitSummary, type WaitContext } from '../../src/cli/wait-report.js'
import type { Liveness } from '../../src/domain/liveness.js'
import type { HeartbeatJson } from '../../src/domain/heartbeat.js'

const ROW: HeartbeatJson = {
  id: 1, instance_id: 'scheduler-0a1b2c3d', started_at: '2026-12-02T05:00:00.000Z',
  last_poll_at: '2026-12-02T06:00:08.000Z', next_poll_at: '2026-12-02T06:01:08.000Z',
  poll_count: 11, dispatch_count: 4, error_count: 0, circuit_breaker_state: 'CLOSED',
  paused_reason: 'deploy', status: 'stopped', metadata: {}, updated_at: '2026-12-02T06:00:08.000Z'
}
const LIVE: Liveness = {
  status: 'warn', state: 'paused', checked_at: '2026-12-02T06:00:09.000Z', last_poll_at: ROW.last_poll_at, next_poll_at: ROW.next_poll_at,
  seconds_since_last_poll: 1, seconds_overdue: 0, grace_seconds: 180, output: 'Paused.'
}
const PAUSE: WaitContext = { goal: 'pause', reason: 'deploy', waitSeconds: 120, waitedSeconds: 2.345, patchedAt: '2026-12-02T06:00:05.000Z', before: null }
const RESUME: WaitContext = { ...PAUSE, goal: 'resume', reason: null }

const decision = (over: Partial<WaitDecision>): WaitDecision => ({
  outcome: 'acknowledged', heartbeat: ROW, liveness: LIVE, schedulerWroteAt: ROW.last_poll_at, operatorWroteAt: null, silence: null, failure: null, ...over
})

t.test('acknowledged: when it stopped, or when it polled running', async (t) => {
  t.equal(waitSummary(decision({}), PAUSE),
    'paused: the scheduler stopped at 2026-12-02T06:00:08.000Z, keeping paused_reason "deploy" (seen 2.3 s after the pause); verdict paused (warn)')
  t.equal(waitSummary(decision({ heartbeat: { ...ROW, status: 'running', paused_reason: null }, liveness: { ...LIVE, state: 'alive', status: 'pass' } }), RESUME),
    'resumed: the scheduler is running again, polled at 2026-12-02T06:00:08.000Z (seen 2.3 s after the resume); verdict alive (pass)')
})

t.test('overwritten: says the scheduler does not honour pauses and where to read more', async (t) => {
  const running = { ...ROW, status: 'running', paused_reason: null }
  t.equal(waitSummary(decision({ outcome: 'overwritten', heartbeat: running }), PAUSE),
    'not paused: the scheduler overwrote the pause at 2026-12-02T06:00:08.000Z (status running, no paused_reason): this scheduler does not ' +
    'honour pauses; stop its process instead (see "Honouring a pause" in docs/scheduler.md)')
  t.equal(waitSummary(decision({ outcome: 'overwritten' }), RESUME),
    'not resumed: the scheduler wrote status stopped, paused_reason "deploy" at 2026-12-02T06:00:08.000Z, after the resume: it did not take it ' +
    '(see "Honouring a pause" in docs/scheduler.md)')
})

t.test('superseded: another operator, named by when', async (t) => {
  const running = { ...ROW, status: 'running', paused_reason: null, updated_at: '2026-12-02T06:00:07.000Z' }
  t.equal(waitSummary(decision({ outcome: 'superseded', heartbeat: running, operatorWroteAt: running.updated_at, schedulerWroteAt: null }), PAUSE),
    'not paused: another operator changed the row at 2026-12-02T06:00:07.000Z (status running, no paused_reason) before the scheduler took the pause')
  t.match(waitSummary(decision({ outcome: 'superseded', heartbeat: null }), RESUME), /^not resumed: another operator changed the row at \? \(\?\) before the scheduler took the resume$/)
})

t.test('no word: each silence in its own words', async (t) => {
  const expected: Record<Silence, RegExp> = {
    missing: /: the heartbeat row is gone \(verdict missing\)$/,
    stopped: /: no scheduler write; its last one, at 2026-12-02T06:00:00\.000Z, was a graceful stop \(status stopped\): a stopped scheduler writes nothing until it is started again; verdict paused \(warn\)$/,
    stale: /: no scheduler write; the heartbeat is stale: last poll at 2026-12-02T06:00:08\.000Z \(15 min ago\), beyond next_poll_at and a grace of 3 min: the scheduler is not polling; /,
    draining: /: the scheduler took the pause at 2026-12-02T06:00:08\.000Z \(status stopping, reason kept\) but has not written stopped yet: /,
    hidden: /: the scheduler wrote \(last at 2026-12-02T06:00:08\.000Z\), but another operator's change followed each of its writes /,
    not_yet: /: no scheduler write yet; last poll at 2026-12-02T06:00:08\.000Z, next announced for 2026-12-02T06:01:08\.000Z, still within the grace: .*wait longer than its interval; verdict paused \(warn\)$/
  }
  const before = { ...ROW, status: 'stopped', paused_reason: null, last_poll_at: '2026-12-02T06:00:00.000Z' }
  for (const [silence, pattern] of Object.entries(expected) as Array<[Silence, RegExp]>) {
    const gone = silence === 'missing'
    const line = waitSummary(decision({
      outcome: 'no_word', silence, heartbeat: gone ? null : ROW, liveness: gone ? null : { ...LIVE, seconds_since_last_poll: 900 }
    }), { ...PAUSE, before })
    t.match(line, /^not confirmed within 120 s of the pause: /, silence)
    t.match(line, pattern, silence)
  }
})

t.test('unreachable: whether anything was written', async (t) => {
  const failure = '503 database_unavailable: The database could not be reached.'
  t.equal(waitSummary(decision({ outcome: 'unreachable', failure, heartbeat: null, liveness: null }), { ...PAUSE, patchedAt: null }),
    `not paused: ${failure}; the API did not confirm the pause (eva-heartbeat status shows the row)`)
  t.equal(waitSummary(decision({ outcome: 'unreachable', failure }), RESUME),
    `not confirmed: ${failure}; the resume was written at 2026-12-02T06:00:05.000Z, whether the scheduler took it is unknown`)
})

t.test('--json: one object', async (t) => {
  t.same(waitReport(decision({}), PAUSE), {
    command: 'pause',
    outcome: 'acknowledged',
    exit_code: 0,
    summary: waitSummary(decision({}), PAUSE),
    paused_reason: 'deploy',
    wait_seconds: 120,
    waited_seconds: 2.345,
    patched_at: '2026-12-02T06:00:05.000Z',
    scheduler_wrote_at: '2026-12-02T06:00:08.000Z',
    operator_wrote_at: null,
    silence: null,
    failure: null,
    heartbeat: ROW,
    liveness: LIVE
  })
  t.match(waitReport(decision({ outcome: 'no_word', silence: 'stale' }), PAUSE), { exit_code: 2, silence: 'stale' })
})
