// Three replicas of the built server on one PostgreSQL, behind a real HAProxy running deploy/haproxy/haproxy.cfg:
// a crash and a rolling restart under load, event streams and PATCHes across replicas, and the database's load with
// one replica and with three. The figures are printed as comments; docs/scaling.md has them.
import { existsSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import t from 'tap'
import { freePort } from '../../src/db/local-postgres.js'
import { bearer, TEST_SECRET, writeRow } from '../helpers/app.js'
import { startTestDatabase } from '../helpers/database.js'
import { eventually } from '../helpers/wait.js'
import { buildDist, databaseWork, delay, HaProxy, Load, Replica } from './fleet.js'

const HAPROXY = '/usr/sbin/haproxy'
if (!existsSync(HAPROXY)) {
  t.plan(0, `HAProxy is not installed (apt-get install -y haproxy)`)
  process.exit(0)
}

const figure = (text: string): void => { t.comment(`figure: ${text}`) }
const perSecond = (count: number, ms: number): string => (count / (ms / 1000)).toFixed(0)

buildDist()
const db = await startTestDatabase({ statements: true })
t.teardown(db.close)
// Alive for the whole file unless a test says otherwise: every liveness answer should be 200.
await writeRow(db.admin, { lastPollAgo: 1, nextPollIn: 3600 })
const reader = (await bearer('authenticated')).authorization
const operator = (await bearer('service_role')).authorization

const env = { DATABASE_URL: db.apiUrl, JWT_SECRET: TEST_SECRET }
const replicas = await Promise.all([1, 2, 3].map(async (n) => new Replica(`api${n}`, await freePort(), env)))
t.teardown(async () => { await Promise.all(replicas.map(async (r) => { await r.stop('SIGKILL') })) })
await Promise.all(replicas.map(async (r) => { await r.start() }))
const dir = await mkdtemp(path.join(tmpdir(), 'eva-fleet-'))
t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
const proxy = await HaProxy.start(replicas, dir)
t.teardown(async () => { await proxy.stop() })

const totals = async (): Promise<{ retries: number, redispatches: number }> => {
  const servers = (await proxy.servers()).filter((s) => s.backend === 'replicas')
  return { retries: servers.reduce((n, s) => n + s.retries, 0), redispatches: servers.reduce((n, s) => n + s.redispatches, 0) }
}

const traffic = (): Load => new Load(proxy.base, { monitors: 6, readers: 4, pauseMs: 20, authorization: reader })

t.test('a crash under load: one replica SIGKILLed, no GET or HEAD fails', async (t) => {
  const victim = replicas[1]!
  const before = await totals()
  const load = traffic()
  const started = performance.now()
  await delay(3000)
  const inFlight = (await proxy.server('replicas', victim.name)).current
  const killedAt = performance.now()
  await victim.stop('SIGKILL')
  const detectMs = await proxy.waitStatus(victim.name, 'DOWN')
  await delay(3000)
  await load.stop()
  const elapsed = performance.now() - started
  const after = await totals()
  const afterKill = load.outcomes.filter((o) => o.at >= killedAt).length
  figure(`crash: ${load.outcomes.length} requests (${perSecond(load.outcomes.length, elapsed)}/s), ${afterKill} after the SIGKILL; ` +
    `${load.failures.length} failed (${load.describeFailures()}); ${inFlight} in flight on the victim at the kill; ` +
    `HAProxy retried ${after.retries - before.retries} and redispatched ${after.redispatches - before.redispatches}; marked DOWN after ${detectMs.toFixed(0)} ms`)
  t.equal(load.failures.length, 0, `no request failed: ${load.describeFailures()}`)
  t.ok(afterKill > 100, 'the load went on after the kill')

  await victim.start()
  await proxy.waitStatus(victim.name, 'UP')
})

t.test('a rolling restart under load: each replica drained, SIGTERMed and started again; no request fails', async (t) => {
  const load = traffic()
  const started = performance.now()
  const steps: string[] = []
  for (const replica of replicas) {
    const stepStarted = performance.now()
    await proxy.admin(`disable server replicas/${replica.name}`)
    await eventually(async () => (await proxy.server('replicas', replica.name)).current === 0, 10_000, `${replica.name} drained`)
    const drainedMs = performance.now() - stepStarted
    await replica.stop('SIGTERM')
    await replica.start()
    await proxy.admin(`enable server replicas/${replica.name}`)
    await proxy.waitStatus(replica.name, 'UP')
    steps.push(`${replica.name} ${(performance.now() - stepStarted).toFixed(0)} ms (drained in ${drainedMs.toFixed(0)} ms)`)
  }
  await delay(1000)
  await load.stop()
  const elapsed = performance.now() - started
  figure(`rolling restart: ${load.outcomes.length} requests (${perSecond(load.outcomes.length, elapsed)}/s) over ${(elapsed / 1000).toFixed(1)} s; ` +
    `${load.failures.length} failed (${load.describeFailures()}); steps: ${steps.join(', ')}`)
  t.equal(load.failures.length, 0, `no request failed: ${load.describeFailures()}`)
})

t.test('a SIGTERM with no drain first: what HAProxy alone makes of it', async (t) => {
  const victim = replicas[2]!
  const before = await totals()
  const load = traffic()
  await delay(2000)
  await victim.stop('SIGTERM')
  await proxy.waitStatus(victim.name, 'DOWN')
  await delay(1000)
  await load.stop()
  const after = await totals()
  figure(`undrained SIGTERM: ${load.outcomes.length} requests, ${load.failures.length} failed (${load.describeFailures()}); ` +
    `HAProxy retried ${after.retries - before.retries}, redispatched ${after.redispatches - before.redispatches}`)
  t.pass('measured')
  await victim.start()
  await proxy.waitStatus(victim.name, 'UP')
})

void databaseWork
