import t from 'tap'
import type { HeartbeatRow } from '../../src/domain/heartbeat.js'
import {
  breakerBody,
  describeChanges,
  FIELD_OWNERS,
  normalisePatch,
  pauseBody,
  PAUSED_REASON_MAX_CHARS,
  RESUME_BODY,
  whyNotWritable,
  WRITABLE_FIELDS,
  type HeartbeatPatch
} from '../../src/domain/patch.js'

const accepted = (patch: HeartbeatPatch): unknown => {
  const result = normalisePatch(patch)
  if (!result.ok) throw new Error(`refused: ${result.detail}`)
  return result.changes
}

t.test('writable fields pass through unchanged', async (t) => {
  t.same(accepted({ status: 'stopping' }), { status: 'stopping' })
  t.same(accepted({ status: 'running', paused_reason: null }), { status: 'running', paused_reason: null })
  t.same(accepted({ circuit_breaker_state: 'HALF_OPEN' }), { circuit_breaker_state: 'HALF_OPEN' })
  t.same(accepted({ status: 'stopped', paused_reason: 'x', circuit_breaker_state: 'OPEN' }), { status: 'stopped', paused_reason: 'x', circuit_breaker_state: 'OPEN' })
})

t.test('anything but the writable fields is never part of the changes', async (t) => {
  const sneaky = { status: 'stopped', instance_id: 'supervisor-1', metadata: {}, updated_at: 'x' } as unknown as HeartbeatPatch
  t.same(accepted(sneaky), { status: 'stopped' })
  t.same([...WRITABLE_FIELDS], ['status', 'paused_reason', 'circuit_breaker_state'])
})

t.test('nothing to change is refused', async (t) => {
  for (const patch of [{}, { status: undefined }, { instance_id: 'x' } as unknown as HeartbeatPatch]) {
    const result = normalisePatch(patch)
    t.equal(result.ok, false)
    if (!result.ok) t.match(result.detail, /at least one of status, paused_reason, circuit_breaker_state/)
  }
})

t.test('paused_reason: trimmed, 1 to 500 characters after trimming', async (t) => {
  t.same(accepted({ paused_reason: '  deploy  ' }), { paused_reason: 'deploy' })
  t.same(accepted({ paused_reason: '\t\n deploy 4.2\r\n' }), { paused_reason: 'deploy 4.2' }, 'tabs and line breaks')
  t.same(accepted({ paused_reason: '\u00a0\u3000\ufeffdeploy\u2003' }), { paused_reason: 'deploy' }, 'Unicode white space and BOM')
  t.same(accepted({ paused_reason: 'a  b' }), { paused_reason: 'a  b' }, 'inner white space kept')
  t.same(accepted({ paused_reason: 'x' }), { paused_reason: 'x' }, 'one character')
  const max = 'r'.repeat(PAUSED_REASON_MAX_CHARS)
  t.same(accepted({ paused_reason: max }), { paused_reason: max }, '500 characters')
  t.same(accepted({ paused_reason: `   ${max}   ` }), { paused_reason: max }, '500 after trimming, longer before')
  const emoji = '🚧'.repeat(PAUSED_REASON_MAX_CHARS)
  t.equal(emoji.length, 1000, 'UTF-16 units: 1000')
  t.same(accepted({ paused_reason: emoji }), { paused_reason: emoji }, '500 emoji are 500 characters')

  // Names are escaped to ASCII: a raw U+2028 in a test name would break the TAP stream.
  const ascii = (text: string): string => JSON.stringify(text.slice(0, 20)).replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
  const refused = (reason: string): string => {
    const result = normalisePatch({ status: 'stopping', paused_reason: reason })
    t.equal(result.ok, false, `refused: ${ascii(reason)}`)
    if (result.ok) return ''
    t.equal(result.field, 'paused_reason')
    return result.detail
  }
  t.match(refused(''), /must not be empty or only white space/)
  t.match(refused('   '), /must not be empty or only white space/)
  t.match(refused('\t\r\n\u00a0\u2028\u3000\ufeff'), /must not be empty or only white space/)
  t.match(refused('r'.repeat(PAUSED_REASON_MAX_CHARS + 1)), /at most 500 characters after trimming \(got 501\)/)
  t.match(refused('🚧'.repeat(PAUSED_REASON_MAX_CHARS + 1)), /got 501/)
})

