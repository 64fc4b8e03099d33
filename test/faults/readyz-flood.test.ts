// An anonymous /readyz flood against the real process: liveness keeps its latency, because however many probes
// arrive the database sees about one catalog check a second (counted by pg_stat_statements, the structural reason).
// Quiet and flooded liveness are measured by the same client, in interleaved rounds, so that whatever else loads
// this shared machine weighs on both figures alike.
import autocannon from 'autocannon'
import t from 'tap'
import { READINESS_REUSE_MS } from '../../src/db/readiness.js'
import { TEST_SECRET, writeRow } from '../helpers/app.js'
import { countStatements, resetStatements, startTestDatabase } from '../helpers/database.js'
import { startServer } from '../helpers/server-process.js'
import { delay } from '../helpers/wait.js'

const ROUNDS = 3
const SAMPLES_PER_ROUND = 100
// The flood the issue reproduced: 100 connections, paced at about the rate they reached (an unpaced flood of
// cheap answers would measure this machine's CPU, not the database pool).
const FLOOD = { connections: 100, overallRate: 200 }
/** The first statement of each catalog check (src/db/catalog.ts), as the API's login role ran it. */
const CHECK_STATEMENT = 'from pg_catalog\\.pg_class c'
// Latency noise on a loaded 2-core machine: a bound of twice the quiet p99, and never under quiet p99 + 25 ms.
const NOISE_FLOOR_MS = 25

const db = await startTestDatabase({ statements: true })
t.teardown(db.close)
await writeRow(db.admin, { lastPollAgo: 1, nextPollIn: 3600 })
const server = startServer(t, { DATABASE_URL: db.apiUrl, JWT_SECRET: TEST_SECRET, PORT: '0', LOG_LEVEL: 'info' })
const { address } = await server.ready()

const p99 = (samples: number[]): number => [...samples].sort((a, b) => a - b)[Math.ceil(samples.length * 0.99) - 1]!

/** `count` liveness requests one after the other on one keep-alive connection; each one's milliseconds. */
async function liveness (count: number): Promise<number[]> {
  const samples: number[] = []
  for (let i = 0; i < count; i++) {
    const started = performance.now()
    const res = await fetch(`${address}/heartbeat/liveness`)
    await res.arrayBuffer()
    samples.push(performance.now() - started)
    if (res.status !== 200) throw new Error(`liveness answered ${res.status}`)
  }
  return samples
}

t.test('a /readyz flood leaves liveness p99 within 2× of its quiet figure, at about one catalog check a second', async (t) => {
  await liveness(50) // warm-up: JIT, the keep-alive connection, the pool's connections
  const quiet: number[] = []
  const flooded: number[] = []
  const statuses = new Map<number, number>()
  let floodRequests = 0
  let floodErrors = 0

  await resetStatements(db.admin)
  const started = performance.now()
  for (let round = 0; round < ROUNDS; round++) {
    quiet.push(...await liveness(SAMPLES_PER_ROUND))
    let flood: autocannon.Instance | undefined
    const done = new Promise<autocannon.Result>((resolve, reject) => {
      flood = autocannon({ url: `${address}/readyz`, ...FLOOD, duration: 60 }, (error, result) => { if (error === null) resolve(result); else reject(error) })
    })
    flood?.on('response', (_client: unknown, status: number) => { statuses.set(status, (statuses.get(status) ?? 0) + 1) })
    await delay(500) // the flood under way before liveness is measured under it
    flooded.push(...await liveness(SAMPLES_PER_ROUND))
    flood?.stop()
    const result = await done
    floodRequests += result.requests.total
    floodErrors += result.errors
  }
  const elapsedMs = performance.now() - started
  const checks = Object.values(await countStatements(db.admin, CHECK_STATEMENT)).reduce((sum, n) => sum + n, 0)

  const quietP99 = p99(quiet)
  const floodedP99 = p99(flooded)
  const bound = Math.max(2 * quietP99, quietP99 + NOISE_FLOOR_MS)
  t.comment(`liveness p99 quiet ${quietP99.toFixed(1)} ms, under the flood ${floodedP99.toFixed(1)} ms (bound ${bound.toFixed(1)} ms); ` +
    `${floodRequests} /readyz requests (${JSON.stringify(Object.fromEntries(statuses))}), ${checks} catalog checks in ${Math.round(elapsedMs)} ms`)

  t.ok(floodRequests >= 100 * ROUNDS, `the flood ran (${floodRequests} requests)`)
  t.equal(floodErrors, 0, 'no connection error')
  t.same([...statuses.keys()], [200], 'every probe answered 200: ready')
  // A check starts at most once per reuse window (it starts when the last result has expired), plus the one that
  // may be under way at either end.
  const mostChecks = Math.floor(elapsedMs / READINESS_REUSE_MS) + 2
  t.ok(checks >= 1 && checks <= mostChecks, `${checks} catalog checks for ${floodRequests} probes (at most ${mostChecks} in ${Math.round(elapsedMs)} ms)`)
  t.ok(floodedP99 <= bound, `liveness p99 under the flood ${floodedP99.toFixed(1)} ms ≤ ${bound.toFixed(1)} ms`)
})
