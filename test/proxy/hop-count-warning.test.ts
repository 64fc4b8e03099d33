// TRUST_PROXY=<hop count> believes the last N hops whoever connects (Fastify itself now refuses a count), so the
// start says so, once, at warn level, as does true (every hop); addresses, 0 hops (which trusts no peer) or none say nothing.
import t from 'tap'
import { bearer, startTestApp, writeRow } from '../helpers/app.js'
import { startTestDatabase } from '../helpers/database.js'

const db = await startTestDatabase()
t.teardown(db.close)

type Line = { level: number, msg: string, audit?: { ip: string } }

async function startLines (trustProxy: string | undefined): Promise<Line[]> {
  return (await start(trustProxy)).lines
}

async function start (trustProxy: string | undefined): Promise<{ lines: Line[], app: Awaited<ReturnType<typeof startTestApp>>['app'] }> {
  const lines: Line[] = []
  const { app } = await startTestApp(t, {
    db,
    env: { LOG_LEVEL: 'info', ...(trustProxy === undefined ? {} : { TRUST_PROXY: trustProxy }) },
    logStream: { write: (line: string) => { lines.push(JSON.parse(line) as Line) } }
  })
  return { lines, app }
}

t.test('a hop count, or true (every hop): one warning line naming the risk and what to do', async (t) => {
  for (const value of ['2', 'true']) {
    const warnings = (await startLines(value)).filter((line) => line.msg.includes('TRUST_PROXY'))
    t.equal(warnings.length, 1, 'one line')
    t.equal(warnings[0]?.level, 40, 'at warn level')
    t.equal(warnings[0]?.msg, `TRUST_PROXY=${value} trusts X-Forwarded-For from any peer: list the proxies' addresses unless only the proxy can reach this service`)
  }
})

t.test('addresses, 0 hops, or unset: no such line', async (t) => {
  for (const value of ['10.0.0.0/8, 127.0.0.1', '0', undefined]) {
    const lines = await startLines(value)
    t.notOk(lines.some((line) => line.msg.includes('trusts X-Forwarded-For from any peer')), `TRUST_PROXY=${String(value)}`)
  }
})

t.test('TRUST_PROXY=0 trusts no peer: a direct client\'s X-Forwarded-For is ignored', async (t) => {
  await writeRow(db.admin, { lastPollAgo: 1, nextPollIn: 3600 })
  const { app, lines } = await start('0')
  const res = await app.inject({
    method: 'PATCH',
    url: '/heartbeat',
    remoteAddress: '127.0.0.7',
    headers: { ...(await bearer('service_role')), 'content-type': 'application/json', 'x-forwarded-for': '10.9.9.9' },
    payload: { paused_reason: 'zero hops' }
  })
  t.equal(res.statusCode, 200)
  t.same(lines.filter((line) => line.msg === 'heartbeat changed').map((line) => line.audit?.ip), ['127.0.0.7'], 'the audit ip is the TCP peer')
})
