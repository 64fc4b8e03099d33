import t from 'tap'
import type { HeartbeatRow } from '../../src/domain/heartbeat.js'
import { deriveLiveness, type HeartbeatReading } from '../../src/domain/liveness.js'
import { schedulerSample } from '../../src/domain/metrics.js'

const NOW = new Date('2026-02-15T12:00:00.000Z')
const at = (seconds: number): Date => new Date(NOW.getTime() + seconds * 1000)
const GRACE = { graceSeconds: 60, graceFactor: 3 }

function row (overrides: Partial<HeartbeatRow> = {}): HeartbeatRow {
  return {
    id: 1,
    instance_id: 'scheduler-0a1b2c3d',
    started_at: at(-86400),
    last_poll_at: at(-10),
    next_poll_at: at(50),
    poll_count: 42,
    dispatch_count: 7,
    error_count: 1,
    circuit_breaker_state: 'CLOSED',
    paused_reason: null,
    status: 'running',
    metadata: {},
    updated_at: at(-10),
    ...overrides
  }
}

const sample = (reading: HeartbeatReading) => schedulerSample(reading, deriveLiveness(reading, GRACE).liveness)
const withRow = (overrides: Partial<HeartbeatRow> = {}) => sample({ reachable: true, row: row(overrides), now: NOW })

t.test('a healthy row: every value from the row, seconds since the epoch', async (t) => {
  t.same(withRow(), {
    up: 1,
    state: 'alive',
    status: 'running',
    breaker: 'CLOSED',
    paused: 0,
    databaseUp: 1,
    checkedAtSeconds: NOW.getTime() / 1000,
    lastPollSeconds: at(-10).getTime() / 1000,
    nextPollSeconds: at(50).getTime() / 1000,
    updatedSeconds: at(-10).getTime() / 1000,
    createdSeconds: at(-86400).getTime() / 1000,
    polls: 42,
    dispatches: 7,
    errors: 1,
    instanceId: 'scheduler-0a1b2c3d',
    graceSeconds: 180
  })
})

t.test('up follows the verdict\'s status: 0 only for fail', async (t) => {
  t.equal(withRow({ last_poll_at: at(-70), next_poll_at: at(-10) }).up, 1, 'late (warn)')
  t.equal(withRow({ circuit_breaker_state: 'OPEN' }).up, 1, 'circuit_open (warn)')
  t.equal(withRow({ last_poll_at: at(-400), next_poll_at: at(-340) }).up, 0, 'stale')
  t.equal(withRow({ status: 'stopped' }).up, 0, 'stopped')
  t.equal(sample({ reachable: true, row: null, now: NOW }).up, 0, 'missing')
  t.equal(sample({ reachable: false, checkedAt: NOW }).up, 0, 'unknown')
})

t.test('paused is the verdict\'s pause, not any paused_reason', async (t) => {
  t.equal(withRow({ status: 'stopping', paused_reason: 'deploy' }).paused, 1)
  t.equal(withRow({ status: 'stopped', paused_reason: 'deploy' }).paused, 1)
  t.equal(withRow({ status: 'running', paused_reason: 'circuit_breaker_open', circuit_breaker_state: 'OPEN' }).paused, 0,
    'the scheduler\'s own breaker reason is not a pause')
  t.equal(withRow({ status: 'stopping', paused_reason: '   ' }).paused, 0, 'a blank reason is no pause')
})

t.test('breaker and status state sets', async (t) => {
  t.equal(withRow({ circuit_breaker_state: 'HALF_OPEN' }).breaker, 'HALF_OPEN')
  t.equal(withRow({ circuit_breaker_state: 'open' }).breaker, 'other', 'the comparison is exact, as in the verdict')
  t.equal(withRow({ circuit_breaker_state: null }).breaker, null, 'null: no series is 1')
  t.equal(withRow({ status: 'stopping' }).status, 'stopping')
  t.equal(withRow({ status: 'rebooting' }).status, null, 'a value the CHECK should have refused: no series is 1')
})

t.test('unknown values are null (their series are left out), never 0', async (t) => {
  const starting = withRow({ last_poll_at: null, next_poll_at: null })
  t.equal(starting.lastPollSeconds, null)
  t.equal(starting.nextPollSeconds, null)
  t.equal(starting.graceSeconds, 60)
  t.equal(withRow({ error_count: -1 }).errors, null, 'a negative count cannot be a counter')

  for (const reading of [{ reachable: true as const, row: null, now: NOW }, { reachable: false as const, checkedAt: NOW }]) {
    const s = sample(reading)
    t.same([s.status, s.breaker, s.lastPollSeconds, s.nextPollSeconds, s.updatedSeconds, s.createdSeconds, s.polls, s.dispatches, s.errors, s.instanceId, s.graceSeconds],
      Array(11).fill(null), `${s.state}: nothing about a row`)
    t.equal(s.checkedAtSeconds, NOW.getTime() / 1000)
  }
  t.equal(sample({ reachable: false, checkedAt: NOW }).databaseUp, 0)
  t.equal(sample({ reachable: true, row: null, now: NOW }).databaseUp, 1)
})
