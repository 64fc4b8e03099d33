// The attack suite's API-key cases (issue 10, item 4), beside test/security/jwt-attacks.test.ts: the comparison does
// the same work whatever is sent (asserted on the work, never on wall time), wrong prefixes, empty keys, keys with
// whitespace, and a key sent twice. Each case has its exact status and code; docs/security.md sums them up.
import { timingSafeEqual } from 'node:crypto'
import type http from 'node:http'
import net from 'node:net'
import type { LightMyRequestResponse } from 'fastify'
import t from 'tap'
import { ApiKeySet, parseServiceApiKeys, type Compare } from '../../src/auth/api-keys.js'
import { startTestDatabase } from '../helpers/database.js'
import { bearer, rowText, TEST_SECRET, writeRow } from '../helpers/app.js'
import { startAppWith } from '../helpers/jwks.js'

type Tap = Parameters<Parameters<typeof t.test>[0]>[0]

const KEY = 'sb_secret_N7UND0UgjKTVK-Uodkm0Hg_xSvEMPvz'
const OTHER = 'sb_secret_Zq3PbW8cLr5Ye2Tn6Ud1_Kx9Vm4Aa7Hs'
const THIRD = 'sb_secret_Third0123456789abcdefghijk'

const db = await startTestDatabase()
t.teardown(db.close)
await writeRow(db.admin, { lastPollAgo: 5, nextPollIn: 3600 })
const app = await startAppWith(t, db, { JWT_SECRET: TEST_SECRET, SERVICE_API_KEYS: `ops:${KEY},${OTHER}` })
const base = await app.listen({ host: '127.0.0.1', port: 0 })

const get = async (headers: Record<string, string | string[]>): Promise<LightMyRequestResponse> =>
  await app.inject({ url: '/heartbeat', headers })

function expect (t: Tap, res: LightMyRequestResponse | { statusCode: number, body: string, headers: http.IncomingHttpHeaders }, status: number, code: string | undefined, what: string): void {
  t.equal(res.statusCode, status, `${what}: ${status} (${res.body.slice(0, 200)})`)
  for (const key of [KEY, OTHER]) t.notOk(res.body.includes(key.slice(10)), `${what}: no key in the answer`)
  if (code === undefined) return
  t.match(res.headers['content-type'], /^application\/problem\+json/, `${what}: problem+json`)
  t.equal((JSON.parse(res.body) as { code: string }).code, code, `${what}: ${code}`)
}

/** Over real HTTP, so the bytes are what a client sends and Node's parser (not inject) reads them. */
async function raw (headerLines: string[]): Promise<{ statusCode: number, body: string, headers: http.IncomingHttpHeaders }> {
  const { port } = new URL(base)
  return await new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), '127.0.0.1', () => {
      socket.write(['GET /heartbeat HTTP/1.1', 'host: 127.0.0.1', 'connection: close', ...headerLines, '', ''].join('\r\n'))
    })
    let text = ''
    socket.setEncoding('latin1')
    socket.on('data', (chunk: string) => { text += chunk })
    socket.on('error', reject)
    socket.on('end', () => {
      const [head = '', body = ''] = text.split('\r\n\r\n')
      const [status = '', ...lines] = head.split('\r\n')
      const headers: http.IncomingHttpHeaders = {}
      for (const line of lines) {
        const colon = line.indexOf(':')
        headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim()
      }
      resolve({ statusCode: Number(status.split(' ')[1]), body, headers })
    })
  })
}

t.test('timing: every presented key costs one SHA-256 and one constant-time comparison per configured key', async (t) => {
  const configured = parseServiceApiKeys(`a:${KEY},b:${OTHER},c:${THIRD}`)
  if (typeof configured === 'string') throw new Error(configured)
  const calls: Array<[number, number]> = []
  const recording: Compare = (a, b) => {
    calls.push([a.length, b.length])
    // crypto.timingSafeEqual itself, only watched.
    return timingSafeEqual(a, b)
  }
  const keys = new ApiKeySet(configured, recording)
  const presented: Array<[string, string, string | undefined]> = [
    ['the first key', KEY, 'a'],
    ['the last key', THIRD, 'c'],
    ['the middle key', OTHER, 'b'],
    ['a wrong key of the same length', KEY.slice(0, -1) + (KEY.endsWith('z') ? 'y' : 'z'), undefined],
    ['all of a key but its last character', KEY.slice(0, -1), undefined],
    ['a key with one more character', `${KEY}x`, undefined],
    ['the prefix only', 'sb_secret_', undefined],
    ['empty', '', undefined],
    ['10 KiB', 'sb_secret_' + 'A'.repeat(10 * 1024), undefined],
    ['a publishable key', 'sb_publishable_N7UND0UgjKTVK-Uodkm0Hg_xSvEMPvz', undefined]
  ]
  for (const [what, key, expected] of presented) {
    calls.length = 0
    t.equal(keys.match(key)?.id, expected, `${what}: ${expected ?? 'no match'}`)
    t.same(calls, [[32, 32], [32, 32], [32, 32]], `${what}: three comparisons of two 32-byte digests, whatever matched`)
  }
})

