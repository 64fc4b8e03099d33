// PATCH /heartbeat against a real PostgreSQL server: every writable field, every refusal (with the row byte for byte
// as it was and the app still serving), If-Match, concurrency, and the database refusing what the API allowed.
import t from 'tap'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import { bearer, deleteRow, rowText, skipEveryUpdate, startTestApp, token, writeRow } from '../helpers/app.js'

const { app, db } = await startTestApp(t)

const JSON_TYPE = { 'content-type': 'application/json' }
const service = await bearer('service_role')

interface HeartbeatBody {
  heartbeat: Record<string, unknown> & { status: string, paused_reason: string | null, circuit_breaker_state: string | null, updated_at: string }
  liveness: { state: string, status: string }
}

async function patch (body: unknown, headers: Record<string, string> = {}, target: FastifyInstance = app): Promise<LightMyRequestResponse> {
  return await target.inject({
    method: 'PATCH',
    url: '/heartbeat',
    headers: { ...service, ...JSON_TYPE, ...headers },
    payload: typeof body === 'string' ? body : JSON.stringify(body)
  })
}

async function getHeartbeat (headers: Record<string, string> = service): Promise<LightMyRequestResponse> {
  return await app.inject({ method: 'GET', url: '/heartbeat', headers })
}

/** The stored row as an object, timestamps as the database's own text. */
async function storedRow (): Promise<Record<string, unknown> | null> {
  const text = await rowText(db.admin)
  return text === null ? null : JSON.parse(text) as Record<string, unknown>
}

async function dbNow (): Promise<Date> {
  const [row] = await db.admin<Array<{ now: Date }>>`select now()`
  return (row as { now: Date }).now
}

t.test('each writable field is written, exactly as sent, and nothing else changes', async (t) => {
  const cases: Array<{ name: string, body: Record<string, unknown>, stored: Record<string, unknown> }> = [
    { name: 'status stopping', body: { status: 'stopping' }, stored: { status: 'stopping' } },
    { name: 'status stopped', body: { status: 'stopped' }, stored: { status: 'stopped' } },
    { name: 'status running', body: { status: 'running' }, stored: { status: 'running' } },
    { name: 'paused_reason, trimmed', body: { paused_reason: '  \t deploy 4.2 \n' }, stored: { paused_reason: 'deploy 4.2' } },
    { name: 'paused_reason of exactly 500 characters', body: { paused_reason: 'r'.repeat(500) }, stored: { paused_reason: 'r'.repeat(500) } },
    { name: 'paused_reason of 500 emoji (characters, not UTF-16 units)', body: { paused_reason: '⏸️'.repeat(250) }, stored: { paused_reason: '⏸️'.repeat(250) } },
    { name: 'paused_reason null', body: { paused_reason: null }, stored: { paused_reason: null } },
    { name: 'circuit_breaker_state OPEN', body: { circuit_breaker_state: 'OPEN' }, stored: { circuit_breaker_state: 'OPEN' } },
    { name: 'circuit_breaker_state HALF_OPEN', body: { circuit_breaker_state: 'HALF_OPEN' }, stored: { circuit_breaker_state: 'HALF_OPEN' } },
    { name: 'circuit_breaker_state CLOSED', body: { circuit_breaker_state: 'CLOSED' }, stored: { circuit_breaker_state: 'CLOSED' } },
    {
      name: 'all three at once',
      body: { status: 'stopped', paused_reason: 'maintenance', circuit_breaker_state: 'HALF_OPEN' },
      stored: { status: 'stopped', paused_reason: 'maintenance', circuit_breaker_state: 'HALF_OPEN' }
    }
  ]
  for (const c of cases) {
    // A start that differs from every target value, so that a write that did nothing cannot pass.
    await writeRow(db.admin, { status: 'running', paused_reason: 'before', circuit_breaker_state: 'CLOSED', updatedAgo: 30 })
    if (c.stored.circuit_breaker_state === 'CLOSED') await db.admin`update eva_scheduler_heartbeat set circuit_breaker_state = 'OPEN'`
    if (c.stored.status === 'running') await db.admin`update eva_scheduler_heartbeat set status = 'stopping'`
    const before = await storedRow() as Record<string, unknown>
    const res = await patch(c.body)
    t.equal(res.statusCode, 200, `${c.name}: 200`)
    t.match(res.headers['content-type'], /^application\/json/, `${c.name}: JSON`)
    const body = res.json<HeartbeatBody>()
    const after = await storedRow() as Record<string, unknown>
    for (const [field, value] of Object.entries(c.stored)) {
      t.equal(after[field], value, `${c.name}: ${field} stored`)
      t.equal(body.heartbeat[field], value, `${c.name}: ${field} answered`)
    }
    // updated_at moved to the database's now(); every other column is as it was.
    t.ok(new Date(after.updated_at as string).getTime() > new Date(before.updated_at as string).getTime() + 25_000, `${c.name}: updated_at set to now()`)
    const untouched = (row: Record<string, unknown>): Record<string, unknown> => {
      const copy = { ...row }
      for (const field of [...Object.keys(c.stored), 'updated_at']) Reflect.deleteProperty(copy, field)
      return copy
    }
    t.same(untouched(after), untouched(before), `${c.name}: no other column changed`)
    t.equal(body.heartbeat.updated_at, new Date(after.updated_at as string).toISOString(), `${c.name}: the answer shows the stored updated_at`)
  }
})

