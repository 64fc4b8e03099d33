// Checks of what a user sees, for tests that make thousands of requests (fuzzing, concurrency): each throws an
// AssertionError that says what was wrong, so one fast-check property or one loop can use them without a tap
// assertion per request.
import assert from 'node:assert/strict'
import type { TSchema } from '@sinclair/typebox'
import { Ajv } from 'ajv'
import addFormats from 'ajv-formats'
import type { LightMyRequestResponse } from 'fastify'
import { PROBLEM_TYPE_BASE } from '../../src/http/problems.js'
import { HeartbeatResponseSchema, LivenessSchema, SHARED_SCHEMAS } from '../../src/http/schemas.js'

const ISO_UTC = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/

/** A response as both inject and fetch give it: status, headers (lower-case names) and the body as text. */
export interface Answer {
  status: number
  headers: Readonly<Record<string, string | undefined>>
  body: string
}

export function fromInject (res: LightMyRequestResponse): Answer {
  const headers: Record<string, string | undefined> = {}
  for (const [name, value] of Object.entries(res.headers)) headers[name] = Array.isArray(value) ? value.join(', ') : value === undefined ? undefined : String(value)
  return { status: res.statusCode, headers, body: res.body }
}

export async function fromFetch (res: Response): Promise<Answer> {
  const headers: Record<string, string> = {}
  res.headers.forEach((value, name) => { headers[name] = value })
  return { status: res.status, headers, body: await res.text() }
}

export interface Problem { type: string, title: string, status: number, detail: string, code: string }

/**
 * A refusal as the contract says: a 4xx (never a 5xx on user input), application/problem+json, exactly the five RFC 9457
 * members with the right types, `status` equal to the HTTP status and `type` naming the code. Returns the problem.
 */
export function assertProblem (answer: Answer, expected?: { status?: number, codes?: readonly string[] }): Problem {
  assert.ok(answer.status >= 400 && answer.status < 500, `a refusal is a 4xx, got ${answer.status}: ${answer.body.slice(0, 300)}`)
  if (expected?.status !== undefined) assert.equal(answer.status, expected.status, `status ${expected.status} expected, got ${answer.status}: ${answer.body.slice(0, 300)}`)
  assert.match(answer.headers['content-type'] ?? '', /^application\/problem\+json(;|$)/, 'a refusal is application/problem+json')
  const problem = JSON.parse(answer.body) as Problem
  assert.deepEqual(Object.keys(problem).sort(), ['code', 'detail', 'status', 'title', 'type'], 'exactly the five problem members')
  for (const member of ['type', 'title', 'detail', 'code'] as const) {
    assert.equal(typeof problem[member], 'string', `problem ${member} is a string`)
    assert.ok(problem[member].length > 0, `problem ${member} is not empty`)
  }
  assert.equal(problem.status, answer.status, 'problem status is the HTTP status')
  assert.equal(problem.type, PROBLEM_TYPE_BASE + problem.code, 'problem type names the code')
  if (expected?.codes !== undefined) assert.ok(expected.codes.includes(problem.code), `code one of ${expected.codes.join(', ')}, got ${problem.code}: ${problem.detail}`)
  return problem
}

// The response schemas are plain JSON Schema (nullable fields are type arrays), so a JSON Schema validator checks
// them, with the shared schemas registered by $id as Fastify registers them.
const ajv = new Ajv({ strict: false, allErrors: false })
addFormats.default(ajv)
ajv.addFormat('date-time', { type: 'string', validate: (value: string) => ISO_UTC.test(value) && !Number.isNaN(Date.parse(value)) })
for (const schema of SHARED_SCHEMAS) ajv.addSchema(schema)

function assertSchema (schema: TSchema, value: unknown, what: string): void {
  const validate = ajv.getSchema(String(schema.$id))
  if (validate === undefined) assert.fail(`no schema ${String(schema.$id)}`)
  if (validate(value)) return
  const first = validate.errors?.[0]
  assert.fail(`${what} does not match its schema: ${first === undefined ? '?' : `${first.instancePath} ${first.message ?? ''}`}`)
}

export interface HeartbeatAnswer {
  heartbeat: Record<string, unknown> & { status: string, paused_reason: string | null, circuit_breaker_state: string | null, updated_at: string }
  liveness: { status: 'pass' | 'warn' | 'fail', state: string, grace_seconds: number | null }
}

/** A GET or PATCH /heartbeat 200: JSON, the response schema, a strong ETag and Last-Modified of updated_at. */
export function assertHeartbeatAnswer (answer: Answer): HeartbeatAnswer {
  assert.equal(answer.status, 200, `200 expected, got ${answer.status}: ${answer.body.slice(0, 300)}`)
  assert.match(answer.headers['content-type'] ?? '', /^application\/json(;|$)/, 'the heartbeat is application/json')
  const body = JSON.parse(answer.body) as HeartbeatAnswer
  assertSchema(HeartbeatResponseSchema, body, 'the heartbeat answer')
  assert.match(answer.headers.etag ?? '', /^"[A-Za-z0-9_-]+"$/, 'a strong ETag')
  assert.equal(answer.headers['last-modified'], new Date(body.heartbeat.updated_at).toUTCString(), 'Last-Modified is updated_at')
  assert.equal(answer.headers['cache-control'], 'no-cache')
  return body
}

export interface LivenessAnswer { status: 'pass' | 'warn' | 'fail', state: string, grace_seconds: number | null }

/** A /heartbeat/liveness verdict: health+json, its schema, no-store, and 200 or 503 as its status and `strict` say. */
export function assertLivenessAnswer (answer: Answer, strict: boolean): LivenessAnswer {
  assert.match(answer.headers['content-type'] ?? '', /^application\/health\+json(;|$)/, `liveness is application/health+json (got ${answer.status}: ${answer.body.slice(0, 200)})`)
  const body = JSON.parse(answer.body) as LivenessAnswer
  assertSchema(LivenessSchema, body, 'the liveness answer')
  const expected = body.status === 'fail' || (strict && body.status === 'warn') ? 503 : 200
  assert.equal(answer.status, expected, `a ${body.status} verdict${strict ? ' (strict)' : ''} answers ${expected}`)
  assert.equal(answer.headers['cache-control'], 'no-store')
  if (answer.status === 503) assert.match(answer.headers['retry-after'] ?? '', /^[1-9]\d*$/, 'Retry-After on 503')
  return body
}

/** The stored row (rowText) as the API shows it: timestamps as ISO 8601 UTC with milliseconds. */
export function rowAsShown (text: string): Record<string, unknown> {
  const row = JSON.parse(text) as Record<string, unknown>
  for (const column of ['started_at', 'last_poll_at', 'next_poll_at', 'updated_at']) {
    const value = row[column]
    if (typeof value === 'string') row[column] = new Date(value).toISOString()
  }
  return row
}