t.test('paused_reason: text PostgreSQL could not store as sent is refused', async (t) => {
  for (const reason of ['de\u0000ploy', '\u0000', 'de\ud800ploy', 'de\udc00ploy', 'end\ud83d']) {
    const result = normalisePatch({ paused_reason: reason })
    t.equal(result.ok, false, JSON.stringify(reason).replace(/[^\x20-\x7e]/g, '?'))
    if (!result.ok) t.match(result.detail, /U\+0000 or unpaired surrogates/)
  }
  t.same(accepted({ paused_reason: 'ok \ud83d\udea7 (a pair)' }), { paused_reason: 'ok 🚧 (a pair)' }, 'a surrogate pair is fine')
  t.same(accepted({ paused_reason: 'tab\tand\nnewline' }), { paused_reason: 'tab\tand\nnewline' }, 'other control characters are stored as sent')
})

t.test('who owns each field that may not be written', async (t) => {
  for (const field of ['instance_id', 'started_at', 'last_poll_at', 'next_poll_at', 'poll_count', 'dispatch_count', 'error_count', 'metadata']) {
    t.equal(whyNotWritable(field), 'is written by the scheduler', field)
  }
  t.equal(whyNotWritable('updated_at'), 'is set by the API on every accepted change')
  t.equal(whyNotWritable('id'), 'is the fixed key of the single heartbeat row')
  for (const name of ['colour', 'toString', 'constructor', '__proto__', 'hasOwnProperty', '']) {
    t.equal(whyNotWritable(name), 'is not a field of this request', `${JSON.stringify(name)} (not inherited from Object.prototype)`)
  }
  t.same(Object.keys(FIELD_OWNERS).sort(), ['dispatch_count', 'error_count', 'id', 'instance_id', 'last_poll_at', 'metadata', 'next_poll_at', 'poll_count', 'started_at', 'updated_at'],
    'the 13 columns are the 3 writable ones and these 10')
  for (const field of WRITABLE_FIELDS) t.notOk(Object.hasOwn(FIELD_OWNERS, field), `${field} has no owner but the operator`)
  t.ok(Object.isFrozen(FIELD_OWNERS))
})

t.test('describeChanges: before and after of each field the change wrote', async (t) => {
  const row = (over: Partial<HeartbeatRow>): HeartbeatRow => ({
    id: 1,
    instance_id: 'scheduler-0a1b2c3d',
    started_at: new Date(0),
    last_poll_at: null,
    next_poll_at: null,
    poll_count: 0,
    dispatch_count: 0,
    error_count: 0,
    circuit_breaker_state: 'CLOSED',
    paused_reason: null,
    status: 'running',
    metadata: {},
    updated_at: new Date(0),
    ...over
  })
  const before = row({})
  const after = row({ status: 'stopping', paused_reason: 'deploy' })
  t.same(describeChanges(before, after, { status: 'stopping', paused_reason: 'deploy' }), {
    status: { before: 'running', after: 'stopping' },
    paused_reason: { before: null, after: 'deploy' }
  })
  t.same(describeChanges(before, before, { circuit_breaker_state: 'CLOSED' }), { circuit_breaker_state: { before: 'CLOSED', after: 'CLOSED' } },
    'a field written with its old value is still recorded')
  t.same(describeChanges(before, after, { paused_reason: null }), { paused_reason: { before: null, after: 'deploy' } }, 'after is what the row holds')
})

t.test('the bodies the contract names', async (t) => {
  t.same(pauseBody('deploy'), { status: 'stopping', paused_reason: 'deploy' })
  t.same(RESUME_BODY, { status: 'running', paused_reason: null })
  t.same(breakerBody('OPEN'), { circuit_breaker_state: 'OPEN' })
  t.ok(normalisePatch(pauseBody('deploy')).ok)
  t.ok(normalisePatch(RESUME_BODY).ok)
})