t.test('the answer is GET\'s: same body, ETag, Last-Modified and Cache-Control, and the next GET sees the write', async (t) => {
  await writeRow(db.admin)
  const first = await getHeartbeat()
  t.equal(first.statusCode, 200)
  const res = await patch({ status: 'stopping', paused_reason: 'deploy' })
  t.equal(res.statusCode, 200)
  t.match(res.headers.etag, /^"[A-Za-z0-9_-]+"$/, 'a strong ETag')
  t.not(res.headers.etag, first.headers.etag, 'a new ETag')
  t.equal(res.headers['cache-control'], 'no-cache')
  const body = res.json<HeartbeatBody>()
  t.equal(res.headers['last-modified'], new Date(body.heartbeat.updated_at).toUTCString())
  t.equal(body.liveness.state, 'paused', 'the verdict is computed on the new row')
  t.equal(body.liveness.status, 'warn')

  const next = await getHeartbeat()
  t.equal(next.statusCode, 200)
  t.equal(next.headers.etag, res.headers.etag, 'the next GET has the ETag the PATCH answered')
  t.equal(next.headers['last-modified'], res.headers['last-modified'])
  t.same(next.json<HeartbeatBody>().heartbeat, body.heartbeat, 'the next GET shows the same row')
  const conditional = await getHeartbeat({ ...service, 'if-none-match': String(res.headers.etag) })
  t.equal(conditional.statusCode, 304, 'the PATCH\'s ETag is current for If-None-Match')
})

t.test('pause and resume as the contract spells them, seen through /heartbeat/liveness', async (t) => {
  await writeRow(db.admin)
  const liveness = async (): Promise<{ status: number, state: string }> => {
    const res = await app.inject({ method: 'GET', url: '/heartbeat/liveness' })
    return { status: res.statusCode, state: res.json<{ state: string }>().state }
  }
  t.same(await liveness(), { status: 200, state: 'alive' })
  t.equal((await patch({ status: 'stopping', paused_reason: 'deploy' })).statusCode, 200)
  t.same(await liveness(), { status: 200, state: 'paused' })
  t.equal((await patch({ status: 'running', paused_reason: null })).statusCode, 200)
  t.same(await liveness(), { status: 200, state: 'alive' })
})

