// The API through a real PgBouncer in transaction mode, as most Supabase projects are reached (port 6543, prepared
// statements off: DB_PREPARE=false), still logging in as `authenticator` and switching to the caller's role in each
// transaction. Issue 13 found the service never ready there: statements sent together outside a transaction were
// split across server connections ("got packet '1' from server when not linked", "server got dirty").
import type { LightMyRequestResponse } from 'fastify'
import t from 'tap'
import { bearer, rowText, startTestApp, TEST_SECRET, writeRow } from '../helpers/app.js'
import { startTestDatabase } from '../helpers/database.js'
import { PGBOUNCER, startPgBouncer } from '../helpers/pgbouncer.js'
import { startServer } from '../helpers/server-process.js'
import { needs } from '../helpers/tools.js'
import { eventually } from '../helpers/wait.js'

const COLUMNS = ['id', 'instance_id', 'started_at', 'last_poll_at', 'next_poll_at', 'poll_count', 'dispatch_count', 'error_count',
  'circuit_breaker_state', 'paused_reason', 'status', 'metadata', 'updated_at'].sort()

interface Row { instance_id: string, poll_count: number, metadata: { n?: number }, started_at: string, updated_at: string }
interface HeartbeatBody { heartbeat: Row & Record<string, unknown>, liveness: { state: string, status: string } }

