// The failed-authentication limit through the app (inject from chosen client addresses): an IPv6 /48 that rotates its
// /64s is limited as a whole, and a flood of failures from more new addresses than it keeps counts for does not make the service forget
// an address it limits.
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { WIDE_FACTOR } from '../../src/auth/failure-table.js'
import { bearer, startTestApp, writeRow } from '../helpers/app.js'
import { startTestDatabase } from '../helpers/database.js'

const db = await startTestDatabase()
t.teardown(db.close)
await writeRow(db.admin, { lastPollAgo: 1, nextPollIn: 3600 })
const LIMIT = 20

/** A failed authentication (a malformed header: counted, and cheap) from `ip`. */
const fail = async (app: FastifyInstance, ip: string): Promise<number> =>
  (await app.inject({ url: '/heartbeat', remoteAddress: ip, headers: { authorization: 'Basic x' } })).statusCode
const newToken = async (app: FastifyInstance, ip: string, sub: string): Promise<number> =>
  (await app.inject({ url: '/heartbeat', remoteAddress: ip, headers: await bearer('authenticated', { sub, jti: `${sub}-${Math.random()}` }) })).statusCode

t.test('an IPv6 /48 rotating its /64s: limited once it has failed WIDE_FACTOR times the limit, and only that /48', async (t) => {
  const { app } = await startTestApp(t, { db, env: { AUTH_FAILURE_LIMIT_PER_MINUTE: String(LIMIT) } })
  const statuses = new Set<number>()
  for (let net = 0; net < LIMIT * WIDE_FACTOR; net++) statuses.add(await fail(app, `2001:db8:aa:${net.toString(16)}::1`))
  t.same([...statuses], [401], `${LIMIT * WIDE_FACTOR} failures, each from a new /64: each a 401`)
  t.equal(await fail(app, '2001:db8:aa:ffff::9'), 429, 'one more, from yet another /64 of the /48: 429')
  t.equal(await newToken(app, '2001:db8:aa:fffe::9', 'in-the-48'), 429, 'a new good token from the /48: 429 (it needs a signature check)')
  t.equal(await newToken(app, '2001:db8:ab::9', 'next-48'), 200, 'the next /48: served')
})

t.test('more new addresses than the counts kept, failing once each, do not evict an address the limit holds', async (t) => {
  const { app } = await startTestApp(t, { db, env: { AUTH_FAILURE_LIMIT_PER_MINUTE: String(LIMIT) } })
  const attacker = '192.0.2.66'
  for (let i = 0; i < LIMIT; i++) await fail(app, attacker)
  t.equal(await newToken(app, attacker, 'attacker-1'), 429, 'the attacker is limited')
  const statuses = new Set<number>()
  // 10,050 new addresses: more than the 10,000 counts kept.
  for (let i = 0; i < 10_050; i++) statuses.add(await fail(app, `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`))
  t.same([...statuses], [401], 'each a 401')
  t.equal(await newToken(app, attacker, 'attacker-2'), 429, 'the attacker is still limited')
  t.equal(await newToken(app, '198.51.100.7', 'bystander'), 200, 'a bystander is served')
})
