import t from 'tap'
import { checkResult, formatChange, formatStatus, isHeartbeatAnswer, isLiveness, NAGIOS, seconds, unknownResult, type HeartbeatAnswer } from '../../src/cli/format.js'
import type { Liveness, LivenessState, HealthStatus } from '../../src/domain/liveness.js'

const CHECKED = '2026-02-15T12:00:00.000Z'

function liveness (state: LivenessState, status: HealthStatus, over: Partial<Liveness> = {}): Liveness {
  return {
    status,
    state,
    checked_at: CHECKED,
    last_poll_at: '2026-02-15T11:59:55.800Z',
    next_poll_at: '2026-02-15T12:00:55.800Z',
    seconds_since_last_poll: 4.2,
    seconds_overdue: 0,
    grace_seconds: 180,
    ...(status === 'pass' ? {} : { output: `The scheduler is ${state}.` }),
    ...over
  }
}

t.test('every verdict maps to the Nagios code its status means; unknown is UNKNOWN', async (t) => {
  const expected: Array<[LivenessState, HealthStatus, keyof typeof NAGIOS]> = [
    ['alive', 'pass', 'OK'],
    ['starting', 'pass', 'OK'],
    ['late', 'warn', 'WARNING'],
    ['paused', 'warn', 'WARNING'],
    ['stopping', 'warn', 'WARNING'],
    ['circuit_open', 'warn', 'WARNING'],
    ['degraded', 'warn', 'WARNING'],
    ['stale', 'fail', 'CRITICAL'],
    ['stopped', 'fail', 'CRITICAL'],
    ['missing', 'fail', 'CRITICAL'],
    ['unknown', 'fail', 'UNKNOWN']
  ]
  for (const [state, status, label] of expected) {
    const result = checkResult(liveness(state, status))
    t.equal(result.label, label, `${state}: ${label}`)
    t.equal(result.code, NAGIOS[label], `${state}: exit ${NAGIOS[label]}`)
    t.match(result.line, new RegExp(`^HEARTBEAT ${label} - ${state}, `))
    t.notMatch(result.line, /\n/, 'one line')
  }
  t.same(NAGIOS, { OK: 0, WARNING: 1, CRITICAL: 2, UNKNOWN: 3 })
})

t.test('the line: the sentence, the age of the last poll, and performance data', async (t) => {
  t.equal(checkResult(liveness('alive', 'pass')).line,
    'HEARTBEAT OK - alive, last poll 4.2 s ago | seconds_since_last_poll=4.2s seconds_overdue=0s grace_seconds=180s')
  t.equal(checkResult(liveness('late', 'warn', { seconds_overdue: 12.5, seconds_since_last_poll: 72.5, output: 'The poll is late.' })).line,
    'HEARTBEAT WARNING - late, The poll is late; last poll 73 s ago | seconds_since_last_poll=72.5s seconds_overdue=12.5s grace_seconds=180s')
  t.equal(checkResult(liveness('missing', 'fail', { last_poll_at: null, next_poll_at: null, seconds_since_last_poll: null, seconds_overdue: null, grace_seconds: null, output: 'No row.' })).line,
    'HEARTBEAT CRITICAL - missing, No row; no poll recorded | seconds_since_last_poll=U seconds_overdue=U grace_seconds=U')
  t.match(checkResult(liveness('alive', 'pass', { seconds_since_last_poll: -3 })).line, /last poll 3 s in the future \(clock skew\)/)
})

t.test('UNKNOWN lines stay one line and never break the performance data separator', async (t) => {
  t.same(unknownResult('cannot reach http://x: ECONNREFUSED'), { code: 3, label: 'UNKNOWN', line: 'HEARTBEAT UNKNOWN - cannot reach http://x: ECONNREFUSED' })
  t.equal(unknownResult('a\nb | c\r\n').line, 'HEARTBEAT UNKNOWN - a b   c ')
})

t.test('seconds as people read them', async (t) => {
  t.equal(seconds(0), '0 s')
  t.equal(seconds(4.24), '4.2 s')
  t.equal(seconds(9.96), '10 s')
  t.equal(seconds(72.5), '73 s')
  t.equal(seconds(119), '119 s')
  t.equal(seconds(900), '15 min')
  t.equal(seconds(7200), '2 h 0 min')
  t.equal(seconds(9_000_000), '104 d', 'a crashed scheduler left for months')
})

const answer: HeartbeatAnswer = {
  heartbeat: {
    id: 1,
    instance_id: 'scheduler-0a1b2c3d',
    started_at: '2026-02-14T12:00:00.000Z',
    last_poll_at: '2026-02-15T11:59:55.800Z',
    next_poll_at: null,
    poll_count: 42,
    dispatch_count: 7,
    error_count: 1,
    circuit_breaker_state: null,
    paused_reason: 'deploy "v2"',
    status: 'stopping',
    metadata: {},
    updated_at: '2026-02-15T11:59:55.800Z'
  },
  liveness: liveness('paused', 'warn', { output: 'The scheduler is paused by an operator.' })
}

t.test('status for people', async (t) => {
  const text = formatStatus(answer, '"abc"')
  t.match(text, /^scheduler paused \(warn\): The scheduler is paused by an operator\.\n\n/)
  t.match(text, /\n {2}paused_reason {10}"deploy \\"v2\\""\n/, 'the reason quoted, so white space and quotes show')
  t.match(text, /\n {2}circuit_breaker_state {2}—\n/, 'null is a dash')
  t.match(text, /\n {2}next_poll_at {11}—\n/)
  t.match(text, /\n {2}last_poll_at {11}2026-02-15T11:59:55\.800Z \(4\.2 s ago\)\n/, 'ages on the database clock')
  t.match(text, /\n {2}polls \/ dispatches \/ errors {2}42 \/ 7 \/ 1\n/)
  t.match(text, /\n {2}etag {19}"abc"\n$/)
  t.notMatch(formatStatus(answer, null), /etag/)
  t.match(formatStatus({ ...answer, liveness: liveness('alive', 'pass') }, null), /^scheduler alive \(pass\)\n/)
})

t.test('after a change', async (t) => {
  t.equal(formatChange('paused', answer), 'paused: status stopping, paused_reason "deploy \\"v2\\"", circuit_breaker_state —; verdict paused (warn)\n')
})

t.test('answers are recognised by shape before they are used', async (t) => {
  t.ok(isLiveness(liveness('alive', 'pass')))
  for (const bad of [null, 'pass', {}, { status: 'ok', state: 'alive' }, { status: 'pass' }, { status: 'pass', state: 1 }]) {
    t.notOk(isLiveness(bad), JSON.stringify(bad))
  }
  t.ok(isHeartbeatAnswer(answer))
  t.notOk(isHeartbeatAnswer({ liveness: answer.liveness }))
  t.notOk(isHeartbeatAnswer({ heartbeat: null, liveness: answer.liveness }))
  t.notOk(isHeartbeatAnswer({ heartbeat: {}, liveness: {} }))
  t.notOk(isHeartbeatAnswer(undefined))
})
