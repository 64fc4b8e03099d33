import t from 'tap'
import type { HeartbeatRow } from '../../src/domain/heartbeat.js'
import {
  deriveLiveness,
  graceSeconds,
  livenessHttpStatus,
  type GraceSettings,
  type HeartbeatReading,
  type HealthStatus,
  type Liveness,
  type LivenessState,
  type Verdict
} from '../../src/domain/liveness.js'

// ---------------------------------------------------------------------------------------------------------------
// Fixtures: one fixed database clock, a healthy row polled 10 s ago announcing the next poll in 50 s.

const NOW = new Date('2026-02-15T12:00:00.000Z')
const S = 1000
const DAY = 86_400 * S
/** A date `ms` milliseconds from NOW (negative: in the past). */
const at = (ms: number): Date => new Date(NOW.getTime() + ms)

const DEFAULTS: GraceSettings = { graceSeconds: 60, graceFactor: 3 }

function row (overrides: Partial<HeartbeatRow> = {}): HeartbeatRow {
  const lastPoll = at(-10 * S)
  return {
    id: 1,
    instance_id: 'scheduler-0a1b2c3d',
    started_at: at(-DAY),
    last_poll_at: lastPoll,
    next_poll_at: new Date(lastPoll.getTime() + 60 * S),
    poll_count: 42,
    dispatch_count: 7,
    error_count: 0,
    circuit_breaker_state: 'CLOSED',
    paused_reason: null,
    status: 'running',
    metadata: { observe_only: false },
    updated_at: lastPoll,
    ...overrides
  }
}

/** A row that polled at `lastMs` (relative to NOW) announcing an interval of `intervalS` seconds. */
function polled (lastMs: number, intervalS: number, overrides: Partial<HeartbeatRow> = {}): HeartbeatRow {
  return row({ last_poll_at: at(lastMs), next_poll_at: at(lastMs + intervalS * S), updated_at: at(lastMs), ...overrides })
}

function derive (r: HeartbeatRow | null, now: Date = NOW, settings: GraceSettings = DEFAULTS): Verdict {
  return deriveLiveness({ reachable: true, row: r, now }, settings)
}

const stateOf = (r: HeartbeatRow | null, now: Date = NOW, settings: GraceSettings = DEFAULTS): LivenessState =>
  derive(r, now, settings).liveness.state