t.test('wrong prefix', async (t) => {
  const rest = KEY.slice('sb_secret_'.length)
  expect(t, await get({ apikey: `sb_secret${rest}` }), 401, 'invalid_api_key', 'sb_secret without its last underscore')
  expect(t, await get({ apikey: `sb_Secret_${rest}` }), 401, 'invalid_api_key', 'sb_Secret_ (case differs)')
  expect(t, await get({ apikey: `sb_live_${rest}` }), 401, 'invalid_api_key', 'another sb_ prefix')
  expect(t, await get({ authorization: `Bearer sb_secretx_${rest}` }), 401, 'invalid_api_key', 'as Bearer, a near-miss prefix')
  expect(t, await get({ authorization: `Bearer SB_SECRET_${rest}` }), 401, 'invalid_token', 'SB_SECRET_ as Bearer: not a key, so a JWT, and malformed')
  expect(t, await get({ authorization: `Bearer sk_secret_${rest}` }), 401, 'invalid_token', 'sk_secret_ as Bearer: malformed JWT')
  expect(t, await get({ apikey: `SB_SECRET_${rest}` }), 401, 'missing_token', 'SB_SECRET_ in apikey: not a key, so no credential')
  expect(t, await get({ apikey: `sb_publishable_${rest}` }), 403, 'insufficient_scope', 'the secret\'s random part behind the publishable prefix: anon')
})

t.test('empty keys', async (t) => {
  expect(t, await get({ apikey: '' }), 401, 'missing_token', 'apikey empty: no credential')
  expect(t, await get({ apikey: '   ' }), 401, 'missing_token', 'apikey blank')
  expect(t, await get({ apikey: 'sb_secret_' }), 401, 'invalid_api_key', 'the prefix alone')
  expect(t, await get({ apikey: 'sb_' }), 401, 'invalid_api_key', 'sb_ alone')
  expect(t, await get({ authorization: 'Bearer ' }), 401, 'invalid_token', 'Bearer with nothing after it')
  expect(t, await get({ apikey: '', authorization: `Bearer ${KEY}` }), 200, undefined, 'an empty apikey beside a good Bearer key: the Bearer decides')
  expect(t, await raw(['apikey:']), 401, 'missing_token', 'over HTTP: apikey with no value')
})

t.test('keys with whitespace', async (t) => {
  expect(t, await raw([`apikey:   ${KEY}   `]), 200, undefined, 'over HTTP: spaces around the key are HTTP\'s own (optional whitespace), not the key\'s')
  expect(t, await raw([`apikey:\t${KEY}\t`]), 200, undefined, 'over HTTP: tabs around it likewise')
  expect(t, await get({ apikey: ` ${KEY} ` }), 200, undefined, 'inject: the same rule')
  expect(t, await get({ apikey: `${KEY.slice(0, 20)} ${KEY.slice(20)}` }), 401, 'invalid_api_key', 'a space inside the key')
  expect(t, await get({ apikey: `${KEY.slice(0, 20)}\t${KEY.slice(20)}` }), 401, 'invalid_api_key', 'a tab inside the key')
  expect(t, await raw([`apikey: ${KEY}\u00a0`]), 401, 'invalid_api_key', 'over HTTP: a no-break space after it is part of the value')
  expect(t, await get({ authorization: `Bearer ${KEY.slice(0, 20)} ${KEY.slice(20)}` }), 401, 'invalid_token', 'a space inside the Bearer key: a malformed header')
  expect(t, await get({ authorization: `Bearer   ${KEY}  ` }), 200, undefined, 'spaces around the Bearer key, as for a JWT')
})

t.test('a key sent twice', async (t) => {
  const before = await rowText(db.admin)
  expect(t, await get({ apikey: [KEY, KEY] }), 401, 'invalid_token', 'two apikey headers, the same key')
  expect(t, await get({ apikey: [KEY, OTHER] }), 401, 'invalid_token', 'two apikey headers, two good keys')
  expect(t, await get({ apikey: ['sb_publishable_x', KEY] }), 401, 'invalid_token', 'a publishable and a secret apikey')
  expect(t, await raw([`apikey: ${KEY}`, `apikey: ${KEY}`]), 401, 'invalid_token', 'over HTTP: two apikey headers')
  expect(t, await raw([`apikey: ${KEY}, ${OTHER}`]), 401, 'invalid_api_key', 'over HTTP: one apikey header listing two keys')
  expect(t, await get({ apikey: KEY, authorization: `Bearer ${OTHER}` }), 401, 'invalid_token', 'apikey plus a different Bearer key')
  expect(t, await get({ apikey: KEY, ...await bearer('authenticated') }), 401, 'invalid_token', 'apikey plus a user JWT')
  expect(t, await get({ apikey: 'sb_secret_NotConfigured0123456789', authorization: `Bearer ${KEY}` }), 401, 'invalid_token', 'a wrong apikey beside the right Bearer key')
  expect(t, await get({ apikey: KEY, authorization: `Bearer ${KEY}` }), 200, undefined, 'the same key in apikey and as Bearer (Supabase clients do this)')
  const res = await get({ apikey: KEY, authorization: `Bearer ${OTHER}` })
  t.match(res.json<{ detail: string }>().detail, /carry different credentials; send one/)
  t.equal(await rowText(db.admin), before, 'row unchanged')
})
