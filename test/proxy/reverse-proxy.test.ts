// Issue 10, item 2: behind a real reverse proxy (nginx, HAProxy), the failed-authentication limit and the audit line's
// ip are the client's, taken from X-Forwarded-For only through the proxies TRUST_PROXY names. Several clients sit
// behind each proxy, each connecting from its own loopback address; the proxy is their TCP peer's only address.
import t from 'tap'
import { startTestDatabase } from '../helpers/database.js'
import { TEST_SECRET, token, writeRow } from '../helpers/app.js'
import { startAppWith } from '../helpers/jwks.js'
import { requestFrom, startHaproxy, startNginx, type Answer } from '../helpers/proxy.js'
import { findSbin, needs } from '../helpers/tools.js'

type Tap = Parameters<Parameters<typeof t.test>[0]>[0]

const nginx = findSbin('nginx')
const haproxy = findSbin('haproxy')

const db = await startTestDatabase()
t.teardown(db.close)
await writeRow(db.admin, { lastPollAgo: 5, nextPollIn: 3600 })

const LIMIT = 3
const A = '127.0.0.2'
const B = '127.0.0.3'
const C = '127.0.0.4'
const D = '127.0.0.5'

const fresh = async (role = 'authenticated', sub = 'client'): Promise<string> =>
  `Bearer ${await token({ role, sub, jti: `${sub}-${Math.random()}` })}`
const BAD = `Bearer ${await token({ role: 'service_role', sub: 'guesser' }, 'a-wrong-secret-of-at-least-32-characters')}`

function assertCode (t: Tap, answer: Answer, status: number, code: string | undefined, what: string): void {
  t.equal(answer.status, status, `${what}: ${status} (body: ${answer.body.slice(0, 200)})`)
  if (code !== undefined) t.equal(answer.json().code, code, `${what}: ${code}`)
}

async function scenario (t: Tap, proxyKind: string, start: (upstream: string) => Promise<string>, trustProxy: string): Promise<void> {
  const logs: string[] = []
  const app = await startAppWith(t, db, {
    JWT_SECRET: TEST_SECRET, AUTH_FAILURE_LIMIT_PER_MINUTE: String(LIMIT), TRUST_PROXY: trustProxy, LOG_LEVEL: 'info'
  }, {}, { logStream: { write: (line) => { logs.push(line) } } })
  const direct = await app.listen({ host: '127.0.0.1', port: 0 })
  const proxied = await start(direct)
  const get = async (from: string, authorization: string, extra: Record<string, string> = {}, base = proxied): Promise<Answer> =>
    await requestFrom(from, `${base}/heartbeat`, { headers: { authorization, ...extra } })
  const patch = async (from: string, authorization: string, extra: Record<string, string> = {}, base = proxied): Promise<Answer> =>
    await requestFrom(from, `${base}/heartbeat`, {
      method: 'PATCH',
      headers: { authorization, 'content-type': 'application/json', ...extra },
      body: JSON.stringify({ paused_reason: `via ${proxyKind}` })
    })
  const auditIps = (): unknown[] => logs.map((line) => JSON.parse(line) as { msg?: string, audit?: { ip: string } })
    .filter((line) => line.msg === 'heartbeat changed').map((line) => line.audit?.ip)

  const cachedA = await fresh('authenticated', 'dashboard-a')
  assertCode(t, await get(A, cachedA), 200, undefined, `${proxyKind}: client A's token, verified once (now in the token cache)`)

  for (let i = 1; i <= LIMIT; i++) assertCode(t, await get(A, BAD), 401, 'invalid_token', `client A's bad token #${i}`)
  assertCode(t, await get(A, BAD), 429, 'too_many_requests', 'client A over the limit')
  assertCode(t, await get(A, await fresh('authenticated', 'dashboard-a2')), 429, 'too_many_requests',
    'client A, a good token never verified: the limit stops tokens that need a signature check')
  assertCode(t, await get(A, cachedA), 200, undefined, 'client A, the token already verified: never refused because of failures')

  assertCode(t, await get(B, await fresh('authenticated', 'prometheus-b')), 200, undefined, 'client B behind the same proxy: served')
  assertCode(t, await get(B, BAD), 401, 'invalid_token', 'client B\'s own first failure: 401, not 429')

  // Client C claims to be B: the proxy appends C's own address, and only the proxy is trusted.
  for (let i = 1; i <= LIMIT; i++) assertCode(t, await get(C, BAD, { 'x-forwarded-for': B }), 401, 'invalid_token', `client C spoofing B, bad token #${i}`)
  assertCode(t, await get(C, BAD, { 'x-forwarded-for': B }), 429, 'too_many_requests', 'client C over the limit, counted as C')
  assertCode(t, await get(B, await fresh('authenticated', 'prometheus-b2')), 200, undefined, 'client B is not charged with C\'s spoofed failures')

  // Client D bypasses the proxy: its X-Forwarded-For comes from an untrusted peer and is ignored.
  for (let i = 1; i <= LIMIT; i++) {
    assertCode(t, await get(D, BAD, { 'x-forwarded-for': `10.9.8.${i}` }, direct), 401, 'invalid_token', `client D direct, rotating spoofed X-Forwarded-For #${i}`)
  }
  assertCode(t, await get(D, BAD, { 'x-forwarded-for': '10.9.8.99' }, direct), 429, 'too_many_requests', 'client D still limited: a new spoofed address does not reset it')
  assertCode(t, await get(B, await fresh('authenticated', 'prometheus-b3')), 200, undefined, 'client B still served')

  const ops = await fresh('service_role', 'ops-script')
  assertCode(t, await patch(B, ops), 200, undefined, 'client B pauses through the proxy')
  assertCode(t, await patch(D, ops, { 'x-forwarded-for': B }, direct), 200, undefined, 'client D changes the row directly, claiming to be B')
  t.same(auditIps(), [B, D], 'the audit line\'s ip: the forwarded client through the trusted proxy, the TCP peer otherwise')
}

