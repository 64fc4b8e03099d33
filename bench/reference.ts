// The reference: the least a service can do for the strict read, with the same guarantee as the app. A bare Fastify
// route that reads the row in a transaction (sql.begin: the role and claims set as parameters, then the select),
// shared only by requests that arrived before the read started (one in flight, one waiting). No auth, no plugins.
// Same process settings as the ceiling; the pool as the app's defaults (10 connections, prepared statements).
import Fastify from 'fastify'
import postgres from 'postgres'

const sql = postgres(process.env.DATABASE_URL ?? '', { max: 10, fetch_types: false, onnotice: () => {} })
const CLAIMS = JSON.stringify({ role: 'authenticated', sub: 'bench-reference' })

interface Row { id: number, updated_at: number, now: number }

async function read (): Promise<Row | undefined> {
  return await sql.begin(async (tx) => {
    await tx`select set_config('role', ${'authenticated'}, true), set_config('request.jwt.claims', ${CLAIMS}, true),
      set_config('statement_timeout', ${'5000'}, true)`
    const [row] = await tx<Row[]>`select h.id, floor(extract(epoch from h.updated_at) * 1000)::float8 as updated_at,
      floor(extract(epoch from now()) * 1000)::float8 as now from public.eva_scheduler_heartbeat h where h.id = 1`
    return row
  })
}

// One read running, one waiting: a request joins the waiting read (not started yet), never the running one.
let running: Promise<unknown> | undefined
let waiting: Promise<Row | undefined> | undefined
async function nextRead (): Promise<Row | undefined> {
  if (waiting !== undefined) return await waiting
  const before = running
  waiting = (async () => {
    if (before === undefined) await new Promise((resolve) => setImmediate(resolve))
    else await before.then(() => {}, () => {})
    waiting = undefined
    const started = read()
    running = started
    try { return await started } finally { if (running === started) running = undefined }
  })()
  return await waiting
}

const app = Fastify({ logger: { level: process.env.LOG_LEVEL ?? 'warn' } })
app.get('/', {
  schema: {
    response: {
      200: { type: 'object', properties: { id: { type: 'number' }, updated_at: { type: 'number' }, now: { type: 'number' } }, required: ['id', 'updated_at', 'now'] }
    }
  }
}, async () => {
  const row = await nextRead()
  if (row === undefined) throw new Error('no heartbeat row')
  return row
})

await app.listen({ host: process.env.HOST ?? '127.0.0.1', port: Number(process.env.PORT ?? 0) })
process.on('SIGTERM', () => { void app.close().then(async () => { await sql.end({ timeout: 2 }) }).then(() => process.exit(0)) })