t.test('application/merge-patch+json and media type parameters are accepted', async (t) => {
  for (const type of ['application/merge-patch+json', 'application/json; charset=utf-8', 'Application/JSON', 'application/merge-patch+json;charset=UTF-8']) {
    await writeRow(db.admin, { circuit_breaker_state: 'CLOSED' })
    const res = await patch({ circuit_breaker_state: 'OPEN' }, { 'content-type': type })
    t.equal(res.statusCode, 200, type)
    t.equal((await storedRow())?.circuit_breaker_state, 'OPEN', `${type}: stored`)
  }
})

t.test('If-Match: the current ETag, a list holding it, and * are accepted', async (t) => {
  const forms: Array<[string, (etag: string) => string]> = [
    ['the current ETag', (etag) => etag],
    ['a list holding it', (etag) => `"nope", ${etag}`],
    ['*', () => '*']
  ]
  for (const [name, header] of forms) {
    await writeRow(db.admin)
    const current = String((await getHeartbeat()).headers.etag)
    const res = await patch({ status: 'stopping' }, { 'if-match': header(current) })
    t.equal(res.statusCode, 200, `If-Match: ${name}`)
    t.equal((await storedRow())?.status, 'stopping', `${name}: stored`)
  }
})

interface Refusal {
  name: string
  status: number
  code: string
  body?: unknown
  headers?: Record<string, string>
  /** Replaces every default header (token, content type). */
  onlyHeaders?: Record<string, string>
  detail?: RegExp
}

const longReason = 'x'.repeat(501)

