// The read guarantee (docs/design.md): every write committed before a request arrives is in its answer, whoever
// wrote it. An outside writer (the superuser's connection, as the scheduler or another replica) bumps a counter in a
// loop; many concurrent readers note the last value committed before each request, and no answer may be older.
import type { LightMyRequestResponse } from 'fastify'
import t from 'tap'
import { bearer, startTestApp, writeRow } from '../helpers/app.js'
import { startTestDatabase } from '../helpers/database.js'
import { holdTableLock, waitingOnLocks } from '../helpers/faults.js'
import { eventually } from '../helpers/wait.js'

const db = await startTestDatabase()
t.teardown(db.close)

/** last_poll_at carries the counter too (base + n ms), so that the public liveness body shows it. */
const BASE_MS = (Math.floor(Date.now() / 1000) - 60) * 1000

t.test('under concurrent load with an outside writer, no answer misses a write committed before its request', async (t) => {
  await writeRow(db.admin, { poll_count: 0 })
  // About 1 MB of metadata: each read goes on for a while after its snapshot (decoding, sending and parsing it), the
  // window in which a write can commit and a request arrive while the read is still in flight.
  await db.admin`update public.eva_scheduler_heartbeat set metadata = jsonb_build_object('blob',
    (select string_agg(md5(i::text), '') from generate_series(1, 30000) i)) where id = 1`
  const { app } = await startTestApp(t, { db })
  const reader = await bearer('authenticated')
  const service = await bearer('service_role')
  let committed = 0
  let writing = true
  const writer = (async () => {
    for (let n = 1; writing; n++) {
      await db.admin`update public.eva_scheduler_heartbeat set poll_count = ${n},
        last_poll_at = to_timestamp(${BASE_MS / 1000}) + ${n} * interval '1 millisecond',
        next_poll_at = to_timestamp(${BASE_MS / 1000}) + interval '1 hour', updated_at = now() where id = 1`
      committed = n
    }
  })()
  const kinds = ['liveness', 'liveness', 'heartbeat-authenticated', 'heartbeat-service'] as const
  const counterOf = (kind: typeof kinds[number], res: LightMyRequestResponse): number => {
    if (kind === 'liveness') return Date.parse(res.json<{ last_poll_at: string }>().last_poll_at) - BASE_MS
    return res.json<{ heartbeat: { poll_count: number } }>().heartbeat.poll_count
  }
  const stale: string[] = []
  let answers = 0
  let overtaken = 0
  try {
    await Promise.all(Array.from({ length: 24 }, async (_, client) => {
      const kind = kinds[client % kinds.length] ?? 'liveness'
      for (let i = 0; i < 40; i++) {
        // Arrivals spread out, so that requests come while a read is in flight, not all together after one.
        await new Promise((resolve) => setTimeout(resolve, Math.random() * 8))
        const floor = committed
        const res = kind === 'liveness'
          ? await app.inject({ url: '/heartbeat/liveness' })
          : await app.inject({ url: '/heartbeat', headers: kind === 'heartbeat-service' ? service : reader })
        answers++
        if (res.statusCode !== 200) { stale.push(`${kind}: ${res.statusCode} ${res.body}`); continue }
        const seen = counterOf(kind, res)
        if (seen < floor) stale.push(`${kind}: answered ${seen}, ${floor} was committed before the request`)
        if (seen < committed) overtaken++
      }
    }))
  } finally {
    writing = false
    await writer
  }
  t.same(stale.slice(0, 5), [], `${answers} answers, ${committed} writes: none older than the request (${stale.length} were)`)
  t.ok(committed > 10, `the writer committed while the readers read (${committed} writes)`)
  t.comment(`${overtaken} answers were overtaken by a later write before they were checked (the race the test needs)`)
})

t.test('a request that waits for the next read still gets its answer within its deadline (a read held on a lock)', async (t) => {
  // Deadline: the statement timeout + 500 ms. The first read waits on the lock until the statement timeout; a request
  // arriving meanwhile waits for the next read, which keeps that request's own deadline rather than a fresh one.
  const timeoutMs = 3000
  const { app } = await startTestApp(t, { db, env: { DB_STATEMENT_TIMEOUT_MS: String(timeoutMs) } })
  t.equal((await app.inject({ url: '/heartbeat/liveness' })).statusCode, 200)
  const lock = await holdTableLock(db.admin)
  t.teardown(lock.release)
  const first = app.inject({ url: '/heartbeat/liveness' })
  await eventually(async () => await waitingOnLocks(db.admin) === 1, 5000, 'the first read waits on the lock')
  await new Promise((resolve) => setTimeout(resolve, 500))
  const arrived = performance.now()
  const second = await app.inject({ url: '/heartbeat/liveness' })
  const waited = performance.now() - arrived
  t.equal(second.statusCode, 503, 'the second request: 503, the database did not answer in time')
  t.equal(second.json<{ state: string }>().state, 'unknown')
  t.ok(waited < timeoutMs + 1500, `answered ${Math.round(waited)} ms after it arrived (deadline ${timeoutMs + 500} ms; two whole reads would be about ${2 * timeoutMs - 500} ms)`)
  t.equal((await first).statusCode, 503)
  await lock.release()
  t.equal((await app.inject({ url: '/heartbeat/liveness' })).statusCode, 200, 'served again once the lock is gone')
})
