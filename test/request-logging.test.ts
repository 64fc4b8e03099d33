// Which requests the log shows at the default level (info): by default nothing for a successful answer, one line for
// every answer of 400 and above that names the request; with LOG_REQUESTS=true a line as the request arrives and one
// as it is answered, whatever the status. The audit line of an accepted PATCH is there either way.
import t, { type Test } from 'tap'
import { bearer, startTestApp, writeRow } from './helpers/app.js'
import { startTestDatabase } from './helpers/database.js'

const db = await startTestDatabase()
t.teardown(db.close)
await writeRow(db.admin)
const reader = await bearer('authenticated')
const admin = await bearer('service_role')

interface Line { level: number, msg: string, reqId?: string, req?: { method: string, url: string }, res?: { statusCode: number }, responseTime?: number }

async function appLoggingTo (t: Test, env: Record<string, string>): Promise<{ app: Awaited<ReturnType<typeof startTestApp>>['app'], lines: Line[] }> {
  const lines: Line[] = []
  const { app } = await startTestApp(t, { db, env: { LOG_LEVEL: 'info', ...env }, logStream: { write: (line: string) => { lines.push(JSON.parse(line) as Line) } } })
  return { app, lines }
}

const INFO = 30

t.test('default: successful answers write no line; 4xx and 5xx one line each, with the request', async (t) => {
  const { app, lines } = await appLoggingTo(t, {})
  const ok = [
    await app.inject({ url: '/heartbeat/liveness' }),
    await app.inject({ url: '/heartbeat', headers: reader }),
    await app.inject({ url: '/livez' })
  ]
  t.same(ok.map((res) => res.statusCode), [200, 200, 200])
  t.same(lines.filter((line) => line.reqId !== undefined), [], 'no line for a 2xx')

  const refused = await app.inject({ url: '/heartbeat?grace=soon' })
  t.equal(refused.statusCode, 400)
  const unauthorized = await app.inject({ url: '/heartbeat' })
  t.equal(unauthorized.statusCode, 401)
  const missing = await app.inject({ url: '/nowhere?x=1' })
  t.equal(missing.statusCode, 404)
  const completed = lines.filter((line) => line.msg === 'request completed')
  t.same(completed.map((line) => [line.level, line.req?.method, line.req?.url, line.res?.statusCode]), [
    [INFO, 'GET', '/heartbeat?grace=soon', 400],
    [INFO, 'GET', '/heartbeat', 401],
    [INFO, 'GET', '/nowhere?x=1', 404]
  ], 'one info line per refusal, naming the request and the status')
  for (const line of completed) t.type(line.responseTime, 'number', 'with its response time')
  t.equal(lines.filter((line) => line.msg === 'incoming request').length, 0, 'no incoming-request lines')
  t.notOk(JSON.stringify(lines).includes(reader.authorization.slice(7)), 'no token in the log')
})

t.test('credentials in the query string (apikey, access_token, token, jwt, any case) never reach the log', async (t) => {
  const { app, lines } = await appLoggingTo(t, {})
  const key = 'sb_secret_0123456789abcdefghijklmnopqrstuvwxyzAB'
  const res = await app.inject({ url: `/heartbeat?apikey=${key}&vsn=1.0.0&Access_Token=${key}x&%74oken=${key}y&JWT=${key}z` })
  t.equal(res.statusCode, 401, 'refused, so logged at info')
  const completed = lines.filter((line) => line.msg === 'request completed')
  t.equal(completed.length, 1)
  t.equal(completed[0]?.req?.url, '/heartbeat?apikey=[redacted]&vsn=1.0.0&Access_Token=[redacted]&%74oken=[redacted]&JWT=[redacted]',
    'the values replaced, the other parameters as sent')
  t.notOk(JSON.stringify(lines).includes('sb_secret_'), 'no part of the key anywhere in the log')
})

t.test('default: a 5xx is logged too', async (t) => {
  // A database that is not there: the liveness verdict is unknown, answered 503.
  const lines: Line[] = []
  const { app } = await startTestApp(t, {
    env: { LOG_LEVEL: 'info', DATABASE_URL: 'postgres://authenticator@127.0.0.1:9/postgres', DB_STATEMENT_TIMEOUT_MS: '500' },
    db,
    logStream: { write: (line: string) => { lines.push(JSON.parse(line) as Line) } }
  })
  const res = await app.inject({ url: '/heartbeat/liveness' })
  t.equal(res.statusCode, 503)
  const completed = lines.filter((line) => line.msg === 'request completed')
  t.same(completed.map((line) => [line.req?.url, line.res?.statusCode]), [['/heartbeat/liveness', 503]])
})

t.test('default: the audit line of an accepted change is still written, and its 200 is not', async (t) => {
  const { app, lines } = await appLoggingTo(t, {})
  const res = await app.inject({ method: 'PATCH', url: '/heartbeat', headers: { ...admin, 'content-type': 'application/json' }, payload: '{"circuit_breaker_state":"CLOSED"}' })
  t.equal(res.statusCode, 200)
  const withRequest = lines.filter((line) => line.reqId !== undefined)
  t.equal(withRequest.length, 1, 'one line for the request')
  t.match(withRequest[0], { level: INFO, msg: 'heartbeat changed', audit: { who: 'test-service_role' } }, 'the audit line')
})

t.test('LOG_REQUESTS=true: a line as each request arrives and one as it is answered', async (t) => {
  const { app, lines } = await appLoggingTo(t, { LOG_REQUESTS: 'true' })
  t.equal((await app.inject({ url: '/heartbeat/liveness' })).statusCode, 200)
  t.equal((await app.inject({ url: '/heartbeat' })).statusCode, 401)
  t.same(lines.filter((line) => line.reqId !== undefined && line.msg !== undefined && /request/.test(line.msg)).map((line) => [line.msg, line.req?.url ?? line.res?.statusCode]), [
    ['incoming request', '/heartbeat/liveness'],
    ['request completed', 200],
    ['incoming request', '/heartbeat'],
    ['request completed', 401]
  ])
})