const refusals = async (): Promise<Refusal[]> => [
  { name: 'no token', onlyHeaders: JSON_TYPE, body: { status: 'stopped' }, status: 401, code: 'missing_token' },
  { name: 'no token and a wrong content type: authentication comes first', onlyHeaders: { 'content-type': 'text/plain' }, body: 'x', status: 401, code: 'missing_token' },
  { name: 'a token that does not verify', headers: { authorization: `Bearer ${await token({ role: 'service_role' }, 'another-secret-0123456789-0123456789-0123')}` }, body: { status: 'stopped' }, status: 401, code: 'invalid_token' },
  { name: 'role authenticated', headers: await bearer('authenticated'), body: { status: 'stopped' }, status: 403, code: 'insufficient_scope' },
  { name: 'role anon', headers: await bearer('anon'), body: { status: 'stopped' }, status: 403, code: 'insufficient_scope' },
  { name: 'no role claim', headers: { authorization: `Bearer ${await token({ sub: 'someone' })}` }, body: { status: 'stopped' }, status: 403, code: 'insufficient_scope' },
  { name: 'an unknown field', body: { status: 'stopped', colour: 'red' }, status: 400, code: 'unknown_field', detail: /"colour".*not a field of this request/ },
  { name: 'instance_id', body: { instance_id: 'supervisor-00000000' }, status: 400, code: 'unknown_field', detail: /"instance_id".*written by the scheduler/ },
  { name: 'metadata', body: { status: 'stopped', metadata: {} }, status: 400, code: 'unknown_field', detail: /"metadata".*written by the scheduler/ },
  { name: 'updated_at', body: { updated_at: '2020-01-01T00:00:00Z' }, status: 400, code: 'unknown_field', detail: /"updated_at".*set by the API/ },
  { name: 'last_poll_at', body: { last_poll_at: null }, status: 400, code: 'unknown_field', detail: /"last_poll_at".*written by the scheduler/ },
  { name: 'poll_count', body: { poll_count: 0 }, status: 400, code: 'unknown_field', detail: /"poll_count".*written by the scheduler/ },
  { name: 'id', body: { id: 2 }, status: 400, code: 'unknown_field', detail: /"id".*fixed key/ },
  { name: 'toString (not an owned field)', body: { toString: 'x' }, status: 400, code: 'unknown_field', detail: /"toString".*not a field of this request/ },
  { name: 'an empty object', body: {}, status: 400, code: 'invalid_request' },
  { name: 'an array', body: [{ status: 'stopped' }], status: 400, code: 'invalid_request' },
  { name: 'a JSON string', body: '"stopped"', status: 400, code: 'invalid_request' },
  { name: 'JSON null', body: 'null', status: 400, code: 'invalid_request' },
  { name: 'status as an array (not coerced)', body: { status: ['stopped'] }, status: 400, code: 'invalid_request', detail: /status must be string/ },
  { name: 'status as a number', body: { status: 1 }, status: 400, code: 'invalid_request' },
  { name: 'status null', body: { status: null }, status: 400, code: 'invalid_request' },
  { name: 'paused_reason as a number (not coerced)', body: { paused_reason: 5 }, status: 400, code: 'invalid_request', detail: /paused_reason/ },
  { name: 'paused_reason as a boolean', body: { paused_reason: true }, status: 400, code: 'invalid_request' },
  { name: 'paused_reason as an object', body: { paused_reason: { why: 'deploy' } }, status: 400, code: 'invalid_request' },
  { name: 'circuit_breaker_state null', body: { circuit_breaker_state: null }, status: 400, code: 'invalid_request' },
  { name: 'an empty paused_reason', body: { status: 'stopping', paused_reason: '' }, status: 400, code: 'invalid_request', detail: /paused_reason must not be empty/ },
  { name: 'a white-space-only paused_reason', body: { status: 'stopping', paused_reason: ' \t\n\u00a0\u3000' }, status: 400, code: 'invalid_request', detail: /paused_reason must not be empty/ },
  { name: 'a paused_reason of 501 characters', body: { status: 'stopping', paused_reason: longReason }, status: 400, code: 'invalid_request', detail: /at most 500 characters after trimming \(got 501\)/ },
  { name: 'a paused_reason with U+0000', body: '{"status":"stopping","paused_reason":"de\\u0000ploy"}', status: 400, code: 'invalid_request', detail: /U\+0000/ },
  { name: 'a paused_reason with a lone surrogate', body: '{"status":"stopping","paused_reason":"de\\ud800ploy"}', status: 400, code: 'invalid_request', detail: /surrogate/ },
  { name: 'status not in the enum', body: { status: 'paused' }, status: 400, code: 'invalid_request', detail: /"running", "stopping", "stopped"/ },
  { name: 'status in the wrong case', body: { status: 'RUNNING' }, status: 400, code: 'invalid_request' },
  { name: 'a breaker state in lower case', body: { circuit_breaker_state: 'open' }, status: 400, code: 'invalid_request', detail: /"CLOSED", "OPEN", "HALF_OPEN"/ },
  { name: 'text/plain', headers: { 'content-type': 'text/plain' }, body: '{"status":"stopped"}', status: 415, code: 'unsupported_media_type' },
  { name: 'no content type', onlyHeaders: service, body: '{"status":"stopped"}', status: 415, code: 'unsupported_media_type' },
  { name: 'a form', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'status=stopped', status: 415, code: 'unsupported_media_type' },
  { name: 'application/json-patch+json (RFC 6902, not supported)', headers: { 'content-type': 'application/json-patch+json' }, body: '[{"op":"replace","path":"/status","value":"stopped"}]', status: 415, code: 'unsupported_media_type' },
  { name: 'a body over 16 KiB', body: { status: 'stopping', paused_reason: 'x'.repeat(17 * 1024) }, status: 413, code: 'body_too_large' },
  { name: 'truncated JSON', body: '{"status":"stopped"', status: 400, code: 'malformed_json' },
  { name: 'single-quoted JSON', body: "{'status':'stopped'}", status: 400, code: 'malformed_json' },
  { name: 'an empty body', body: '', status: 400, code: 'malformed_json' },
  { name: 'a __proto__ key', body: '{"status":"stopped","__proto__":{"status":"running"}}', status: 400, code: 'malformed_json' },
  { name: 'a constructor.prototype key', body: '{"constructor":{"prototype":{"status":"stopped"}}}', status: 400, code: 'malformed_json' },
  { name: 'a merge-patch __proto__ key', headers: { 'content-type': 'application/merge-patch+json' }, body: '{"__proto__":{"x":1}}', status: 400, code: 'malformed_json' },
  { name: 'a stale If-Match', headers: { 'if-match': '"c3RhbGUtZXRhZy1mcm9tLWJlZm9yZQ"' }, body: { status: 'stopped' }, status: 412, code: 'precondition_failed' },
  { name: 'a malformed If-Match', headers: { 'if-match': 'not-a-tag' }, body: { status: 'stopped' }, status: 412, code: 'precondition_failed' }
]