t.test('nginx, TRUST_PROXY naming its address', needs(nginx, 'nginx', 'nginx'), async (t) => {
  await scenario(t, 'nginx', async (upstream) => await startNginx(t, nginx as string, upstream), '127.0.0.1')
})

t.test('HAProxy, TRUST_PROXY naming its address as a CIDR', needs(haproxy, 'haproxy', 'haproxy'), async (t) => {
  await scenario(t, 'haproxy', async (upstream) => await startHaproxy(t, haproxy as string, new URL(upstream)), '127.0.0.1/32')
})

t.test('HAProxy, TRUST_PROXY as a hop count: the proxy\'s client is used, and so is any direct peer\'s claim', needs(haproxy, 'haproxy', 'haproxy'), async (t) => {
  const logs: string[] = []
  const app = await startAppWith(t, db, { JWT_SECRET: TEST_SECRET, TRUST_PROXY: '1', LOG_LEVEL: 'info' }, {},
    { logStream: { write: (line) => { logs.push(line) } } })
  const direct = await app.listen({ host: '127.0.0.1', port: 0 })
  const proxied = await startHaproxy(t, haproxy as string, new URL(direct))
  const ops = await fresh('service_role', 'ops-script')
  const patch = async (from: string, base: string, extra: Record<string, string>): Promise<number> => (await requestFrom(from, `${base}/heartbeat`, {
    method: 'PATCH', headers: { authorization: ops, 'content-type': 'application/json', ...extra }, body: '{"paused_reason":"hops"}'
  })).status
  t.equal(await patch(C, proxied, { 'x-forwarded-for': B }), 200)
  t.equal(await patch(D, direct, { 'x-forwarded-for': B }), 200)
  const ips = logs.map((line) => JSON.parse(line) as { msg?: string, audit?: { ip: string } })
    .filter((line) => line.msg === 'heartbeat changed').map((line) => line.audit?.ip)
  // One hop is trusted whoever makes it: right for an app only the proxy can reach (docs/security.md says so).
  t.same(ips, [C, B], 'through HAProxy: the client C (its spoofed B ignored); directly: D\'s claim is believed')
})

t.test('without TRUST_PROXY, every client behind a proxy is the proxy: the lockout this option exists to prevent', needs(nginx, 'nginx', 'nginx'), async (t) => {
  const app = await startAppWith(t, db, { JWT_SECRET: TEST_SECRET, AUTH_FAILURE_LIMIT_PER_MINUTE: String(LIMIT) })
  const proxied = await startNginx(t, nginx as string, await app.listen({ host: '127.0.0.1', port: 0 }))
  const cached = await fresh('service_role', 'ops')
  t.equal((await requestFrom(B, `${proxied}/heartbeat`, { headers: { authorization: cached } })).status, 200)
  for (let i = 0; i < LIMIT; i++) await requestFrom(A, `${proxied}/heartbeat`, { headers: { authorization: BAD } })
  const other = await requestFrom(B, `${proxied}/heartbeat`, { headers: { authorization: await fresh() } })
  t.equal(other.status, 429, 'client B\'s new token is refused: it shares the proxy\'s address with A')
  const known = await requestFrom(B, `${proxied}/heartbeat`, { headers: { authorization: cached } })
  t.equal(known.status, 200, 'but a token verified before is still served, even then')
})
