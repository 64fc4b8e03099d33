// Three replicas of the built server on one PostgreSQL, behind a real HAProxy running deploy/haproxy/haproxy.cfg:
// a crash and a rolling restart under load, event streams and PATCHes across replicas, and the database's load with
// one replica and with three. The figures are printed as comments; docs/scaling.md has them.
import { spawnSync } from 'node:child_process'
import { chmod, mkdtemp, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import autocannon from 'autocannon'
import { EventSource } from 'eventsource'
import t from 'tap'
import { freePort } from '../../src/embedded/local-postgres.js'
import { bearer, rowText, TEST_SECRET, token, writeRow } from '../helpers/app.js'
import { runCliCaptured } from '../helpers/cli.js'
import { requestFrom } from '../helpers/proxy.js'
import { startTestDatabase } from '../helpers/database.js'
import { holdRowLock } from '../helpers/faults.js'
import type { Tap } from '../helpers/server-process.js'
import { eventually } from '../helpers/wait.js'
import { buildDist, cpuSeconds, databaseWork, delay, HAPROXY, HaProxy, Load, Replica, rssMiB } from '../helpers/fleet.js'
import { needsForFile } from '../helpers/tools.js'

needsForFile(HAPROXY, 'HAProxy', 'haproxy')

const figure = (text: string): void => { t.comment(`figure: ${text}`) }
const perSecond = (count: number, ms: number): string => (count / (ms / 1000)).toFixed(0)

buildDist()
const db = await startTestDatabase({ statements: true })
t.teardown(db.close)
// Alive for the whole file unless a test says otherwise: every liveness answer should be 200.
await writeRow(db.admin, { lastPollAgo: 1, nextPollIn: 3600 })
const reader = (await bearer('authenticated')).authorization
const operator = (await bearer('service_role')).authorization

// As docker-compose.fleet.yml: the replicas believe X-Forwarded-For from HAProxy's address alone (here it connects
// to them from 127.0.0.1, and the test's own clients come from other loopback addresses).
const HAPROXY_PEER = '127.0.0.1'
const env = { DATABASE_URL: db.apiUrl, JWT_SECRET: TEST_SECRET, TRUST_PROXY: HAPROXY_PEER }
const replicas = await Promise.all([1, 2, 3].map(async (n) => new Replica(`api${n}`, await freePort(), env)))
t.teardown(async () => { await Promise.all(replicas.map(async (r) => { await r.stop('SIGKILL') })) })
await Promise.all(replicas.map(async (r) => { await r.start() }))
const dir = await mkdtemp(path.join(tmpdir(), 'eva-fleet-'))
t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
const proxy = await HaProxy.start(replicas, dir)
t.teardown(async () => { await proxy.stop() })

/** Every replica running and UP in HAProxy: a test starts from a whole fleet, whatever the one before it left. */
async function wholeFleet (): Promise<void> {
  await Promise.all(replicas.map(async (replica) => {
    if (!replica.running) await replica.start()
    await proxy.admin(`enable server replicas/${replica.name}`)
    await proxy.waitStatus(replica.name, 'UP')
  }))
}

const totals = async (): Promise<{ retries: number, redispatches: number }> => {
  const servers = (await proxy.servers()).filter((s) => s.backend === 'replicas')
  return { retries: servers.reduce((n, s) => n + s.retries, 0), redispatches: servers.reduce((n, s) => n + s.redispatches, 0) }
}

// 10 clients, each a request every `periodMs` (60 ms: about 170 requests/s offered), 60 % of them liveness.
const traffic = (periodMs = 60): Load => new Load(proxy.base, { monitors: 6, readers: 4, periodMs, authorization: reader })

t.test('a crash under load: one replica SIGKILLed, no GET or HEAD fails', async (t) => {
  await wholeFleet()
  const victim = replicas[1]!
  const before = await totals()
  const load = traffic()
  const started = performance.now()
  await delay(2000)
  const inFlight = (await proxy.server('replicas', victim.name)).current
  const killedAt = performance.now()
  await victim.stop('SIGKILL')
  const detectMs = await proxy.waitStatus(victim.name, 'DOWN')
  await delay(2000)
  await load.stop()
  const elapsed = performance.now() - started
  const after = await totals()
  const afterKill = load.outcomes.filter((o) => o.at >= killedAt).length
  figure(`crash: ${load.outcomes.length} requests (${perSecond(load.outcomes.length, elapsed)}/s), ${afterKill} after the SIGKILL; ` +
    `${load.failures.length} failed (${load.describeFailures()}); ${inFlight} in flight on the victim at the kill; ` +
    `HAProxy retried ${after.retries - before.retries} and redispatched ${after.redispatches - before.redispatches}; marked DOWN after ${detectMs.toFixed(0)} ms`)
  t.equal(load.failures.length, 0, `no request failed: ${load.describeFailures()}`)
  t.ok(afterKill > 20, `the load went on after the kill (${afterKill} requests)`)
})

t.test('a rolling restart under load: each replica drained, SIGTERMed and started again; no request fails', async (t) => {
  await wholeFleet()
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

t.test('a SIGTERM with no drain first: the only failures are the closing replica\'s own 503s, never a connection error', async (t) => {
  await wholeFleet()
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
  // Fastify answers 503 to a request that reaches it once it is closing (on a connection HAProxy already had open);
  // a 503 is not retried (see haproxy.cfg), so these reach the client. Everything else was retried elsewhere.
  t.same(load.failures.filter((f) => f.status !== 503), [], 'no connection error, no 502 or 504')
})

t.test('no replica ready (the policies drifted for all): HAProxy sends the requests to live replicas, which answer', async (t) => {
  await wholeFleet()
  await writeRow(db.admin, { lastPollAgo: 1, nextPollIn: 3600 })
  await db.admin`create policy eva_fleet_test_drift on public.eva_scheduler_heartbeat for select to anon using (false)`
  const drop = async (): Promise<void> => { await db.admin`drop policy if exists eva_fleet_test_drift on public.eva_scheduler_heartbeat` }
  t.teardown(drop)
  await Promise.all(replicas.map(async (r) => await proxy.waitStatus(r.name, 'DOWN')))
  const readyz = await fetch(`${replicas[0]!.base}/readyz`)
  t.equal(readyz.status, 503, 'each replica says it is not ready')
  t.match(await readyz.json(), { checks: { policies: { status: 'fail' } } })
  const liveness = await fetch(`${proxy.base}/heartbeat/liveness`)
  t.equal(liveness.status, 200, 'the verdict still comes from the API, not from HAProxy')
  t.match(await liveness.json(), { status: 'pass', state: 'alive' })
  await drop()
  await Promise.all(replicas.map(async (r) => {
    await proxy.waitStatus(r.name, 'UP').catch(async (error: Error) => {
      const readyz = await fetch(`${r.base}/readyz`).then(async (res) => `${res.status} ${await res.text()}`, (e: Error) => e.message)
      throw new Error(`${error.message}; its /readyz: ${readyz}; its output: ${r.output.slice(-2000)}`)
    })
  }))
})

interface Received { id: string, state: string, breaker: unknown, reason: unknown }

/** An EventSource client (the `eventsource` package, as the README shows it) through HAProxy. */
function subscribe (t: Tap): { received: Received[], opens: () => number } {
  const received: Received[] = []
  let opens = 0
  const source = new EventSource(`${proxy.base}/heartbeat/events`, {
    fetch: async (url, init) => await fetch(url, { ...init, headers: { ...init?.headers, authorization: reader } })
  })
  source.addEventListener('open', () => { opens++ })
  source.addEventListener('heartbeat', (event) => {
    const data = JSON.parse(event.data) as { heartbeat: { circuit_breaker_state: unknown, paused_reason: unknown } | null, liveness: { state: string } }
    received.push({ id: event.lastEventId, state: data.liveness.state, breaker: data.heartbeat?.circuit_breaker_state, reason: data.heartbeat?.paused_reason })
  })
  t.teardown(() => { source.close() })
  return { received, opens: () => opens }
}

const etagOf = async (base: string): Promise<string> =>
  (await fetch(`${base}/heartbeat`, { headers: { authorization: reader } })).headers.get('etag') ?? 'none'

/** The replica (by name) that HAProxy has the one open event stream on. */
async function streamReplica (): Promise<Replica> {
  let name: string | undefined
  await eventually(async () => {
    name = (await proxy.servers()).find((s) => s.backend === 'events' && s.current > 0)?.server
    return name !== undefined
  }, 5000, 'a stream open on a replica')
  return replicas.find((r) => r.name === name)!
}

async function patch (base: string, body: unknown, ifMatch?: string): Promise<Response> {
  const headers: Record<string, string> = { authorization: operator, 'content-type': 'application/json' }
  if (ifMatch !== undefined) headers['if-match'] = ifMatch
  return await fetch(`${base}/heartbeat`, { method: 'PATCH', headers, body: JSON.stringify(body) })
}

t.test('event streams across replicas: a client that loses its replica resumes on another with Last-Event-ID, no duplicate, nothing missed', async (t) => {
  await wholeFleet()
  await writeRow(db.admin, { lastPollAgo: 1, nextPollIn: 3600 })
  const tags = await Promise.all(replicas.map(async (r) => await etagOf(r.base)))
  t.equal(new Set(tags).size, 1, `every replica gives the same ETag for the same row and verdict: ${tags.join(' ')}`)

  const { received, opens } = subscribe(t)
  await eventually(() => received.length === 1, 10_000, 'the first event')
  t.equal(`"${received[0]!.id}"`, tags[0], 'the event id is the ETag, whichever replica computed it')

  t.equal((await patch(proxy.base, { circuit_breaker_state: 'OPEN' })).status, 200)
  await eventually(() => received.length === 2, 10_000, 'the breaker event')

  // The replica dies. While the client is away the scheduler writes once; its next poll is due 7 s later, so the
  // verdict turns late after the client is back: a change of verdict with no write at all.
  const first = await streamReplica()
  const lostAt = performance.now()
  await first.stop('SIGKILL')
  await db.admin`update public.eva_scheduler_heartbeat set circuit_breaker_state = 'CLOSED', last_poll_at = now(),
    next_poll_at = now() + interval '7 seconds', poll_count = poll_count + 1, updated_at = now() where id = 1`
  await eventually(() => received.length === 3, 15_000, 'the write made while the client was away')
  const resumedMs = performance.now() - lostAt
  const second = await streamReplica()
  t.not(second.name, first.name, 'it resumed on another replica')
  await eventually(() => received.length === 4, 15_000, 'the verdict turning late')
  t.equal((await patch(proxy.base, { status: 'stopping', paused_reason: 'fleet test' })).status, 200)
  await eventually(() => received.length === 5, 10_000, 'the pause')

  // Its replica dies again, with nothing changing meanwhile: it resumes and is sent nothing it already has.
  const opensBefore = opens()
  await second.stop('SIGKILL')
  await eventually(() => opens() > opensBefore, 15_000, 'the second reconnection')
  await delay(2500)
  const third = await streamReplica()

  t.same(received.map((r) => [r.state, r.breaker, r.reason]), [
    ['alive', 'CLOSED', null],
    ['circuit_open', 'OPEN', null],
    ['alive', 'CLOSED', null],
    ['late', 'CLOSED', null],
    ['paused', 'CLOSED', 'fleet test']
  ], 'every change of row and of verdict, once, in order')
  t.equal(new Set(received.map((r) => r.id)).size, received.length, 'no event id twice')
  t.equal(`"${received.at(-1)!.id}"`, await etagOf(third.base), 'the last id is the current ETag on the replica now serving')
  figure(`event stream: replicas ${first.name} → ${second.name} → ${third.name}; ${opens()} connections; ${received.length} events ` +
    `(${received.map((r) => r.state).join(', ')}); the first resumption delivered the missed write ${resumedMs.toFixed(0)} ms after the kill (retry: 3000)`)
})

t.test('PATCH across replicas: two ops scripts on different replicas with one If-Match, exactly one wins', async (t) => {
  await wholeFleet()
  await writeRow(db.admin, { lastPollAgo: 1, nextPollIn: 3600 })
  const wins: Record<string, number> = {}
  const rounds = 10
  for (let round = 0; round < rounds; round++) {
    const etag = await etagOf(proxy.base)
    const scripts = [replicas[0]!, replicas[1]!].map((replica) => ({ replica, reason: `${replica.name} round ${round}` }))
    const answers = await Promise.all(scripts.map(async ({ replica, reason }) => await patch(replica.base, { status: 'stopping', paused_reason: reason }, etag)))
    const statuses = answers.map((a) => a.status)
    t.same([...statuses].sort(), [200, 412], `round ${round}: one 200 and one 412 (${statuses.join(', ')})`)
    const winner = scripts[statuses.indexOf(200)]!
    const loser = answers[statuses.indexOf(412)]!
    wins[winner.replica.name] = (wins[winner.replica.name] ?? 0) + 1
    t.match(await loser.json(), { code: 'precondition_failed' })
    const [row] = await db.admin<Array<{ paused_reason: string }>>`select paused_reason from public.eva_scheduler_heartbeat where id = 1`
    t.equal(row?.paused_reason, winner.reason, `round ${round}: the row holds the winner's change`)
    t.equal(loser.headers.get('etag'), await etagOf(proxy.base), 'the 412 carries the current ETag')
  }
  figure(`PATCH across replicas: ${rounds} rounds, wins ${JSON.stringify(wins)}, every round one 200 and one 412`)
})

t.test('a PATCH is never retried: the replica holding it dies, the client gets 502, the row is untouched', async (t) => {
  await wholeFleet()
  await writeRow(db.admin, { lastPollAgo: 1, nextPollIn: 3600 })
  const before = await rowText(db.admin)
  const lock = await holdRowLock(db.admin)
  t.teardown(lock.release)
  // HAProxy answers 502, or, when it had sent the PATCH on a server connection it was reusing, closes the client's
  // connection without an answer (RFC 9112 §9.3.1: the client decides whether to send it again). Replayed on another
  // replica, it would have waited for the row lock and answered 200 or 503.
  const pending = patch(proxy.base, { status: 'stopping', paused_reason: 'must not be replayed' }).then((response) => response.status,
    (error: { cause?: { code?: string, message?: string } }) => error.cause?.code ?? error.cause?.message ?? 'error')
  let holder: Replica | undefined
  await eventually(async () => {
    const name = (await proxy.servers()).find((s) => s.backend === 'replicas' && s.current > 0)?.server
    holder = replicas.find((r) => r.name === name)
    return holder !== undefined
  }, 5000, 'the PATCH reached a replica')
  await holder!.stop('SIGKILL')
  const answer = await pending
  t.ok(answer === 502 || answer === 'UND_ERR_SOCKET', `the client is told it failed, not answered by another replica (${String(answer)})`)
  await lock.release()
  await delay(500)
  t.equal(await rowText(db.admin), before, 'the row is as it was: nobody replayed it')
})

t.test('one client\'s flood of bad tokens does not lock out an ops script from another address', async (t) => {
  await wholeFleet()
  await writeRow(db.admin, { lastPollAgo: 1, nextPollIn: 3600 })
  const flooder = '127.0.0.2'
  const other = '127.0.0.3'
  const fresh = async (role: string, sub: string): Promise<string> => `Bearer ${await token({ role, sub, jti: `${sub}-${Math.random()}` })}`
  const bad = `Bearer ${await token({ role: 'service_role', sub: 'guesser' }, 'a-wrong-secret-of-at-least-32-characters')}`
  // AUTH_FAILURE_LIMIT_PER_MINUTE's default, 20, per replica: 30 failures on each of the 3 in HAProxy's round robin.
  // The flood claims the ops script's address; HAProxy appends the flooder's own.
  const statuses = new Map<number, number>()
  for (let i = 0; i < 90; i++) {
    const { status } = await requestFrom(flooder, `${proxy.base}/heartbeat`, { headers: { authorization: bad, 'x-forwarded-for': HAPROXY_PEER } })
    statuses.set(status, (statuses.get(status) ?? 0) + 1)
  }
  t.same([...statuses.keys()].sort(), [401, 429], `the flood: 401s, then 429s (${JSON.stringify(Object.fromEntries(statuses))})`)
  for (let i = 0; i < 3; i++) {
    const answer = await requestFrom(flooder, `${proxy.base}/heartbeat`, { headers: { authorization: await fresh('authenticated', 'flooder') } })
    t.equal(answer.status, 429, `the flooder's own new token is refused (${i + 1}): the limit holds it`)
  }

  // The ops script from another address, with a service_role token minted now (no replica has verified it).
  const cli = await runCliCaptured(['pause', '--reason', 'incident'], { EVA_HEARTBEAT_URL: proxy.base, EVA_HEARTBEAT_TOKEN: (await fresh('service_role', 'ops')).slice(7) })
  t.equal(cli.code, 0, `pause --reason incident exits 0 (${cli.stderr.trim()})`)
  const [row] = await db.admin<Array<{ paused_reason: string | null }>>`select paused_reason from public.eva_scheduler_heartbeat where id = 1`
  t.equal(row?.paused_reason, 'incident', 'the row is paused')
  for (let i = 0; i < 3; i++) {
    const answer = await requestFrom(other, `${proxy.base}/heartbeat`, { headers: { authorization: await fresh('service_role', `ops-${i}`) } })
    t.equal(answer.status, 200, `another client's new token through HAProxy: 200 (${i + 1})`)
  }
})

t.test('HAProxy\'s runtime API is its owner\'s alone: a 0600 socket another OS user cannot open, a stats page without admin actions', async (t) => {
  await wholeFleet()
  t.equal((await stat(proxy.adminSocket)).mode & 0o777, 0o600, 'the socket is 0600')
  if (process.getuid?.() === 0) {
    // Let `nobody` reach the directory, so that only the socket's own mode stands in its way.
    const dir = path.dirname(proxy.adminSocket)
    await chmod(dir, 0o711)
    t.teardown(async () => { await chmod(dir, 0o700) })
    const script = `require('net').createConnection(${JSON.stringify(proxy.adminSocket)}).on('connect', () => { console.log('connected'); process.exit(0) }).on('error', (e) => { console.log(e.code); process.exit(0) })`
    const run = spawnSync('su', ['nobody', '-s', '/bin/sh', '-c', `env -i ${process.execPath} -e "${script.replaceAll('"', '\\"')}"`], { encoding: 'utf8', env: { PATH: process.env.PATH } })
    t.equal(run.stdout.trim(), 'EACCES', `another OS user is refused (${run.stdout.trim()} ${run.stderr.trim()})`)
  }
  const answer = await fetch(`${proxy.stats}/stats`, { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 's=api1&action=maint&b=replicas' })
  await answer.arrayBuffer()
  t.match(answer.headers.get('location'), /st=DENY/, 'HAProxy denies the action')
  await delay(1500)
  t.equal((await proxy.server('replicas', 'api1')).status, 'UP', `a stats page POST asking for maintenance changes nothing (${answer.status} ${answer.headers.get('location') ?? ''})`)
})

/** What the database did while `run` ran: statements (pg_stat_statements) and transactions per second. */
async function dbRate (run: () => Promise<unknown>): Promise<{ statements: number, transactions: number, seconds: number }> {
  const before = await databaseWork(db.admin)
  const started = performance.now()
  await run()
  const seconds = (performance.now() - started) / 1000
  // pg_stat_database is flushed by each backend at most once a second after its transaction.
  await delay(1200)
  const after = await databaseWork(db.admin)
  return { statements: (after.statements - before.statements) / seconds, transactions: (after.transactions - before.transactions - 2) / seconds, seconds }
}

/** `count` EventSource clients through HAProxy, open for `ms`. */
async function streams (t: Tap, count: number, ms: number): Promise<void> {
  const clients = await Promise.all(Array.from({ length: count }, async () => {
    const source = new EventSource(`${proxy.base}/heartbeat/events`, {
      fetch: async (url, init) => await fetch(url, { ...init, headers: { ...init?.headers, authorization: reader } })
    })
    t.teardown(() => { source.close() })
    return source
  }))
  await delay(ms)
  for (const source of clients) source.close()
}

const rounded = (n: number): string => n.toFixed(1)

t.test('the database load: the same clients on 1 replica and on 3; per replica bounded by coalescing and one events poller', async (t) => {
  await wholeFleet()
  await writeRow(db.admin, { lastPollAgo: 1, nextPollIn: 3600 })

  const clientLoad = async (): Promise<number> => {
    // 80 requests/s: within what this shared machine delivers through 1 replica or 3, so both get the same load.
    const load = traffic(125)
    await Promise.all([streams(t, 6, 4000), delay(4000)])
    await load.stop()
    t.equal(load.failures.length, 0, `no request failed: ${load.describeFailures()}`)
    return load.outcomes.length
  }
  const measure = async (replicaCount: number): Promise<void> => {
    const idle = await dbRate(async () => { await delay(2000) })
    let requests = 0
    const busy = await dbRate(async () => { requests = await clientLoad() })
    const rps = requests / busy.seconds
    figure(`database, ${replicaCount} replica(s): idle (health checks) ${rounded(idle.statements)} statements/s, ${rounded(idle.transactions)} transactions/s; ` +
      `${rps.toFixed(0)} req/s + 6 event streams → ${rounded(busy.statements)} statements/s, ${rounded(busy.transactions)} transactions/s; ` +
      `the clients' own: ${((busy.statements - idle.statements) / rps).toFixed(2)} statements and ${((busy.transactions - idle.transactions) / rps).toFixed(2)} transactions per request`)
  }
  for (const name of ['api2', 'api3']) await proxy.admin(`disable server replicas/${name}`)
  await measure(1)
  for (const name of ['api2', 'api3']) {
    await proxy.admin(`enable server replicas/${name}`)
    await proxy.waitStatus(name, 'UP')
  }
  await measure(3)

  // The event streams: one poller per replica, whatever the number of clients.
  const few = await dbRate(async () => { await streams(t, 3, 2500) })
  const many = await dbRate(async () => { await streams(t, 60, 2500) })
  figure(`database, event streams only over 3 replicas: 3 clients → ${rounded(few.statements)} statements/s; 60 clients → ${rounded(many.statements)} statements/s`)
  t.ok(many.statements < few.statements * 1.5 + 5, 'twenty times the stream clients, about the same database work')
})

/** Closed-loop load with autocannon; the replica processes' CPU seconds and the database's statements meanwhile. */
async function capacity (url: string, pids: number[], headers: Record<string, string> = {}): Promise<{ rps: number, perCore: number, statementsPerRequest: number, rssPeak: number, non2xx: number, errors: number }> {
  const cpuBefore = await Promise.all(pids.map(cpuSeconds))
  const dbBefore = await databaseWork(db.admin)
  let rssPeak = 0
  const sampler = setInterval(() => {
    void Promise.all(pids.map(rssMiB)).then((values) => { rssPeak = Math.max(rssPeak, ...values) }, () => {})
  }, 250)
  const result = await autocannon({ url, headers, connections: 32, duration: 3, pipelining: 1 })
  clearInterval(sampler)
  const cpu = (await Promise.all(pids.map(cpuSeconds))).reduce((sum, after, i) => sum + after - cpuBefore[i]!, 0)
  const dbAfter = await databaseWork(db.admin)
  const requests = result['2xx'] + result['3xx'] + result['4xx'] + result['5xx']
  return { rps: requests / result.duration, perCore: requests / cpu, statementsPerRequest: (dbAfter.statements - dbBefore.statements) / requests, rssPeak, non2xx: result.non2xx, errors: result.errors }
}

t.test('capacity: requests per CPU-second of a replica, for liveness and /heartbeat, direct and through HAProxy', async (t) => {
  await wholeFleet()
  await writeRow(db.admin, { lastPollAgo: 1, nextPollIn: 3600 })
  const first = replicas[0]!
  // Measured after a first round, which warms up (JIT) the code both routes share.
  await capacity(`${first.base}/heartbeat/liveness`, [first.pid])
  const liveness = await capacity(`${first.base}/heartbeat/liveness`, [first.pid])
  const heartbeat = await capacity(`${first.base}/heartbeat`, [first.pid], { authorization: reader })
  const proxyBefore = await cpuSeconds(proxy.pid)
  const fleet = await capacity(`${proxy.base}/heartbeat/liveness`, replicas.map((r) => r.pid))
  const proxyCpu = await cpuSeconds(proxy.pid) - proxyBefore
  const fleetRequests = fleet.rps * 3
  for (const [name, r] of [['liveness, 1 replica', liveness], ['/heartbeat, 1 replica', heartbeat], ['liveness, HAProxy + 3 replicas', fleet]] as const) {
    figure(`capacity, ${name}: ${r.rps.toFixed(0)} req/s on this shared machine, ${r.perCore.toFixed(0)} requests per replica CPU-second, ` +
      `${r.statementsPerRequest.toFixed(3)} statements per request, RSS peak ${r.rssPeak.toFixed(0)} MiB`)
    t.equal(r.errors + r.non2xx, 0, `${name}: every answer a 2xx`)
  }
  figure(`capacity, HAProxy: ${(fleetRequests / proxyCpu).toFixed(0)} requests per HAProxy CPU-second`)
  // A read is at least one statement: under 32 concurrent clients, less than one per request means requests share reads.
  t.ok(liveness.statementsPerRequest < 1 && heartbeat.statementsPerRequest < 1, 'one replica\'s reads are shared by concurrent requests')
})