t.test('every refusal leaves the row byte for byte as it was, answers a problem, and the app keeps serving', async (t) => {
  await writeRow(db.admin, { paused_reason: null })
  for (const r of await refusals()) {
    const before = await rowText(db.admin)
    const res = await app.inject({
      method: 'PATCH',
      url: '/heartbeat',
      headers: r.onlyHeaders ?? { ...service, ...JSON_TYPE, ...r.headers },
      payload: typeof r.body === 'string' ? r.body : JSON.stringify(r.body)
    })
    t.equal(res.statusCode, r.status, `${r.name}: ${r.status}`)
    t.match(res.headers['content-type'], /^application\/problem\+json/, `${r.name}: problem+json`)
    const problem = res.json<{ code: string, status: number, detail: string }>()
    t.equal(problem.code, r.code, `${r.name}: code ${r.code}`)
    t.equal(problem.status, r.status, `${r.name}: status in the body`)
    if (r.detail !== undefined) t.match(problem.detail, r.detail, `${r.name}: the detail says why`)
    t.notMatch(res.body, /eyJ|select .* from|update public\.|eva_scheduler_heartbeat|\.[jt]s:\d+/, `${r.name}: no token, SQL or stack in the answer`)
    t.equal(await rowText(db.admin), before, `${r.name}: row unchanged`)
    t.equal((await getHeartbeat()).statusCode, 200, `${r.name}: the app still serves`)
  }
})

t.test('refusal details that matter to the caller', async (t) => {
  await writeRow(db.admin)
  const noToken = await app.inject({ method: 'PATCH', url: '/heartbeat', headers: JSON_TYPE, payload: '{"status":"stopped"}' })
  t.match(noToken.headers['www-authenticate'], /^Bearer/, '401 challenges for a bearer token')
  const reader = await patch({ status: 'stopped' }, await bearer('authenticated'))
  t.match(reader.headers['www-authenticate'], /error="insufficient_scope"/)
  const plain = await patch('x', { 'content-type': 'text/plain' })
  t.equal(plain.headers['accept-patch'], 'application/json, application/merge-patch+json', '415 says what is accepted (RFC 5789)')
  const current = String((await getHeartbeat()).headers.etag)
  const stale = await patch({ status: 'stopped' }, { 'if-match': '"old"' })
  t.equal(stale.statusCode, 412)
  t.equal(stale.headers.etag, current, '412 carries the current ETag')
  const weak = await patch({ status: 'stopped' }, { 'if-match': `W/${current}` })
  t.equal(weak.statusCode, 412, 'a weak tag never matches If-Match (strong comparison)')
})

t.test('no row: 404 whatever the body, and nothing is created', async (t) => {
  await deleteRow(db.admin)
  for (const headers of [{}, { 'if-match': '*' }] as Array<Record<string, string>>) {
    const res = await patch({ status: 'stopping', paused_reason: 'deploy' }, headers)
    t.equal(res.statusCode, 404)
    t.equal(res.json<{ code: string }>().code, 'heartbeat_not_found')
    t.equal(await rowText(db.admin), null, 'still no row')
  }
  t.equal((await getHeartbeat()).statusCode, 404, 'GET still answers')
})