const EXPECTED_STATUS: Record<LivenessState, HealthStatus> = {
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

const BODY_KEYS = ['status', 'state', 'checked_at', 'last_poll_at', 'next_poll_at', 'seconds_since_last_poll', 'seconds_overdue', 'grace_seconds']

/** The invariants every body must keep, whatever its state: returns what is wrong, [] when nothing is. */
function bodyProblems (liveness: Liveness): string[] {
  const problems: string[] = []
  if (liveness.status !== EXPECTED_STATUS[liveness.state]) problems.push(`status ${liveness.status} does not follow state ${liveness.state}`)
  const keys = Object.keys(liveness).join(',')
  if (liveness.status === 'pass') {
    if (keys !== BODY_KEYS.join(',')) problems.push(`pass body keys: ${keys}`)
  } else {
    if (keys !== [...BODY_KEYS, 'output'].join(',')) problems.push(`non-pass body keys: ${keys}`)
    if (typeof liveness.output !== 'string' || !/^[A-Z][^\n]*\.$/.test(liveness.output)) problems.push(`output is not one sentence: ${String(liveness.output)}`)
    if (JSON.stringify(liveness).toLowerCase().includes('pass')) problems.push(`the word pass appears in a ${liveness.status} body`)
  }
  for (const [key, value] of Object.entries(liveness)) {
    if (typeof value !== 'number') continue
    if (!Number.isFinite(value)) problems.push(`${key} is not finite`)
    if (Object.is(value, -0)) problems.push(`${key} is -0`)
    if (Math.round(value * 1000) / 1000 !== value) problems.push(`${key} has more than 3 decimals`)
  }
  return problems
}

// ---------------------------------------------------------------------------------------------------------------

t.test('grace formula', async (t) => {
  t.equal(graceSeconds(polled(0, 60), DEFAULTS), 180, 'factor 3 × 60 s interval beats the 60 s floor')
  t.equal(graceSeconds(polled(0, 10), DEFAULTS), 60, 'the floor wins over 3 × 10 s')
  t.equal(graceSeconds(polled(0, 20), DEFAULTS), 60, '3 × 20 s equals the floor')
  t.equal(graceSeconds(polled(0, 300), DEFAULTS), 900, 'idle cap interval 300 s → 900 s')
  t.equal(graceSeconds(polled(0, 60), { graceSeconds: 30, graceFactor: 1 }), 60, 'factor 1')
  t.equal(graceSeconds(polled(0, 60), { graceSeconds: 30, graceFactor: 0 }), 30, 'factor 0: floor only')
  t.equal(graceSeconds(polled(0, 60.5), { graceSeconds: 0, graceFactor: 2 }), 121, 'fractional interval')
  t.equal(graceSeconds(row({ next_poll_at: null }), DEFAULTS), 60, 'next_poll_at null: interval term 0')
  t.equal(graceSeconds(row({ last_poll_at: null }), DEFAULTS), 60, 'last_poll_at null: interval term 0')
  t.equal(graceSeconds(row({ last_poll_at: null, next_poll_at: null }), DEFAULTS), 60, 'both null: interval term 0')
  t.equal(graceSeconds(row({ last_poll_at: null, next_poll_at: null }), { graceSeconds: 0, graceFactor: 3 }), 0, 'both null, floor 0: 0')
  t.equal(graceSeconds(polled(0, -600), DEFAULTS), 60, 'negative interval: term 0, not negative')
  t.equal(graceSeconds(polled(0, -600), { graceSeconds: 0, graceFactor: 3 }), 0, 'negative interval with floor 0: 0')
  t.equal(graceSeconds(polled(0, 0), { graceSeconds: 5, graceFactor: 3 }), 5, 'zero interval: the floor')
  t.equal(graceSeconds(polled(0, 60), { ...DEFAULTS, overrideSeconds: 10 }), 10, 'override wins even when smaller than formula and floor')
  t.equal(graceSeconds(polled(0, 60), { ...DEFAULTS, overrideSeconds: 0 }), 0, 'override 0 is honoured (not treated as absent)')
  t.equal(graceSeconds(polled(0, 60), { ...DEFAULTS, overrideSeconds: 86_400 }), 86_400, 'override larger than formula')
  t.equal(graceSeconds(row({ next_poll_at: null }), { ...DEFAULTS, overrideSeconds: 7.5 }), 7.5, 'override with null timestamps')

  t.equal(derive(polled(-10 * S, 60)).liveness.grace_seconds, 180, 'grace_seconds reports the grace used')
  t.equal(derive(polled(-10 * S, 60), NOW, { ...DEFAULTS, overrideSeconds: 15 }).liveness.grace_seconds, 15, 'grace_seconds reports the override')
  t.equal(derive(polled(-10 * S, 60), NOW, { ...DEFAULTS, overrideSeconds: 12.34567 }).liveness.grace_seconds, 12.346, 'grace_seconds rounded to 3 decimals')
  t.equal(derive(polled(-10 * S, 60), NOW, { graceSeconds: 60, graceFactor: 1 / 3 }).liveness.grace_seconds, 60, 'float noise of the factor does not leak')
  t.equal(derive(polled(-10 * S, 61.001), NOW, { graceSeconds: 1, graceFactor: 1 / 3 }).liveness.grace_seconds, 20.334, 'fraction rounded')
  const tiny = derive(polled(-10 * S, 60), NOW, { ...DEFAULTS, overrideSeconds: -0.0004 }).liveness.grace_seconds
  t.ok(Object.is(tiny, 0), 'a value that rounds to -0 is reported as 0')
})

t.test('row 1: database unreachable → unknown/fail', async (t) => {
  const checkedAt = new Date('2026-02-15T12:34:56.789Z')
  const reading: HeartbeatReading = { reachable: false, checkedAt }
  const { liveness, retryAfterSeconds } = deriveLiveness(reading, DEFAULTS)
  t.same(liveness, {
    status: 'fail',
    state: 'unknown',
    checked_at: '2026-02-15T12:34:56.789Z',
    last_poll_at: null,
    next_poll_at: null,
    seconds_since_last_poll: null,
    seconds_overdue: null,
    grace_seconds: null,
    output: "The database could not be reached in time, so the scheduler's state is unknown."
  })
  t.equal(retryAfterSeconds, 5, 'unknown: retry in 5 s')
  t.equal(deriveLiveness(reading, { ...DEFAULTS, overrideSeconds: 1 }).liveness.grace_seconds, null, 'no grace even with an override')
  t.same(bodyProblems(liveness), [], 'unknown')
})

t.test('row 2: no row → missing/fail', async (t) => {
  const { liveness, retryAfterSeconds } = derive(null)
  t.same(liveness, {
    status: 'fail',
    state: 'missing',
    checked_at: NOW.toISOString(),
    last_poll_at: null,
    next_poll_at: null,
    seconds_since_last_poll: null,
    seconds_overdue: null,
    grace_seconds: null,
    output: 'The heartbeat table has no row: the scheduler has never written its heartbeat here, or the row was deleted.'
  })
  t.equal(retryAfterSeconds, 60, 'missing: no announced interval, 60 s')
  t.same(bodyProblems(liveness), [], 'missing')
})

t.test('row 3: operator pause → paused/warn', async (t) => {
  for (const status of ['stopping', 'stopped']) {
    const fresh = derive(row({ status, paused_reason: 'deploy' }))
    t.equal(fresh.liveness.state, 'paused', `${status} with a reason is paused`)
    t.equal(fresh.liveness.status, 'warn')
    t.equal(fresh.liveness.output, 'The scheduler is paused by an operator.')
    t.same(bodyProblems(fresh.liveness), [], `paused/${status}`)

    const old = derive(polled(-30 * DAY, 60, { status, paused_reason: 'maintenance window' }))
    t.equal(old.liveness.state, 'paused', `paused beats stale (${status})`)
    t.notOk(JSON.stringify(old.liveness).includes('maintenance'), 'the reason is not echoed')

    t.equal(stateOf(row({ status, paused_reason: 'x', circuit_breaker_state: 'OPEN' })), 'paused', 'paused beats circuit_open')
    t.equal(stateOf(row({ status, paused_reason: 'x', next_poll_at: null })), 'paused', 'paused beats starting')
    t.equal(stateOf(row({ status, paused_reason: '  x  ' })), 'paused', 'reason with surrounding blanks still counts')
  }
  const sneaky = derive(row({ status: 'stopping', paused_reason: 'Bypass the compass, PASSWORD=hunter2' }))
  t.equal(sneaky.liveness.state, 'paused')
  t.same(bodyProblems(sneaky.liveness), [], 'paused with a reason containing pass')
  t.notOk(JSON.stringify(sneaky.liveness).includes('hunter2'), 'no row data leaks')
  t.equal(sneaky.retryAfterSeconds, 60, 'paused: only a write changes it → announced interval 60 s')
  t.equal(derive(polled(-10 * S, 30, { status: 'stopped', paused_reason: 'x' })).retryAfterSeconds, 30, 'paused: interval 30 s')
})

t.test('blank paused_reason is not a pause', async (t) => {
  for (const reason of ['', '   ', '\t\n ', null]) {
    t.equal(stateOf(row({ status: 'stopped', paused_reason: reason })), 'stopped', `stopped + ${JSON.stringify(reason)} → stopped`)
    t.equal(stateOf(row({ status: 'stopping', paused_reason: reason })), 'stopping', `stopping + ${JSON.stringify(reason)} → stopping`)
    t.equal(stateOf(polled(-DAY, 60, { status: 'stopping', paused_reason: reason })), 'stale', `old stopping + ${JSON.stringify(reason)} → stale`)
  }
})

t.test('a reason with status running is not a pause (the scheduler\'s own circuit_breaker_open)', async (t) => {
  const breaker = { status: 'running', circuit_breaker_state: 'OPEN', paused_reason: 'circuit_breaker_open' }
  t.equal(stateOf(row(breaker)), 'circuit_open', 'fresh: circuit_open, not paused')
  const dead = derive(polled(-2 * DAY, 60, breaker))
  t.equal(dead.liveness.state, 'stale', 'dead in that state: stale')
  t.equal(dead.liveness.status, 'fail')
  t.same(bodyProblems(dead.liveness), [], 'stale breaker')
  t.equal(stateOf(row({ status: 'running', paused_reason: 'deploy' })), 'alive', 'an operator reason with status running is no pause')
})

t.test('row 4: stopped → stopped/fail', async (t) => {
  const fresh = derive(row({ status: 'stopped' }))
  t.equal(fresh.liveness.state, 'stopped')
  t.equal(fresh.liveness.status, 'fail')
  t.equal(fresh.liveness.output, `The scheduler has shut down (last poll at ${at(-10 * S).toISOString()}), and no operator pause explains it.`)
  t.equal(fresh.retryAfterSeconds, 60, 'stopped: announced interval')
  t.same(bodyProblems(fresh.liveness), [], 'stopped')

  t.equal(stateOf(polled(-DAY, 60, { status: 'stopped' })), 'stopped', 'stopped beats stale')
  t.equal(stateOf(row({ status: 'stopped', circuit_breaker_state: 'OPEN' })), 'stopped', 'stopped beats circuit_open')
  const never = derive(row({ status: 'stopped', last_poll_at: null, next_poll_at: null }))
  t.equal(never.liveness.output, 'The scheduler has shut down without ever polling, and no operator pause explains it.')
  t.equal(never.retryAfterSeconds, 60, 'no interval: 60 s')
  t.same(bodyProblems(never.liveness), [], 'stopped never polled')
})

t.test('row 5: stale → stale/fail', async (t) => {
  const last = at(-300 * S)
  const next = at(-240 * S)
  const stale = derive(row({ last_poll_at: last, next_poll_at: next, updated_at: last }))
  t.same(stale.liveness, {
    status: 'fail',
    state: 'stale',
    checked_at: NOW.toISOString(),
    last_poll_at: last.toISOString(),
    next_poll_at: next.toISOString(),
    seconds_since_last_poll: 300,
    seconds_overdue: 240,
    grace_seconds: 180,
    output: `No heartbeat since ${last.toISOString()}: the next poll was due at ${next.toISOString()} and the grace of 180 s has run out.`
  })
  t.equal(stale.retryAfterSeconds, 60, 'stale: only a write changes it → announced interval')
  t.same(bodyProblems(stale.liveness), [], 'stale')

  t.equal(stateOf(polled(-DAY, 60, { status: 'stopping' })), 'stale', 'stale beats stopping')
  t.equal(stateOf(polled(-DAY, 60, { circuit_breaker_state: 'OPEN' })), 'stale', 'stale beats circuit_open')
  t.equal(stateOf(polled(-DAY, 60, { circuit_breaker_state: 'HALF_OPEN' })), 'stale', 'stale beats degraded')

  const neverPolled = derive(row({ last_poll_at: null, next_poll_at: at(-200 * S), updated_at: at(-DAY) }))
  t.equal(neverPolled.liveness.state, 'stale')
  t.equal(neverPolled.liveness.seconds_since_last_poll, null)
  t.equal(neverPolled.liveness.seconds_overdue, 200)
  t.equal(neverPolled.liveness.grace_seconds, 60)
  t.equal(neverPolled.liveness.output, `No poll has ever been recorded: the next poll was due at ${at(-200 * S).toISOString()} and the grace of 60 s has run out.`)
  t.same(bodyProblems(neverPolled.liveness), [], 'stale never polled')

  const noNext = derive(row({ last_poll_at: at(-120 * S), next_poll_at: null, updated_at: at(-90 * S) }))
  t.equal(noNext.liveness.state, 'stale', 'no next_poll_at and updated_at older than grace')
  t.equal(noNext.liveness.seconds_overdue, null)
  t.equal(noNext.liveness.next_poll_at, null)
  t.equal(noNext.liveness.seconds_since_last_poll, 120)
  t.equal(noNext.liveness.output, `The row was last written at ${at(-90 * S).toISOString()}, no next poll was announced, and the grace of 60 s has run out.`)
  t.equal(noNext.retryAfterSeconds, 60, 'no interval announced: 60 s')
  t.same(bodyProblems(noNext.liveness), [], 'stale no next')
})

t.test('the 105-days-dead "running" row is stale', async (t) => {
  const last = at(-105 * DAY)
  const { liveness } = derive(row({ status: 'running', last_poll_at: last, next_poll_at: new Date(last.getTime() + 60 * S), updated_at: last }))
  t.equal(liveness.state, 'stale')
  t.equal(liveness.status, 'fail')
  t.equal(liveness.seconds_since_last_poll, 105 * 86_400)
  t.equal(liveness.seconds_overdue, 105 * 86_400 - 60)
  t.equal(livenessHttpStatus(liveness, false), 503)
  t.same(bodyProblems(liveness), [], '105 days dead')
})

t.test('row 6: stopping → stopping/warn', async (t) => {
  const v = derive(row({ status: 'stopping' }))
  t.equal(v.liveness.state, 'stopping')
  t.equal(v.liveness.status, 'warn')
  t.equal(v.liveness.output, 'The scheduler is shutting down.')
  t.same(bodyProblems(v.liveness), [], 'stopping')
  t.equal(stateOf(row({ status: 'stopping', circuit_breaker_state: 'OPEN' })), 'stopping', 'stopping beats circuit_open')
  t.equal(stateOf(row({ status: 'stopping', circuit_breaker_state: 'HALF_OPEN' })), 'stopping', 'stopping beats degraded')
  t.equal(stateOf(polled(-100 * S, 60, { status: 'stopping' })), 'stopping', 'stopping beats late')
  t.equal(stateOf(row({ status: 'stopping', next_poll_at: null })), 'stopping', 'stopping beats starting')
})

t.test('row 7: breaker OPEN → circuit_open/warn', async (t) => {
  const v = derive(row({ circuit_breaker_state: 'OPEN' }))
  t.equal(v.liveness.state, 'circuit_open')
  t.equal(v.liveness.status, 'warn')
  t.equal(v.liveness.output, "The scheduler's circuit breaker is open: it keeps polling but holds back work until the breaker closes.")
  t.same(bodyProblems(v.liveness), [], 'circuit_open')
  t.equal(stateOf(polled(-100 * S, 60, { circuit_breaker_state: 'OPEN' })), 'circuit_open', 'circuit_open beats late')
  t.equal(stateOf(row({ circuit_breaker_state: 'OPEN', next_poll_at: null })), 'circuit_open', 'circuit_open beats starting')
})

t.test('row 8: any other non-null breaker value → degraded/warn', async (t) => {
  for (const value of ['HALF_OPEN', 'weird', 'open', 'closed', 'Closed', 'OPEN ', ' CLOSED', '', 'BYPASS']) {
    const v = derive(row({ circuit_breaker_state: value }))
    t.equal(v.liveness.state, 'degraded', `${JSON.stringify(value)} is degraded (exact, case-sensitive)`)
    t.same(bodyProblems(v.liveness), [], `degraded ${JSON.stringify(value)}`)
    t.equal(v.liveness.output, "The scheduler's circuit breaker is neither closed nor open (for example half-open), so work may be held back.")
  }
  t.equal(stateOf(row({ circuit_breaker_state: 'HALF_OPEN', next_poll_at: null })), 'degraded', 'degraded beats starting')
  t.equal(stateOf(polled(-100 * S, 60, { circuit_breaker_state: 'HALF_OPEN' })), 'degraded', 'degraded beats late')
  t.equal(stateOf(row({ circuit_breaker_state: null })), 'alive', 'null breaker is not degraded')
  t.equal(stateOf(row({ circuit_breaker_state: 'CLOSED' })), 'alive', 'CLOSED is not degraded')
})

t.test('row 9: next_poll_at null → starting/pass', async (t) => {
  const v = derive(row({ last_poll_at: null, next_poll_at: null, updated_at: at(-5 * S) }))
  t.same(v.liveness, {
    status: 'pass',
    state: 'starting',
    checked_at: NOW.toISOString(),
    last_poll_at: null,
    next_poll_at: null,
    seconds_since_last_poll: null,
    seconds_overdue: null,
    grace_seconds: 60
  })
  t.equal(v.retryAfterSeconds, 55, 'starting: stale at updated_at + grace, 55 s ahead')
  t.same(bodyProblems(v.liveness), [], 'starting')
  t.equal(stateOf(row({ next_poll_at: null, updated_at: at(-5 * S) })), 'starting', 'with a last_poll_at too')
})

t.test('row 10 and 11: late/warn and alive/pass', async (t) => {
  const alive = derive(row())
  t.same(alive.liveness, {
    status: 'pass',
    state: 'alive',
    checked_at: NOW.toISOString(),
    last_poll_at: at(-10 * S).toISOString(),
    next_poll_at: at(50 * S).toISOString(),
    seconds_since_last_poll: 10,
    seconds_overdue: 0,
    grace_seconds: 180
  })
  t.ok(Object.is(alive.liveness.seconds_overdue, 0), 'seconds_overdue is +0 before the due time')
  t.same(bodyProblems(alive.liveness), [], 'alive')

  const late = derive(polled(-72_345, 60))
  t.same(late.liveness, {
    status: 'warn',
    state: 'late',
    checked_at: NOW.toISOString(),
    last_poll_at: at(-72_345).toISOString(),
    next_poll_at: at(-12_345).toISOString(),
    seconds_since_last_poll: 72.345,
    seconds_overdue: 12.345,
    grace_seconds: 180,
    output: `The poll due at ${at(-12_345).toISOString()} is 12.345 s late, still within the grace of 180 s.`
  })
  t.same(bodyProblems(late.liveness), [], 'late')
})

t.test('boundaries around next_poll_at and next_poll_at + grace', async (t) => {
  const r = polled(-60 * S, 60) // next_poll_at = NOW, grace 180 s
  t.equal(stateOf(r, at(-1)), 'alive', '1 ms before next_poll_at: alive')
  t.equal(stateOf(r, NOW), 'alive', 'exactly at next_poll_at: alive, not late')
  t.equal(derive(r, NOW).liveness.seconds_overdue, 0)
  t.equal(stateOf(r, at(1)), 'late', '1 ms after next_poll_at: late')
  t.equal(derive(r, at(1)).liveness.seconds_overdue, 0.001, 'overdue 1 ms')
  t.equal(stateOf(r, at(180 * S - 1)), 'late', '1 ms before next_poll_at + grace: late')
  t.equal(stateOf(r, at(180 * S)), 'late', 'exactly at next_poll_at + grace: late, not stale')
  t.equal(stateOf(r, at(180 * S + 1)), 'stale', '1 ms after next_poll_at + grace: stale')

  t.equal(stateOf(r, at(30 * S), { ...DEFAULTS, overrideSeconds: 30 }), 'late', 'override 30: at the edge still late')
  t.equal(stateOf(r, at(30 * S + 1), { ...DEFAULTS, overrideSeconds: 30 }), 'stale', 'override 30: 1 ms later stale')
  t.equal(stateOf(r, NOW, { ...DEFAULTS, overrideSeconds: 0 }), 'alive', 'grace 0: exactly at due time alive')
  t.equal(stateOf(r, at(1), { ...DEFAULTS, overrideSeconds: 0 }), 'stale', 'grace 0: 1 ms after due time stale, never late')

  const s = row({ last_poll_at: null, next_poll_at: null, updated_at: NOW }) // stale at NOW + 60 s
  t.equal(stateOf(s, NOW), 'starting', 'just written: starting')
  t.equal(stateOf(s, at(60 * S - 1)), 'starting', '1 ms before updated_at + grace: starting')
  t.equal(stateOf(s, at(60 * S)), 'starting', 'exactly at updated_at + grace: starting, not stale')
  t.equal(stateOf(s, at(60 * S + 1)), 'stale', '1 ms after updated_at + grace: stale')
  t.equal(stateOf(s, at(10 * S + 1), { ...DEFAULTS, overrideSeconds: 10 }), 'stale', 'override applies to updated_at too')
  t.equal(stateOf(s, at(10 * S), { ...DEFAULTS, overrideSeconds: 10 }), 'starting', 'override edge: starting')
})

t.test('the idle scheduler (interval 60 s announced, 180 s real) is late, not stale', async (t) => {
  // Polled at T, announced T + 60 s, but idle adaptive polling really comes back at T + 180 s.
  const r = polled(-230 * S, 60) // next_poll_at was 170 s ago
  const v = derive(r)
  t.equal(v.liveness.state, 'late', '170 s after next_poll_at with grace 180 s: late')
  t.equal(v.liveness.seconds_overdue, 170)
  t.equal(v.liveness.grace_seconds, 180)
  t.equal(livenessHttpStatus(v.liveness, false), 200, 'no page for an idle cycle')
  t.equal(v.retryAfterSeconds, 10, 'stale in 10 s if nothing is written')
  t.equal(stateOf(polled(-240 * S, 60)), 'late', 'at the edge: still late')
  t.equal(stateOf(polled(-240 * S - 1, 60)), 'stale', 'a ms beyond: stale')
  t.equal(stateOf(polled(-180 * S, 60)), 'late', 'the real idle poll time (120 s overdue): late')
})

t.test('clock skew: the scheduler\'s clock ahead of the database\'s', async (t) => {
  const ahead = derive(polled(12_300, 60)) // last_poll_at 12.3 s in the database's future
  t.equal(ahead.liveness.state, 'alive', 'still alive')
  t.equal(ahead.liveness.seconds_since_last_poll, -12.3, 'negative age reported, not clamped')
  t.equal(ahead.liveness.seconds_overdue, 0)
  t.notOk('output' in ahead.liveness, 'pass: no output even with skew')
  t.same(bodyProblems(ahead.liveness), [], 'skewed alive')

  const stopping = derive(polled(12_300, 60, { status: 'stopping' }))
  t.equal(stopping.liveness.output, "The scheduler is shutting down (the scheduler's clock is 12.3 s ahead of the database's).")
  t.same(bodyProblems(stopping.liveness), [], 'skewed stopping')

  const breaker = derive(polled(1, 60, { circuit_breaker_state: 'OPEN' }))
  t.equal(breaker.liveness.seconds_since_last_poll, -0.001)
  t.match(breaker.liveness.output, /clock is 0\.001 s ahead of the database's\)\.$/)

  // Skewed in the past-ish direction for next but future for last: an inconsistent row still gets a verdict.
  const stale = derive(row({ last_poll_at: at(5 * S), next_poll_at: at(-DAY), updated_at: at(-DAY) }))
  t.equal(stale.liveness.state, 'stale')
  t.equal(stale.liveness.seconds_since_last_poll, -5)
  t.match(stale.liveness.output, /has run out \(the scheduler's clock is 5 s ahead of the database's\)\.$/)
  t.equal(stale.liveness.grace_seconds, 60, 'negative interval: floor')
  t.equal(stale.retryAfterSeconds, 60, 'negative interval: retry 60')
  t.same(bodyProblems(stale.liveness), [], 'skewed stale')

  t.equal(derive(polled(0, 60)).liveness.seconds_since_last_poll, 0, 'zero age is 0')
  t.ok(Object.is(derive(polled(0, 60)).liveness.seconds_since_last_poll, 0), 'and +0')
  t.notMatch(derive(polled(0, 60, { status: 'stopping' })).liveness.output, /clock/, 'zero age: no skew note')
  t.notMatch(derive(row({ status: 'stopping', last_poll_at: null })).liveness.output, /clock/, 'no last poll: no skew note')
})

t.test('field values: ISO strings, millisecond rounding, nulls', async (t) => {
  const now = new Date('2026-02-15T12:00:00.007Z')
  const r = row({ last_poll_at: new Date('2026-02-15T11:59:47.654Z'), next_poll_at: new Date('2026-02-15T12:00:47.654Z') })
  const { liveness } = derive(r, now)
  t.equal(liveness.checked_at, '2026-02-15T12:00:00.007Z', 'checked_at is the database now, ISO UTC')
  t.equal(liveness.last_poll_at, '2026-02-15T11:59:47.654Z')
  t.equal(liveness.next_poll_at, '2026-02-15T12:00:47.654Z')
  t.equal(liveness.seconds_since_last_poll, 12.353)
  t.equal(liveness.seconds_overdue, 0)
  t.equal(liveness.grace_seconds, 180)

  // A timestamp from another offset still comes out as UTC.
  const offset = derive(row({ last_poll_at: new Date('2026-02-15T13:59:50+02:00') })).liveness
  t.equal(offset.last_poll_at, '2026-02-15T11:59:50.000Z')

  const nulls = derive(row({ last_poll_at: null, next_poll_at: null })).liveness
  t.equal(nulls.last_poll_at, null)
  t.equal(nulls.next_poll_at, null)
  t.equal(nulls.seconds_since_last_poll, null)
  t.equal(nulls.seconds_overdue, null)
  t.equal(nulls.grace_seconds, 60, 'grace is never null once there is a row')

  t.same(JSON.parse(JSON.stringify(liveness)), liveness, 'JSON round-trips (no Dates, no undefined)')
})

t.test('output presence and the "pass" word rule across every state', async (t) => {
  const cases: Array<[string, HeartbeatReading, LivenessState]> = [
    ['unknown', { reachable: false, checkedAt: NOW }, 'unknown'],
    ['missing', { reachable: true, row: null, now: NOW }, 'missing'],
    ['paused', { reachable: true, row: row({ status: 'stopped', paused_reason: 'passing by' }), now: NOW }, 'paused'],
    ['stopped', { reachable: true, row: row({ status: 'stopped' }), now: NOW }, 'stopped'],
    ['stale', { reachable: true, row: polled(-DAY, 60), now: NOW }, 'stale'],
    ['stale, no next', { reachable: true, row: row({ next_poll_at: null, updated_at: at(-DAY) }), now: NOW }, 'stale'],
    ['stopping', { reachable: true, row: row({ status: 'stopping' }), now: NOW }, 'stopping'],
    ['circuit_open', { reachable: true, row: row({ circuit_breaker_state: 'OPEN' }), now: NOW }, 'circuit_open'],
    ['degraded', { reachable: true, row: row({ circuit_breaker_state: 'PASSIVE' }), now: NOW }, 'degraded'],
    ['starting', { reachable: true, row: row({ next_poll_at: null }), now: NOW }, 'starting'],
    ['late', { reachable: true, row: polled(-90 * S, 60), now: NOW }, 'late'],
    ['alive', { reachable: true, row: row(), now: NOW }, 'alive']
  ]
  const seen = new Set<LivenessState>()
  for (const [label, reading, state] of cases) {
    for (const skew of [false, true]) {
      let r = reading
      if (skew && reading.reachable && reading.row !== null && reading.row.last_poll_at !== null) {
        r = { ...reading, row: { ...reading.row, last_poll_at: at(3_141) } }
      }
      const { liveness, retryAfterSeconds } = deriveLiveness(r, DEFAULTS)
      t.equal(liveness.state, state, `${label}${skew ? ' (skewed)' : ''}: state`)
      seen.add(liveness.state)
      t.equal('output' in liveness, liveness.status !== 'pass', `${label}: output present iff not pass`)
      if (liveness.status !== 'pass') {
        t.notOk(JSON.stringify(liveness).toLowerCase().includes('pass'), `${label}: no "pass" in a ${liveness.status} body`)
      }
      t.ok(Number.isInteger(retryAfterSeconds) && retryAfterSeconds >= 1 && retryAfterSeconds <= 300, `${label}: retry in [1, 300]`)
      t.same(bodyProblems(liveness), [], label)
    }
  }
  t.equal(seen.size, 11, 'all 11 states reached')
})

t.test('livenessHttpStatus: every status × strict', async (t) => {
  const body = (status: HealthStatus): Liveness => ({ ...derive(row()).liveness, status })
  t.equal(livenessHttpStatus(body('pass'), false), 200)
  t.equal(livenessHttpStatus(body('pass'), true), 200)
  t.equal(livenessHttpStatus(body('warn'), false), 200)
  t.equal(livenessHttpStatus(body('warn'), true), 503)
  t.equal(livenessHttpStatus(body('fail'), false), 503)
  t.equal(livenessHttpStatus(body('fail'), true), 503)

  const expected: Record<LivenessState, [200 | 503, 200 | 503]> = {
    unknown: [503, 503],
    missing: [503, 503],
    paused: [200, 503],
    stopped: [503, 503],
    stale: [503, 503],
    stopping: [200, 503],
    circuit_open: [200, 503],
    degraded: [200, 503],
    starting: [200, 200],
    late: [200, 503],
    alive: [200, 200]
  }
  const readings: HeartbeatReading[] = [
    { reachable: false, checkedAt: NOW },
    { reachable: true, row: null, now: NOW },
    { reachable: true, row: row({ status: 'stopping', paused_reason: 'p' }), now: NOW },
    { reachable: true, row: row({ status: 'stopped' }), now: NOW },
    { reachable: true, row: polled(-DAY, 60), now: NOW },
    { reachable: true, row: row({ status: 'stopping' }), now: NOW },
    { reachable: true, row: row({ circuit_breaker_state: 'OPEN' }), now: NOW },
    { reachable: true, row: row({ circuit_breaker_state: 'HALF_OPEN' }), now: NOW },
    { reachable: true, row: row({ next_poll_at: null }), now: NOW },
    { reachable: true, row: polled(-90 * S, 60), now: NOW },
    { reachable: true, row: row(), now: NOW }
  ]
  for (const reading of readings) {
    const { liveness } = deriveLiveness(reading, DEFAULTS)
    const [lenient, strict] = expected[liveness.state]
    t.equal(livenessHttpStatus(liveness, false), lenient, `${liveness.state}, not strict`)
    t.equal(livenessHttpStatus(liveness, true), strict, `${liveness.state}, strict`)
  }
})

t.test('retryAfterSeconds', async (t) => {
  // Time-driven: the nearest transition ahead, ceiled to whole seconds.
  t.equal(derive(row()).retryAfterSeconds, 50, 'alive: late in 50 s')
  t.equal(derive(polled(-59_500, 60)).retryAfterSeconds, 1, 'alive, due in 0.5 s: 1')
  t.equal(derive(polled(-60_500, 60)).retryAfterSeconds, 180, 'late by 0.5 s: stale in 179.5 s → 180')
  t.equal(derive(polled(-60 * S, 60)).retryAfterSeconds, 1, 'alive exactly at the due time: 1 (never 0)')
  t.equal(derive(polled(-10_001, 60)).retryAfterSeconds, 50, 'alive, due in 49.999 s: 50')
  t.equal(derive(polled(-9_999, 60)).retryAfterSeconds, 51, 'alive, due in 50.001 s: 51')
  t.equal(derive(polled(0, 3_600)).retryAfterSeconds, 300, 'alive, due in an hour: clamped to 300')
  t.equal(derive(polled(-90 * S, 60)).retryAfterSeconds, 150, 'late: stale in 150 s')
  t.equal(derive(polled(-240 * S, 60)).retryAfterSeconds, 1, 'late at the stale edge: 1')
  t.equal(derive(polled(-90 * S, 60), NOW, { ...DEFAULTS, overrideSeconds: 40 }).retryAfterSeconds, 10, 'late with override 40: stale in 10 s')
  t.equal(derive(polled(-90 * S, 600)).retryAfterSeconds, 300, 'alive with a long interval: clamped to 300')
  t.equal(derive(polled(-700 * S, 600)).retryAfterSeconds, 300, 'late with grace 1800 s: clamped to 300')
  t.equal(derive(row({ next_poll_at: null, updated_at: at(-59_900) })).retryAfterSeconds, 1, 'starting, stale in 0.1 s: 1')
  t.equal(derive(row({ next_poll_at: null, updated_at: NOW })).retryAfterSeconds, 60, 'starting just written: 60')
  t.equal(derive(polled(-10 * S, 60, { status: 'stopping' })).retryAfterSeconds, 230, 'stopping: stale at next + grace, 230 s')
  t.equal(derive(polled(-200 * S, 60, { circuit_breaker_state: 'OPEN' })).retryAfterSeconds, 40, 'circuit_open: stale in 40 s')
  t.equal(derive(polled(-200 * S, 60, { circuit_breaker_state: 'HALF_OPEN' })).retryAfterSeconds, 40, 'degraded: stale in 40 s')
  t.equal(derive(row({ circuit_breaker_state: 'OPEN', next_poll_at: null, updated_at: at(-30 * S) })).retryAfterSeconds, 30, 'circuit_open, no next: updated_at + grace')

  // Write-driven: the announced interval, else 60.
  t.equal(derive(polled(-DAY, 60)).retryAfterSeconds, 60, 'stale: interval 60')
  t.equal(derive(polled(-DAY, 90.5)).retryAfterSeconds, 91, 'stale: interval 90.5 ceiled to 91')
  t.equal(derive(polled(-DAY, 0.2)).retryAfterSeconds, 1, 'stale: interval 0.2 s → 1')
  t.equal(derive(polled(-DAY, 1_000)).retryAfterSeconds, 300, 'stale: interval 1000 s clamped to 300')
  t.equal(derive(polled(-DAY, 0)).retryAfterSeconds, 60, 'stale: zero interval → 60')
  t.equal(derive(polled(-DAY, -30)).retryAfterSeconds, 60, 'stale: negative interval → 60')
  t.equal(derive(row({ status: 'stopped', next_poll_at: null })).retryAfterSeconds, 60, 'stopped, no next → 60')
  t.equal(derive(polled(-10 * S, 20, { status: 'stopped' })).retryAfterSeconds, 20, 'stopped: interval 20')
  t.equal(derive(null).retryAfterSeconds, 60, 'missing → 60')
  t.equal(deriveLiveness({ reachable: false, checkedAt: NOW }, DEFAULTS).retryAfterSeconds, 5, 'unknown → 5')
})

t.test('pure: same input, same output; inputs untouched', async (t) => {
  const r = row({ metadata: { nested: { a: 1 } } })
  const before = JSON.stringify(r)
  const first = derive(r)
  const second = derive(r)
  t.same(first, second)
  t.equal(JSON.stringify(r), before, 'row not mutated')
  t.notOk(JSON.stringify(first).includes('nested'), 'metadata never in the body')
  t.notOk(JSON.stringify(first).includes('scheduler-0a1b2c3d'), 'instance_id never in the body')
})
