// The audit trail of PATCH /heartbeat, read from the app's own log stream: one info line per accepted change with
// who, from where, and before/after of each field; refusals lower (debug), and never the token.
import t from 'tap'
import { SignJWT } from 'jose'
import { bearer, rowText, startTestApp, TEST_SECRET, token, writeRow } from '../helpers/app.js'

interface LogLine {
  level: number
  msg: string
  reqId?: string
  audit?: { who: string, role: string, ip: string, changes: Record<string, { before: unknown, after: unknown }> }
  code?: string
  who?: string
  [key: string]: unknown
}

/** Lines since the last `raw.length = 0`; `everyLine` keeps them all. */
const raw: string[] = []
const everyLine: string[] = []
const { app, db } = await startTestApp(t, {
  // Every request logged (LOG_REQUESTS), so that the token check below sees the request lines too.
  env: { LOG_LEVEL: 'debug', LOG_REQUESTS: 'true' },
  logStream: { write: (line: string) => { raw.push(line); everyLine.push(line) } }
})
const lines = (): LogLine[] => raw.map((line) => JSON.parse(line) as LogLine)
const audits = (): LogLine[] => lines().filter((line) => line.msg === 'heartbeat changed')
const INFO = 30
const DEBUG = 20
const WARN = 40

const tokensSent: string[] = []
async function patch (body: unknown, authorization: string | undefined, headers: Record<string, string> = {}): Promise<number> {
  if (authorization !== undefined) tokensSent.push(authorization.replace(/^Bearer /, ''))
  const res = await app.inject({
    method: 'PATCH',
    url: '/heartbeat',
    headers: { 'content-type': 'application/json', ...(authorization !== undefined ? { authorization } : {}), ...headers },
    payload: JSON.stringify(body)
  })
  return res.statusCode
}

t.test('an accepted change: one info line with who, role, ip and before/after of each field written', async (t) => {
  await writeRow(db.admin, { status: 'running', paused_reason: null, circuit_breaker_state: 'CLOSED' })
  raw.length = 0
  const { authorization } = await bearer('service_role', { sub: 'ops@example.com' })
  t.equal(await patch({ status: 'stopping', paused_reason: '  deploy  ' }, authorization), 200)
  const found = audits()
  t.equal(found.length, 1, 'exactly one audit line')
  const line = found[0] as LogLine
  t.equal(line.level, INFO, 'at info')
  t.same(line.audit, {
    who: 'ops@example.com',
    role: 'service_role',
    ip: '127.0.0.1',
    changes: {
      status: { before: 'running', after: 'stopping' },
      paused_reason: { before: null, after: 'deploy' }
    }
  })
  t.type(line.reqId, 'string', 'tied to the request id')
})

t.test('keys without sub: the role with jti, else with the key id', async (t) => {
  await writeRow(db.admin)
  raw.length = 0
  const withJti = `Bearer ${await token({ role: 'service_role', jti: 'key-7f3a' })}`
  t.equal(await patch({ circuit_breaker_state: 'OPEN' }, withJti), 200)
  const withKid = await new SignJWT({ role: 'service_role' })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT', kid: 'legacy-secret' })
    .setExpirationTime('1h')
    .sign(new TextEncoder().encode(TEST_SECRET))
  t.equal(await patch({ circuit_breaker_state: 'CLOSED' }, `Bearer ${withKid}`), 200)
  t.same(audits().map((line) => line.audit?.who), ['service_role:key-7f3a', 'service_role:legacy-secret'])
  t.same(audits().map((line) => line.audit?.changes), [
    { circuit_breaker_state: { before: 'CLOSED', after: 'OPEN' } },
    { circuit_breaker_state: { before: 'OPEN', after: 'CLOSED' } }
  ])
})

t.test('refusals: no audit line, a debug line with the code, and the row unchanged', async (t) => {
  await writeRow(db.admin)
  const before = await rowText(db.admin)
  raw.length = 0
  const service = (await bearer('service_role', { sub: 'ops@example.com' })).authorization
  const cases: Array<{ name: string, status: number, code: string, who?: string, send: () => Promise<number> }> = [
    { name: 'no token', status: 401, code: 'missing_token', send: async () => await patch({ status: 'stopped' }, undefined) },
    { name: 'role authenticated', status: 403, code: 'insufficient_scope', send: async () => await patch({ status: 'stopped' }, (await bearer('authenticated')).authorization) },
    { name: 'unknown field', status: 400, code: 'unknown_field', who: 'ops@example.com', send: async () => await patch({ instance_id: 'x' }, service) },
    { name: 'stale If-Match', status: 412, code: 'precondition_failed', who: 'ops@example.com', send: async () => await patch({ status: 'stopped' }, service, { 'if-match': '"stale"' }) }
  ]
  for (const c of cases) {
    raw.length = 0
    t.equal(await c.send(), c.status, `${c.name}: ${c.status}`)
    t.same(audits(), [], `${c.name}: no audit line`)
    const refusal = lines().find((line) => line.code === c.code)
    t.ok(refusal, `${c.name}: logged`)
    t.equal(refusal?.level, DEBUG, `${c.name}: at debug, below the audit lines`)
    if (c.who !== undefined) t.equal(refusal?.who, c.who, `${c.name}: with the verified subject`)
  }
  t.equal(await rowText(db.admin), before)
})

t.test('the database refusing is a warning with who and role', async (t) => {
  await writeRow(db.admin)
  await db.admin`revoke update on public.eva_scheduler_heartbeat from service_role`
  t.teardown(async () => { await db.admin`grant update on public.eva_scheduler_heartbeat to service_role` })
  raw.length = 0
  t.equal(await patch({ status: 'stopped' }, (await bearer('service_role', { sub: 'ops@example.com' })).authorization), 403)
  const warning = lines().find((line) => line.msg === 'heartbeat change refused by the database')
  t.equal(warning?.level, WARN)
  t.match(warning, { who: 'ops@example.com', role: 'service_role', reason: /permission denied/ })
  t.same(audits(), [])
})

t.test('no log line ever holds a token', async (t) => {
  t.ok(tokensSent.length >= 6, 'tokens were sent')
  const everything = everyLine.join('\n')
  t.ok(everyLine.length > 20, 'the whole file\'s log is checked')
  for (const sent of tokensSent) {
    t.notOk(everything.includes(sent), 'the token is not in the log')
    t.notOk(everything.includes(sent.split('.')[2] ?? sent), 'nor its signature')
  }
})