t.test('two concurrent PATCHes with the same If-Match: exactly one wins, and the row is the winner\'s', async (t) => {
  for (let round = 0; round < 5; round++) {
    await writeRow(db.admin)
    const etag = String((await getHeartbeat()).headers.etag)
    const [a, b] = await Promise.all([
      patch({ status: 'stopping', paused_reason: `a${round}` }, { 'if-match': etag }),
      patch({ status: 'stopped', paused_reason: `b${round}`, circuit_breaker_state: 'OPEN' }, { 'if-match': etag })
    ])
    const codes = [a.statusCode, b.statusCode].sort()
    t.same(codes, [200, 412], `round ${round}: one 200 and one 412`)
    const winner = a.statusCode === 200 ? a : b
    const stored = await getHeartbeat()
    t.same(stored.json<HeartbeatBody>().heartbeat, winner.json<HeartbeatBody>().heartbeat, `round ${round}: the row is the winner's`)
    t.equal(stored.headers.etag, winner.headers.etag, `round ${round}: and so is the ETag`)
  }
})

t.test('query coercion still works for query strings (bodies alone are exact)', async (t) => {
  await writeRow(db.admin)
  const res = await app.inject({ method: 'GET', url: '/heartbeat?grace=30&strict=true', headers: service })
  t.equal(res.statusCode, 200)
  t.equal(res.json<{ liveness: { grace_seconds: number } }>().liveness.grace_seconds, 30)
})

t.test('the database refusing what the API allowed is a 403 update_refused, never a silent 200', async (t) => {
  await writeRow(db.admin)
  // A trigger that skips every update: the lock succeeds, the UPDATE changes 0 rows.
  const keepUpdating = await skipEveryUpdate(db.admin, t)
  let before = await rowText(db.admin)
  let res = await patch({ status: 'stopped' })
  t.equal(res.statusCode, 403, 'an update of 0 rows: 403')
  t.equal(res.json<{ code: string }>().code, 'update_refused')
  t.equal(await rowText(db.admin), before, 'row unchanged')
  await keepUpdating()

  // No UPDATE privilege: PostgreSQL says permission denied.
  await db.admin`revoke update on public.eva_scheduler_heartbeat from service_role`
  t.teardown(async () => { await db.admin`grant update on public.eva_scheduler_heartbeat to service_role` })
  before = await rowText(db.admin)
  res = await patch({ status: 'stopped' })
  t.equal(res.statusCode, 403, 'permission denied: 403')
  t.equal(res.json<{ code: string }>().code, 'update_refused')
  t.notMatch(res.body, /permission denied|42501/, 'the database\'s message is not passed on')
  t.equal(await rowText(db.admin), before, 'row unchanged')
  await db.admin`grant update on public.eva_scheduler_heartbeat to service_role`
  t.equal((await patch({ status: 'stopped' })).statusCode, 200, 'with the privilege back, the change goes through')
})

t.test('the row is changed at the database\'s now()', async (t) => {
  await writeRow(db.admin, { updatedAgo: 3600 })
  const start = await dbNow()
  const res = await patch({ status: 'stopping' })
  const end = await dbNow()
  const updated = new Date(res.json<HeartbeatBody>().heartbeat.updated_at).getTime()
  t.ok(updated >= start.getTime() && updated <= end.getTime(), 'updated_at is the database\'s now() of the change')
})

t.test('database down: 503, row untouched, and the change goes through once it is back', async (t) => {
  await writeRow(db.admin)
  const before = await rowText(db.admin)
  await db.server.stop()
  const res = await patch({ status: 'stopped' })
  await db.server.start()
  t.equal(res.statusCode, 503)
  t.equal(res.json<{ code: string }>().code, 'database_unavailable')
  t.ok(res.headers['retry-after'], 'Retry-After')
  t.equal(await rowText(db.admin), before, 'row untouched')
  let after: LightMyRequestResponse | undefined
  for (let i = 0; i < 20; i++) {
    after = await patch({ status: 'stopped' })
    if (after.statusCode === 200) break
    await new Promise((resolve) => setTimeout(resolve, 250))
  }
  t.equal(after?.statusCode, 200, 'recovers by itself')
})
