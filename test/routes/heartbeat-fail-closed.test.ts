// GET /heartbeat serves only a caller its role gate let through. Were the gate ever left out (a refactor, a route
// registered without it), the route must refuse, never read the row as some stand-in reader: fail closed.
import Fastify, { type FastifyInstance } from 'fastify'
import t from 'tap'
import type { Principal } from '../../src/auth/principal.js'
import { apiPoolOptions, createSql } from '../../src/db/client.js'
import { HeartbeatStore } from '../../src/db/store.js'
import errorsPlugin from '../../src/plugins/errors.js'
import heartbeatRoutes from '../../src/routes/heartbeat.js'
import { SHARED_SCHEMAS } from '../../src/http/schemas.js'
import { writeRow } from '../helpers/app.js'
import { startTestDatabase } from '../helpers/database.js'

const db = await startTestDatabase()
t.teardown(db.close)
await writeRow(db.admin)

type Tap = Parameters<Parameters<typeof t.test>[0]>[0]

/** The heartbeat routes without the auth plugin: an authentication that lets everything through and gives no principal. */
async function appWithoutAuth (t: Tap, livenessPublic: boolean): Promise<FastifyInstance> {
  const sql = createSql(db.apiUrl, apiPoolOptions({ poolMax: 2, statementTimeoutMs: 2000, prepare: true }))
  const app = Fastify()
  t.teardown(async () => { await app.close(); await sql.end({ timeout: 1 }) })
  for (const schema of SHARED_SCHEMAS) app.addSchema(schema)
  await app.register(errorsPlugin)
  app.decorate('authenticate', async () => undefined as unknown as Principal)
  app.decorateRequest('principal', undefined)
  app.decorate('store', new HeartbeatStore(sql, { statementTimeoutMs: 2000 }))
  await app.register(heartbeatRoutes, { grace: { graceSeconds: 60, graceFactor: 3 }, livenessPublic })
  return app
}

t.test('the heartbeat routes registered without the auth plugin: 401, nothing read', async (t) => {
  const app = await appWithoutAuth(t, true)

  const res = await app.inject({ url: '/heartbeat' })
  t.equal(res.statusCode, 401)
  t.equal(res.headers['content-type'], 'application/problem+json; charset=utf-8')
  t.match(res.headers['www-authenticate'], /^Bearer /)
  t.match(res.json(), { status: 401, code: 'missing_token' })
  t.notMatch(res.body, /scheduler-/, 'no row data in the answer')
  const head = await app.inject({ method: 'HEAD', url: '/heartbeat' })
  t.equal(head.statusCode, 401, 'HEAD too')
  t.equal((await app.inject({ url: '/heartbeat/liveness' })).statusCode, 200, 'while the public liveness still answers')
})

t.test('liveness behind a token (LIVENESS_PUBLIC=false) without the auth plugin: 401, never read as the service reader', async (t) => {
  const app = await appWithoutAuth(t, false)
  const res = await app.inject({ url: '/heartbeat/liveness' })
  t.equal(res.statusCode, 401)
  t.match(res.json(), { status: 401, code: 'missing_token' })
})
