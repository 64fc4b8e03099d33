import t from 'tap'
import type { HeartbeatRow } from '../../src/domain/heartbeat.js'
import { formatEvent, formatRetry, heartbeatEvent, KEEP_ALIVE } from '../../src/domain/events.js'
import { deriveLiveness, type HeartbeatReading } from '../../src/domain/liveness.js'
import { entityTag, heartbeatJson } from '../../src/domain/representation.js'

const NOW = new Date('2026-02-15T12:00:00.000Z')
const at = (seconds: number): Date => new Date(NOW.getTime() + seconds * 1000)
const GRACE = { graceSeconds: 60, graceFactor: 3 }
const ROW: HeartbeatRow = {
  id: 1,
  instance_id: 'scheduler-0a1b2c3d',
  started_at: at(-86400),
  last_poll_at: at(-10),
  next_poll_at: at(50),
  poll_count: 42,
  dispatch_count: 7,
  error_count: 0,
  circuit_breaker_state: 'CLOSED',
  paused_reason: null,
  status: 'running',
  metadata: { note: 'line one\nline two' },
  updated_at: at(-10)
}

const eventFor = (reading: HeartbeatReading) => heartbeatEvent(reading, deriveLiveness(reading, GRACE).liveness)

t.test('with a row: the ETag\'s opaque part as id, GET /heartbeat\'s body as data', async (t) => {
  const reading: HeartbeatReading = { reachable: true, row: ROW, now: NOW }
  const { liveness } = deriveLiveness(reading, GRACE)
  const event = eventFor(reading)
  t.equal(`"${event.id}"`, entityTag(heartbeatJson(ROW), liveness))
  t.same(event.data, { heartbeat: heartbeatJson(ROW), liveness })
})

t.test('the id names the row and the verdict, not the moment', async (t) => {
  const early = eventFor({ reachable: true, row: ROW, now: NOW })
  t.equal(eventFor({ reachable: true, row: ROW, now: at(20) }).id, early.id, 'ages tick on: same id')
  t.not(eventFor({ reachable: true, row: ROW, now: at(51) }).id, early.id, 'alive → late with no write: a new id')
  t.not(eventFor({ reachable: true, row: { ...ROW, poll_count: 43 }, now: NOW }).id, early.id, 'a new row: a new id')
})

t.test('no row, no database: fixed ids and no heartbeat', async (t) => {
  const missing = eventFor({ reachable: true, row: null, now: NOW })
  t.equal(missing.id, 'missing')
  t.equal(missing.data.heartbeat, null)
  t.equal(missing.data.liveness.state, 'missing')
  const unknown = eventFor({ reachable: false, checkedAt: NOW })
  t.equal(unknown.id, 'unknown')
  t.equal(unknown.data.heartbeat, null)
  t.equal(unknown.data.liveness.state, 'unknown')
  t.equal(eventFor({ reachable: false, checkedAt: at(30) }).id, 'unknown', 'one id for the whole outage')
})

t.test('framing', async (t) => {
  const event = eventFor({ reachable: true, row: ROW, now: NOW })
  const frame = formatEvent(event)
  const lines = frame.split('\n')
  t.same(lines.slice(0, 2), [`id: ${event.id}`, 'event: heartbeat'])
  t.equal(lines[2], `data: ${JSON.stringify(event.data)}`, 'data on one line, even with a line break inside a value')
  t.same(lines.slice(3), ['', ''], 'ends with a blank line')
  t.equal(lines.length, 5)
  t.equal(formatRetry(3000), 'retry: 3000\n\n')
  t.equal(KEEP_ALIVE, ': keep-alive\n\n')
})