t.test('through PgBouncer in transaction mode, DB_PREPARE=false', needs(PGBOUNCER, 'PgBouncer', 'pgbouncer'), async (t) => {
  const db = await startTestDatabase()
  t.teardown(db.close)
  // Set before any server connection exists: PgBouncer's server connections take them, and pass them on.
  await db.admin.unsafe('alter role authenticator set datestyle to \'SQL, DMY\'')
  await db.admin.unsafe('alter role authenticator set timezone to \'Asia/Kathmandu\'')
  await writeRow(db.admin, { lastPollAgo: 1, nextPollIn: 3600 })
  await db.admin`update public.eva_scheduler_heartbeat set started_at = '2026-11-13T01:02:03.456Z'`
  const bouncer = await startPgBouncer(t, db.server.port, { poolSize: 3, password: decodeURIComponent(new URL(db.server.url).password) })
  const url = bouncer.through(db.apiUrl)
  // A generous statement timeout: the PATCHes under load queue for one row lock on a machine shared with other suites;
  // this test is about answers reaching their own requests, not about how many PATCHes a second fit.
  const env = { DATABASE_URL: url, DB_PREPARE: 'false', DB_POOL_MAX: '6', DB_STATEMENT_TIMEOUT_MS: '15000' }
  const reader = await bearer('authenticated')
  const service = await bearer('service_role')

  const idleInTransaction = async (): Promise<number> => {
    const [row] = await db.admin<Array<{ count: number }>>`
      select count(*)::int as count from pg_stat_activity where usename = 'authenticator' and state like 'idle in transaction%'`
    return row?.count ?? -1
  }
  const assertCleanLog = async (t: Tap): Promise<void> => {
    const log = await bouncer.log()
    // A killed server connection's own FATAL ('E') arrives unlinked by nature; any other packet would be a split.
    t.notMatch(log, /got packet '[^E]' from server when not linked|got dirty|unsupported startup parameter/, 'PgBouncer logged no split or dirty server connection')
  }

  t.test('the process starts, checks the table and becomes ready', async (t) => {
    const server = startServer(t, { ...env, JWT_SECRET: TEST_SECRET, PORT: '0', LOG_LEVEL: 'info' })
    const { address } = await server.ready(30_000)
    const ready = await fetch(`${address}/readyz`)
    t.equal(ready.status, 200, `/readyz: ${await ready.text()}`)
    const liveness = await fetch(`${address}/heartbeat/liveness`)
    t.equal(liveness.status, 200)
    t.equal((await liveness.json() as { state: string }).state, 'alive')
    await assertCleanLog(t)
  })

  const { app } = await startTestApp(t, { db, env })
  const get = async (path: string, headers: Record<string, string> = {}): Promise<LightMyRequestResponse> => await app.inject({ url: path, headers })
  const patch = async (body: Record<string, unknown>, ifMatch?: string): Promise<LightMyRequestResponse> => await app.inject({
    method: 'PATCH',
    url: '/heartbeat',
    headers: { ...service, 'content-type': 'application/json', ...(ifMatch === undefined ? {} : { 'if-match': ifMatch }) },
    payload: JSON.stringify(body)
  })

  t.test('reads as both roles; timestamps as written whatever the role\'s DateStyle and TimeZone', async (t) => {
    t.equal((await get('/readyz')).statusCode, 200)
    for (const headers of [reader, service]) {
      const res = await get('/heartbeat', headers)
      t.equal(res.statusCode, 200)
      const body = res.json<HeartbeatBody>()
      t.same(Object.keys(body.heartbeat).sort(), COLUMNS)
      t.equal(body.heartbeat.started_at, '2026-11-13T01:02:03.456Z')
      t.equal(body.liveness.state, 'alive')
    }
    t.equal((await get('/heartbeat/liveness')).statusCode, 200)
  })

  t.test('PATCH with and without If-Match, concurrently: no 5xx, at most one If-Match wins, the row is the last answer', async (t) => {
    const etag = (await get('/heartbeat', service)).headers.etag as string
    const answers = await Promise.all(Array.from({ length: 12 }, async (_, i) =>
      await patch({ paused_reason: `change ${i}`, status: 'running' }, i % 2 === 0 ? etag : undefined)))
    const withMatch = answers.filter((_, i) => i % 2 === 0).map((a) => a.statusCode)
    const without = answers.filter((_, i) => i % 2 === 1).map((a) => a.statusCode)
    t.same(without, Array(6).fill(200), 'every PATCH without If-Match is applied')
    t.ok(withMatch.every((s) => s === 200 || s === 412), `with If-Match: 200 or 412 (${withMatch.join(' ')})`)
    t.ok(withMatch.filter((s) => s === 200).length <= 1, 'at most one of those with the same ETag wins')
    const last = answers.filter((a) => a.statusCode === 200).map((a) => a.json<HeartbeatBody>().heartbeat)
      .sort((a, b) => Date.parse(a.updated_at) - Date.parse(b.updated_at)).at(-1)
    const stored = JSON.parse(await rowText(db.admin) ?? 'null') as { paused_reason: string }
    t.equal(stored.paused_reason, (last as Record<string, unknown> | undefined)?.paused_reason, 'the row is the latest answer\'s')
    t.equal(await idleInTransaction(), 0, 'no session left idle in transaction')
    await assertCleanLog(t)
  })

  t.test('the server\'s connections killed (pg_terminate_backend): served again', async (t) => {
    await Promise.all([get('/heartbeat', reader), get('/heartbeat', service), patch({ paused_reason: null })])
    const [killed] = await db.admin<Array<{ count: number }>>`
      select count(*)::int as count from (select pg_terminate_backend(pid, 5000) from pg_stat_activity
        where usename = 'authenticator' and backend_type = 'client backend') k`
    t.ok((killed?.count ?? 0) > 0, `${killed?.count ?? 0} server connection(s) killed`)
    const statuses: number[] = []
    await eventually(async () => {
      const answers = await Promise.all([get('/heartbeat', reader), get('/heartbeat/liveness'), patch({ paused_reason: null })])
      statuses.push(...answers.map((a) => a.statusCode))
      return answers.every((a) => a.statusCode === 200)
    }, 15_000, 'reads and a PATCH answered 200')
    t.notOk(statuses.includes(500), `never 500 (${statuses.join(' ')})`)
  })

  t.test('under load, the row rewritten: every answer whole, its own and no older than its request, nothing left idle in transaction', async (t) => {
    let writing = true
    let n = 0
    /** The last write committed (docs/design.md: every answer has at least it, if it was committed before the request). */
    let committed = 0
    const writer = (async () => {
      while (writing) {
        n++
        await db.admin`update public.eva_scheduler_heartbeat set instance_id = ${`scheduler-${n}`}, poll_count = ${n},
          metadata = ${db.admin.json({ n })}, updated_at = now() where id = 1`
        committed = n
        await new Promise((resolve) => setTimeout(resolve, 5))
      }
    })()
    const kinds = ['heartbeat-authenticated', 'heartbeat-service', 'liveness', 'heartbeat-authenticated', 'heartbeat-service',
      'metrics', 'heartbeat-authenticated', 'heartbeat-service', 'liveness', 'patch'] as const
    const requests = Array.from({ length: 300 }, (_, i) => kinds[i % kinds.length] ?? 'liveness')
    const answers = await Promise.all(requests.map(async (kind) => {
      // Spread over a few hundred milliseconds, so that requests arrive while reads are in flight.
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 400))
      const floor = committed
      switch (kind) {
        case 'heartbeat-authenticated': return { kind, floor, res: await get('/heartbeat', reader) }
        case 'heartbeat-service': return { kind, floor, res: await get('/heartbeat', service) }
        case 'liveness': return { kind, floor, res: await get('/heartbeat/liveness') }
        case 'metrics': return { kind, floor, res: await get('/metrics', service) }
        case 'patch': return { kind, floor, res: await patch({ circuit_breaker_state: 'CLOSED' }) }
      }
    }))
    writing = false
    await writer
    const wrong: string[] = []
    for (const { kind, res, floor } of answers) {
      if (res.statusCode !== 200) { wrong.push(`${kind}: ${res.statusCode} ${res.body}`); continue }
      if (kind === 'liveness') {
        const body = res.json<{ state: string, checked_at: string }>()
        if (!String(res.headers['content-type']).startsWith('application/health+json') || body.state !== 'alive') wrong.push(`${kind}: ${res.body}`)
      } else if (kind === 'metrics') {
        if (!/^scheduler_heartbeat_up 1$/m.test(res.body)) wrong.push(`${kind}: no scheduler_heartbeat_up 1`)
      } else {
        const { heartbeat } = res.json<HeartbeatBody>()
        const keys = Object.keys(heartbeat).sort()
        const consistent = heartbeat.poll_count === 7 || (heartbeat.instance_id === `scheduler-${heartbeat.poll_count}` && heartbeat.metadata.n === heartbeat.poll_count)
        if (JSON.stringify(keys) !== JSON.stringify(COLUMNS) || !consistent) wrong.push(`${kind}: ${res.body}`)
        else if (heartbeat.poll_count < floor) wrong.push(`${kind}: write ${heartbeat.poll_count}, but ${floor} was committed before the request`)
      }
    }
    t.same(wrong, [], `${answers.length} answers, ${n} rewrites of the row: every one whole, of its kind, from one version of the row, none older than its request`)
    t.equal(await idleInTransaction(), 0, 'no session idle in transaction on the server afterwards')
    await assertCleanLog(t)
  })
})

type Tap = Parameters<Parameters<typeof t.test>[0]>[0]
