import t from 'tap'
import type { HeartbeatRow } from '../../src/domain/heartbeat.js'
import type { HealthStatus, LivenessState } from '../../src/domain/liveness.js'
import { entityTag, heartbeatJson, ifMatch, noneMatch } from '../../src/domain/representation.js'

function row (overrides: Partial<HeartbeatRow> = {}): HeartbeatRow {
  return {
    id: 1,
    instance_id: 'scheduler-0a1b2c3d',
    started_at: new Date('2026-02-14T12:00:00.000Z'),
    last_poll_at: new Date('2026-02-15T11:59:50.123Z'),
    next_poll_at: new Date('2026-02-15T12:00:50.123Z'),
    poll_count: 42,
    dispatch_count: 7,
    error_count: 1,
    circuit_breaker_state: 'CLOSED',
    paused_reason: null,
    status: 'running',
    metadata: { observe_only: false, version: '1.2.3' },
    updated_at: new Date('2026-02-15T11:59:50.456Z'),
    ...overrides
  }
}

const ALIVE = { state: 'alive' as LivenessState, status: 'pass' as HealthStatus }

t.test('heartbeatJson', async (t) => {
  t.test('all 13 columns, timestamps as ISO 8601 UTC', async (t) => {
    const json = heartbeatJson(row())
    t.same(json, {
      id: 1,
      instance_id: 'scheduler-0a1b2c3d',
      started_at: '2026-02-14T12:00:00.000Z',
      last_poll_at: '2026-02-15T11:59:50.123Z',
      next_poll_at: '2026-02-15T12:00:50.123Z',
      poll_count: 42,
      dispatch_count: 7,
      error_count: 1,
      circuit_breaker_state: 'CLOSED',
      paused_reason: null,
      status: 'running',
      metadata: { observe_only: false, version: '1.2.3' },
      updated_at: '2026-02-15T11:59:50.456Z'
    })
    t.equal(Object.keys(json).length, 13)
    t.same(Object.keys(json), ['id', 'instance_id', 'started_at', 'last_poll_at', 'next_poll_at', 'poll_count', 'dispatch_count',
      'error_count', 'circuit_breaker_state', 'paused_reason', 'status', 'metadata', 'updated_at'], 'in the table\'s column order')
  })

  t.test('a date from another zone is shown in UTC', async (t) => {
    const json = heartbeatJson(row({ updated_at: new Date('2026-02-15T14:00:00+02:00') }))
    t.equal(json.updated_at, '2026-02-15T12:00:00.000Z')
  })

  t.test('null columns stay null', async (t) => {
    const json = heartbeatJson(row({ last_poll_at: null, next_poll_at: null, circuit_breaker_state: null, paused_reason: null, metadata: null }))
    t.equal(json.last_poll_at, null)
    t.equal(json.next_poll_at, null)
    t.equal(json.circuit_breaker_state, null)
    t.equal(json.paused_reason, null)
    t.equal(json.metadata, null)
    t.equal(JSON.parse(JSON.stringify(json)).last_poll_at, null, 'null, not omitted, in the JSON text')
  })
})

t.test('entityTag', async (t) => {
  const tag = entityTag(heartbeatJson(row()), ALIVE)

  t.test('a strong, quoted validator', async (t) => {
    t.match(tag, /^"[A-Za-z0-9_-]+"$/)
    t.notOk(tag.startsWith('W/'))
  })

  t.test('stable for the same row and verdict', async (t) => {
    t.equal(entityTag(heartbeatJson(row()), ALIVE), tag)
    t.equal(entityTag(heartbeatJson(row()), { state: 'alive', status: 'pass' }), tag, 'a fresh but equal verdict')
  })

  t.test('differs when any column changes', async (t) => {
    const changes: Array<Partial<HeartbeatRow>> = [
      { poll_count: 43 },
      { instance_id: 'scheduler-ffff' },
      { last_poll_at: new Date('2026-02-15T11:59:55.000Z') },
      { next_poll_at: null },
      { updated_at: new Date('2026-02-15T11:59:50.457Z') },
      { paused_reason: 'deploy' },
      { status: 'stopping' },
      { circuit_breaker_state: 'OPEN' },
      { metadata: { observe_only: true, version: '1.2.3' } }
    ]
    const tags = new Set([tag])
    for (const change of changes) {
      const changed = entityTag(heartbeatJson(row(change)), ALIVE)
      t.not(changed, tag, JSON.stringify(change))
      tags.add(changed)
    }
    t.equal(tags.size, changes.length + 1, 'every change gives its own tag')
  })

  t.test('differs when the verdict\'s state or status changes', async (t) => {
    const json = heartbeatJson(row())
    t.not(entityTag(json, { state: 'late', status: 'warn' }), tag)
    t.not(entityTag(json, { state: 'late', status: 'pass' }), tag, 'state alone')
    t.not(entityTag(json, { state: 'alive', status: 'warn' }), tag, 'status alone')
    t.not(entityTag(json, { state: 'stale', status: 'fail' }), entityTag(json, { state: 'stale', status: 'warn' }))
  })
})

t.test('noneMatch (If-None-Match, weak comparison)', async (t) => {
  const etag = '"abc123"'
  t.notOk(noneMatch(undefined, etag), 'absent: no match')
  t.notOk(noneMatch('', etag), 'empty: no match')
  t.ok(noneMatch('"abc123"', etag), 'exact')
  t.ok(noneMatch('W/"abc123"', etag), 'a weak tag matches weakly')
  t.ok(noneMatch('"other", "abc123"', etag), 'in a list')
  t.ok(noneMatch('"other",W/"abc123"', etag), 'weak in a list, without blanks')
  t.ok(noneMatch('*', etag), '*')
  t.notOk(noneMatch('"other"', etag), 'another tag')
  t.notOk(noneMatch('"other", W/"xyz"', etag), 'a list without it')
  t.notOk(noneMatch('abc123', etag), 'unquoted is not the same tag')
  t.notOk(noneMatch('"abc12"', etag), 'a prefix is not the same tag')
})

t.test('ifMatch (If-Match, strong comparison)', async (t) => {
  const etag = '"abc123"'
  t.ok(ifMatch(undefined, etag), 'absent: no precondition')
  t.ok(ifMatch('"abc123"', etag), 'strong exact')
  t.notOk(ifMatch('W/"abc123"', etag), 'a weak tag never matches')
  t.ok(ifMatch('*', etag), '*')
  t.ok(ifMatch('"other", "abc123"', etag), 'in a list')
  t.notOk(ifMatch('"other", W/"abc123"', etag), 'only weakly in a list')
  t.notOk(ifMatch('"other"', etag), 'a stale tag')
  t.notOk(ifMatch('abc123', etag), 'unquoted is not the same tag')
})
