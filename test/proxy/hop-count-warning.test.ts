// TRUST_PROXY=<hop count> believes the last N hops whoever connects (Fastify itself now refuses a count), so the
// start says so, once, at warn level; addresses or none say nothing.
import t from 'tap'
import { startTestApp } from '../helpers/app.js'
import { startTestDatabase } from '../helpers/database.js'

const db = await startTestDatabase()
t.teardown(db.close)

async function startLines (trustProxy: string | undefined): Promise<Array<{ level: number, msg: string }>> {
  const lines: Array<{ level: number, msg: string }> = []
  await startTestApp(t, {
    db,
    env: { LOG_LEVEL: 'info', ...(trustProxy === undefined ? {} : { TRUST_PROXY: trustProxy }) },
    logStream: { write: (line: string) => { lines.push(JSON.parse(line) as { level: number, msg: string }) } }
  })
  return lines
}

t.test('a hop count: one warning line naming the risk and what to do', async (t) => {
  const warnings = (await startLines('2')).filter((line) => line.msg.includes('TRUST_PROXY'))
  t.equal(warnings.length, 1, 'one line')
  t.equal(warnings[0]?.level, 40, 'at warn level')
  t.equal(warnings[0]?.msg, "TRUST_PROXY=2 trusts X-Forwarded-For from any peer: list the proxies' addresses unless only the proxy can reach this service")
})

t.test('addresses, true, or unset: no such line', async (t) => {
  for (const value of ['10.0.0.0/8, 127.0.0.1', 'true', undefined]) {
    const lines = await startLines(value)
    t.notOk(lines.some((line) => line.msg.includes('trusts X-Forwarded-For from any peer')), `TRUST_PROXY=${String(value)}`)
  }
})
