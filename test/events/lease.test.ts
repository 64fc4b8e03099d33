// A stream's lease: the credential's expiry, and for a JWKS token a recheck whose refusal says why the stream ends.
import t from 'tap'
import { SERVICE_READER, type Principal } from '../../src/auth/principal.js'
import { forbidden, invalidCredential, keysUnavailable } from '../../src/auth/rejection.js'
import { streamLease } from '../../src/events/lease.js'

const reader: Principal = { ...SERVICE_READER, expiresAt: 1_000_000 }

t.test('without a recheck: the expiry only', async (t) => {
  t.same(streamLease(reader), { expiresAt: 1_000_000, recheck: undefined })
  t.equal(streamLease(SERVICE_READER).expiresAt, undefined, 'an API key never expires')
})

t.test('a recheck that holds ends nothing', async (t) => {
  const { recheck } = streamLease(reader, async () => {})
  t.equal(await recheck?.(), undefined)
})

t.test('an expired token ends the stream as token_expired; any other invalid token as key_removed', async (t) => {
  const expired = streamLease(reader, async () => { throw invalidCredential('token_expired', 'The token has expired.') })
  t.same(await expired.recheck?.(), { reason: 'token_expired', detail: 'The token has expired.' })
  const removed = streamLease(reader, async () => { throw invalidCredential('invalid_token', 'No signing key matches the token (kid).') })
  t.same(await removed.recheck?.(), {
    reason: 'key_removed',
    detail: 'No signing key matches the token (kid). The signing key was removed from the JWKS; reconnect with a fresh token.'
  })
})

t.test('keys that cannot be fetched, or anything unforeseen, end nothing', async (t) => {
  for (const error of [keysUnavailable('JWKS_URL answered HTTP 500'), forbidden('no'), new Error('boom')]) {
    t.equal(await streamLease(reader, async () => { throw error }).recheck?.(), undefined, error.message)
  }
})
