// Fuzzing the API with fast-check, through app.inject against the real app and a real PostgreSQL server: generated
// PATCH bodies (any JSON value, objects mixing writable and scheduler-owned keys, duplicate keys, strings of every
// size and kind of Unicode, numbers, nesting), raw bytes (invalid UTF-8), prototype-pollution keys at any depth,
// headers (Content-Type, If-Match, Authorization) and query strings for GET /heartbeat and /heartbeat/liveness.
//
// Every request is checked against a model of the contract written here, independently of src/: the model says
// which status (and which problem codes) the request must get, and for an accepted PATCH what the row must hold.
// Properties: never a 5xx; every refusal a 4xx application/problem+json with the five RFC 9457 members; every success
// a valid answer; the row byte for byte unchanged after every refusal; an accepted PATCH writes exactly what was
// asked and leaves the scheduler's columns alone; Object.prototype never changes.
//
// FUZZ_SEED (default below) and FUZZ_RUNS (generated cases in this file, default 1500) replay or widen a run. A failure
// reports fast-check's seed and path, and the shrunk counterexample.
import assert from 'node:assert/strict'
import fc from 'fast-check'
import t, { type Test } from 'tap'
import { assertHeartbeatAnswer, assertLivenessAnswer, assertProblem, fromInject, rowAsShown, type Answer } from '../helpers/answers.js'
import { bearer, rowText, startTestApp, writeRow, type RowShape } from '../helpers/app.js'

const SEED = Number(process.env.FUZZ_SEED ?? 20260406)
const RUNS = Number(process.env.FUZZ_RUNS ?? 1500)
/** Each property's share of FUZZ_RUNS. */
const SHARE = { mixed: 0.4, valid: 0.1, bytes: 0.1, pollution: 0.1, queries: 0.3 }
const runsOf = (share: number): number => Math.max(10, Math.round(RUNS * share))

const { app, db } = await startTestApp(t)
const service = await bearer('service_role')
const reader = await bearer('authenticated')
const serviceToken = service.authorization.slice('Bearer '.length)

const BODY_LIMIT = 16 * 1024
const STATUSES = ['running', 'stopping', 'stopped'] as const
const BREAKER_STATES = ['CLOSED', 'OPEN', 'HALF_OPEN'] as const
const WRITABLE = ['status', 'paused_reason', 'circuit_breaker_state'] as const
type Writable = typeof WRITABLE[number]
const SCHEDULER_OWNED = ['id', 'instance_id', 'started_at', 'last_poll_at', 'next_poll_at', 'poll_count', 'dispatch_count', 'error_count', 'metadata', 'updated_at'] as const
const POLLUTING = ['__proto__', 'constructor', 'prototype'] as const

/** A healthy scheduler whose verdict will not change while the file runs (the next poll is an hour away). */
const STEADY: RowShape = { nextPollIn: 3600, lastPollAgo: 10, poll_count: 41, dispatch_count: 17, error_count: 2, metadata: { observe_only: false, note: 'fuzz' } }

// ---------------------------------------------------------------------------------------------------------------
// The model: what the contract says a request must get. Written from the contract, not from src/.

type Outcome =
  | { status: 200, changes: Partial<Record<Writable, string | null>> }
  | { status: number, codes: readonly string[], unknown?: readonly string[] }

const refuse = (status: number, ...codes: string[]): Outcome => ({ status, codes })

const isUtf8 = (bytes: Buffer): boolean => Buffer.from(bytes.toString('utf8'), 'utf8').equals(bytes)
const isWellFormed = (text: string): boolean => new TextDecoder().decode(new TextEncoder().encode(text)) === text
const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value)

/** A `__proto__` key anywhere, or a `constructor` key whose value is an object holding a `prototype` key. */
function poisoned (value: unknown): boolean {
  const pending: unknown[] = [value]
  while (pending.length > 0) {
    const node = pending.pop()
    if (typeof node !== 'object' || node === null) continue
    if (Object.hasOwn(node, '__proto__')) return true
    const ctor = (node as Record<string, unknown>).constructor
    if (Object.hasOwn(node, 'constructor') && typeof ctor === 'object' && ctor !== null && Object.hasOwn(ctor, 'prototype')) return true
    pending.push(...Object.values(node))
  }
  return false
}

/** What a PATCH body (as sent, in bytes) must get from an authorised caller with a JSON media type. */
function bodyOutcome (bytes: Buffer): Outcome {
  if (bytes.length > BODY_LIMIT) return refuse(413, 'body_too_large')
  if (!isUtf8(bytes)) return refuse(400, 'malformed_json')
  let text = bytes.toString('utf8')
  if (text.startsWith('\ufeff')) text = text.slice(1) // RFC 8259 §8.1: a parser may ignore one BOM
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    return refuse(400, 'malformed_json')
  }
  if (poisoned(value)) return refuse(400, 'malformed_json')
  if (!isRecord(value)) return refuse(400, 'invalid_request')
  const keys = Object.keys(value)
  if (keys.length === 0) return refuse(400, 'invalid_request')
  const unknown = keys.filter((key) => !(WRITABLE as readonly string[]).includes(key))
  const typesOk = (value.status === undefined || (STATUSES as readonly unknown[]).includes(value.status)) &&
    (value.circuit_breaker_state === undefined || (BREAKER_STATES as readonly unknown[]).includes(value.circuit_breaker_state)) &&
    (value.paused_reason === undefined || value.paused_reason === null || typeof value.paused_reason === 'string')
  if (unknown.length > 0) return { status: 400, codes: typesOk ? ['unknown_field'] : ['unknown_field', 'invalid_request'], unknown }
  if (!typesOk) return refuse(400, 'invalid_request')
  const changes: Partial<Record<Writable, string | null>> = {}
  if (typeof value.status === 'string') changes.status = value.status
  if (typeof value.circuit_breaker_state === 'string') changes.circuit_breaker_state = value.circuit_breaker_state
  if (value.paused_reason === null) changes.paused_reason = null
  if (typeof value.paused_reason === 'string') {
    const reason = value.paused_reason.trim()
    const characters = [...reason].length
    if (characters < 1 || characters > 500 || reason.includes('\u0000') || !isWellFormed(reason)) return refuse(400, 'invalid_request')
    changes.paused_reason = reason
  }
  return { status: 200, changes }
}

type AuthChoice =
  | { kind: 'service' | 'reader' | 'none' | 'tampered' }
  | { kind: 'scheme', scheme: string }
  | { kind: 'garbage', value: string }

type IfMatchChoice =
  | { kind: 'absent' | 'current' | 'star' | 'weak' | 'stale' }
  | { kind: 'listed', others: string[] }
  | { kind: 'garbage', value: string }

interface PatchCase {
  auth: AuthChoice
  contentType: { value: string | undefined, json: boolean }
  ifMatch: IfMatchChoice
  body: Buffer
}

/** RFC 9110 If-Match: a list of entity tags or `*`, compared strongly. */
function ifMatchPasses (choice: IfMatchChoice, etag: string): boolean {
  switch (choice.kind) {
    case 'absent': case 'current': case 'star': case 'listed': return true
    case 'weak': case 'stale': return false
    case 'garbage': return choice.value.split(',').map((tag) => tag.trim()).some((tag) => tag === '*' || tag === etag)
  }
}

function patchOutcome (c: PatchCase, etag: string | undefined): Outcome {
  switch (c.auth.kind) {
    case 'none': return refuse(401, 'missing_token')
    case 'garbage': return refuse(401, 'missing_token', 'invalid_token', 'token_too_large')
    case 'tampered': return refuse(401, 'invalid_token')
    case 'reader': return refuse(403, 'insufficient_scope')
    default: break
  }
  if (!c.contentType.json) return refuse(415, 'unsupported_media_type')
  const body = bodyOutcome(c.body)
  if (body.status !== 200) return body
  if (!ifMatchPasses(c.ifMatch, etag ?? '')) return refuse(412, 'precondition_failed')
  return body
}

// ---------------------------------------------------------------------------------------------------------------
// Requests and checks.

function authHeader (choice: AuthChoice): Record<string, string> {
  switch (choice.kind) {
    case 'service': return service
    case 'reader': return reader
    case 'none': return {}
    case 'scheme': return { authorization: `${choice.scheme} ${serviceToken}` }
    case 'garbage': return { authorization: choice.value }
    case 'tampered': {
      // One character of the payload changed: the signature no longer matches.
      const [header, payload, signature] = serviceToken.split('.') as [string, string, string]
      const at = Math.floor(payload.length / 2)
      const swapped = payload[at] === 'A' ? 'B' : 'A'
      return { authorization: `Bearer ${header}.${payload.slice(0, at)}${swapped}${payload.slice(at + 1)}.${signature}` }
    }
  }
}

function ifMatchHeader (choice: IfMatchChoice, etag: string | undefined): Record<string, string> {
  const current = etag ?? '"none"'
  switch (choice.kind) {
    case 'absent': return {}
    case 'current': return { 'if-match': current }
    case 'star': return { 'if-match': '*' }
    case 'weak': return { 'if-match': `W/${current}` }
    case 'stale': return { 'if-match': '"c3RhbGUtZXRhZy1mcm9tLWJlZm9yZQ"' }
    case 'listed': return { 'if-match': [...choice.others, current].join(', ') }
    case 'garbage': return { 'if-match': choice.value }
  }
}

const needsEtag = (choice: IfMatchChoice): boolean => ['current', 'weak', 'listed', 'garbage'].includes(choice.kind)

async function currentEtag (): Promise<string> {
  const res = await app.inject({ method: 'GET', url: '/heartbeat', headers: service })
  assert.equal(res.statusCode, 200, 'GET /heartbeat answers while fuzzing')
  return String(res.headers.etag)
}

async function sendPatch (body: Buffer, headers: Record<string, string>): Promise<Answer> {
  return fromInject(await app.inject({ method: 'PATCH', url: '/heartbeat', headers, payload: body }))
}

const PROTOTYPE_NAMES = Object.getOwnPropertyNames(Object.prototype).sort()
function assertPrototypeIntact (): void {
  assert.deepEqual(Object.getOwnPropertyNames(Object.prototype).sort(), PROTOTYPE_NAMES, 'Object.prototype gained or lost a property')
  assert.equal(({} as Record<string, unknown>).polluted, undefined, 'Object.prototype.polluted')
  assert.equal(([] as unknown as Record<string, unknown>).polluted, undefined, 'Array.prototype.polluted')
}

/**
 * The answer and the row after a PATCH, as the model says: a refusal leaves the row byte for byte as it was; an
 * accepted change writes the asked fields (paused_reason trimmed), moves updated_at, and leaves every other column.
 */
function assertPatchAnswer (answer: Answer, expected: Outcome, before: string, after: string): void {
  assert.ok(answer.status < 500, `never a 5xx: got ${answer.status} ${answer.body.slice(0, 300)}`)
  if (expected.status !== 200) {
    const problem = assertProblem(answer, { status: expected.status, codes: 'codes' in expected ? expected.codes : undefined })
    if ('unknown' in expected && expected.unknown !== undefined && problem.code === 'unknown_field') {
      assert.ok(expected.unknown.some((name) => problem.detail.includes(`"${name}"`)), `the detail names the field: ${problem.detail}`)
    }
    assert.equal(after, before, 'a refused PATCH leaves the row byte for byte as it was')
    return
  }
  assert.ok('changes' in expected)
  const shown = assertHeartbeatAnswer(answer)
  const was = JSON.parse(before) as Record<string, unknown>
  const now = JSON.parse(after) as Record<string, unknown>
  for (const field of WRITABLE) {
    const wanted: unknown = Object.hasOwn(expected.changes, field) ? expected.changes[field] : was[field]
    assert.equal(now[field], wanted, `${field} stored as asked`)
  }
  for (const column of SCHEDULER_OWNED) {
    if (column === 'updated_at') continue
    assert.deepEqual(now[column], was[column], `${column} untouched`)
  }
  assert.ok(new Date(now.updated_at as string).getTime() >= new Date(was.updated_at as string).getTime(), 'updated_at moves on')
  assert.deepEqual(shown.heartbeat, rowAsShown(after), 'the answer shows the stored row')
}

/** Counts what the server answered, to show in the report and to prove each generator reaches its target. */
class Tally {
  readonly counts = new Map<string, number>()
  add (answer: Answer): void {
    let key = String(answer.status)
    if (answer.headers['content-type']?.startsWith('application/problem+json') === true) key += ` ${(JSON.parse(answer.body) as { code: string }).code}`
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1)
  }

  has (prefix: string): boolean { return [...this.counts.keys()].some((key) => key.startsWith(prefix)) }
  text (): string { return [...this.counts.entries()].sort().map(([key, count]) => `${key}: ${count}`).join(', ') }
}

async function checkProperty<T> (t: Test, name: string, runs: number, arbitrary: fc.Arbitrary<T>, predicate: (value: T) => Promise<void>): Promise<void> {
  let ran = 0
  const details = await fc.check(fc.asyncProperty(arbitrary, async (value) => { ran++; await predicate(value) }), { seed: SEED, numRuns: runs, includeErrorInReport: true })
  t.notOk(details.failed, `${name}: ${details.failed ? fc.defaultReportMessage(details) ?? '' : `${runs} cases`}`)
  t.equal(details.numRuns, runs, `${name}: ${runs} generated cases ran (seed ${SEED})`)
  t.ok(ran >= runs, `${name}: the property ran`)
}

// ---------------------------------------------------------------------------------------------------------------
// Generators.

const chars = (from: number, to: number): fc.Arbitrary<string> => fc.integer({ min: from, max: to }).map((code) => String.fromCharCode(code))
/** A header value a client can send: visible ASCII, space and tab. */
const headerChar = fc.oneof({ weight: 9, arbitrary: chars(0x20, 0x7e) }, { weight: 1, arbitrary: fc.constant('\t') })
/** Any UTF-16 unit, lone surrogates included. */
const utf16Unit = chars(0, 0xffff)
/** White space JavaScript trims, and characters that look like it but are not trimmed (U+200B, U+0085), and NUL. */
const spaceUnit = fc.constantFrom(' ', '\t', '\n', '\r', '\u000b', '\u000c', '\u00a0', '\u1680', '\u2000', '\u2028', '\u2029', '\u202f', '\u3000', '\ufeff', '\u200b', '\u0085', '\u0000')

const anyText = (maxLength: number): fc.Arbitrary<string> => fc.oneof(
  fc.string({ unit: 'grapheme', maxLength }),
  fc.string({ unit: 'binary', maxLength }),
  fc.string({ unit: utf16Unit, maxLength }),
  fc.string({ unit: fc.oneof(spaceUnit, chars(0x20, 0x7e)), maxLength })
)

/** paused_reason candidates: short text of every kind, text around the 500-character limit, and huge text. */
const reasonText = fc.oneof(
  { weight: 6, arbitrary: anyText(40) },
  {
    weight: 3,
    arbitrary: fc.tuple(fc.string({ unit: spaceUnit, maxLength: 3 }), fc.string({ unit: 'binary', minLength: 495, maxLength: 505 }), fc.string({ unit: spaceUnit, maxLength: 3 }))
      .map(([lead, core, trail]) => lead + core + trail)
  },
  {
    weight: 1,
    arbitrary: fc.tuple(fc.integer({ min: 1, max: 20_000 }), fc.constantFrom('x', 'é', '€', '😀', ' ')).map(([count, char]) => char.repeat(count))
  }
)

/** A JSON string literal for `text`, with the characters `escape` picks written as \uXXXX (random hex case). */
function stringLiteral (text: string, escape: readonly boolean[] = [], upper = false): string {
  let out = '"'
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i)
    const mustEscape = code < 0x20 || code === 0x22 || code === 0x5c || (code >= 0xd800 && code <= 0xdfff)
    if (mustEscape || escape[i % Math.max(1, escape.length)] === true) {
      const hex = code.toString(16).padStart(4, '0')
      out += `\\u${upper ? hex.toUpperCase() : hex}`
    } else {
      out += text[i] as string
    }
  }
  return `${out}"`
}

const jsonText = (value: unknown): string => JSON.stringify(value)

/** Any JSON value as text, and number spellings JSON.stringify never writes. */
const anyValueText = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }).map(jsonText),
  fc.constantFrom('1e999', '-1e999', '-0', '1E+2', '0.1e-5', '123456789012345678901234567890', '5e-324', 'true', 'false', 'null', '""', '[]', '{}', '[null]', '{"":""}'),
  fc.double().map((value) => Number.isFinite(value) ? String(value) : 'null'),
  fc.integer().map(String)
)

const enumValueText = (values: readonly string[]): fc.Arbitrary<string> => fc.oneof(
  { weight: 5, arbitrary: fc.constantFrom(...values).map(jsonText) },
  { weight: 1, arbitrary: fc.mixedCase(fc.constantFrom(...values)).map(jsonText) },
  { weight: 1, arbitrary: fc.constantFrom(...values).map((value) => `[${jsonText(value)}]`) },
  { weight: 1, arbitrary: anyText(12).map(jsonText) },
  { weight: 1, arbitrary: anyValueText }
)

const reasonValueText = fc.oneof(
  { weight: 5, arbitrary: fc.tuple(reasonText, fc.array(fc.boolean(), { maxLength: 8 }), fc.boolean()).map(([text, escape, upper]) => stringLiteral(text, escape, upper)) },
  { weight: 1, arbitrary: fc.constant('null') },
  { weight: 1, arbitrary: anyValueText }
)

const keyName = fc.oneof(
  { weight: 14, arbitrary: fc.constantFrom(...WRITABLE) },
  { weight: 2, arbitrary: fc.constantFrom(...SCHEDULER_OWNED) },
  {
    weight: 2,
    arbitrary: fc.constantFrom(...POLLUTING, 'toString', 'valueOf', 'hasOwnProperty', '__defineGetter__', 'status ', ' status', 'Status', 'STATUS',
      'paused-reason', 'pausedReason', 'circuit_breaker_State', '', '\u0000', 'status\u0000')
  },
  { weight: 1, arbitrary: anyText(10) }
)

const valueTextFor = (name: string): fc.Arbitrary<string> =>
  name === 'status' ? enumValueText(STATUSES) : name === 'circuit_breaker_state' ? enumValueText(BREAKER_STATES) : name === 'paused_reason' ? reasonValueText : anyValueText

const ws = fc.constantFrom('', '', '', ' ', '\n', '\t', '\r\n  ')

/** One object member as text: the key (perhaps with escaped characters), white space, the value. */
const member = keyName.chain((name) => fc.tuple(fc.constant(name), fc.array(fc.boolean(), { maxLength: 6 }), fc.boolean(), valueTextFor(name), ws, ws))
  .map(([name, escape, upper, value, before, after]) => `${before}${stringLiteral(name, escape, upper)}${after}:${before}${value}${after}`)

/** Objects mixing writable and other keys, duplicates included (the names come from a small set). */
const objectText = fc.tuple(fc.array(member, { maxLength: 6 }), ws).map(([members, space]) => `${space}{${members.join(',')}}${space}`)

/** An object body with a few characters deleted, inserted or replaced. */
const mutatedText = fc.tuple(objectText, fc.array(fc.tuple(fc.nat(), fc.constantFrom('delete', 'insert', 'replace'), fc.constantFrom(...'{}[]":,\\ ntfule0-.+\u0000'.split(''))), { minLength: 1, maxLength: 3 }))
  .map(([text, edits]) => {
    let out = text
    for (const [position, edit, char] of edits) {
      const at = out.length === 0 ? 0 : position % out.length
      out = edit === 'delete' ? out.slice(0, at) + out.slice(at + 1) : edit === 'insert' ? out.slice(0, at) + char + out.slice(at) : out.slice(0, at) + char + out.slice(at + 1)
    }
    return out
  })

/** Deep nesting, at the top or under a key, from 1 to 12 000 levels (beyond 16 KiB the answer is a 413). */
const deepText = fc.tuple(fc.integer({ min: 1, max: 12_000 }), fc.constantFrom('array', 'object'), fc.constantFrom('', 'status', 'paused_reason', 'metadata', 'x'), fc.boolean())
  .map(([depth, kind, under, withValid]) => {
    const nested = kind === 'array' ? '['.repeat(depth) + ']'.repeat(depth) : '{"a":'.repeat(depth) + '0' + '}'.repeat(depth)
    if (under === '') return nested
    return `{${withValid ? '"status":"running",' : ''}${jsonText(under)}:${nested}}`
  })

const oddText = fc.constantFrom('', ' ', '\n', 'null', 'true', '0', '"running"', '[]', '{}', '[{"status":"running"}]', '{', '}', '{"status":"running"',
  '{"status":"running"} ', '{"status":"running"}x', '{"status":"running"}{}', '\ufeff{"status":"running"}', '\ufeff\ufeff{"status":"running"}',
  '{"status":"running",}', '{"status":"running"}\u0000', '{status:"running"}', "{'status':'running'}", '{"status":"running" "paused_reason":null}',
  '{"status" : "running" , "status" : "stopped"}', '{"status":"stopped","status":"bogus"}', '{"status":"bogus","status":"stopped"}', '{"":1}')

/** Reasons the contract accepts once trimmed, padded with white space (and things that look like it). */
const validReason = fc.tuple(fc.string({ unit: spaceUnit, maxLength: 3 }), fc.oneof(anyText(40), fc.string({ unit: 'binary', minLength: 490, maxLength: 500 })), fc.string({ unit: spaceUnit, maxLength: 3 }))
  .map(([lead, core, trail]) => lead + core + trail)
  .filter((reason) => {
    const trimmed = reason.trim()
    const characters = [...trimmed].length
    return characters >= 1 && characters <= 500 && !trimmed.includes('\u0000') && isWellFormed(trimmed)
  })
/** Bodies the contract accepts: at least one writable field, each with an allowed value. */
const validBody = fc.record({
  status: fc.constantFrom(...STATUSES),
  paused_reason: fc.option(validReason, { nil: null }),
  circuit_breaker_state: fc.constantFrom(...BREAKER_STATES)
}, { requiredKeys: [] }).filter((body) => Object.keys(body).length > 0)
const bodyText = fc.oneof(
  { weight: 8, arbitrary: objectText },
  { weight: 4, arbitrary: validBody.map(jsonText) },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 4 }).map(jsonText) },
  { weight: 2, arbitrary: mutatedText },
  { weight: 1, arbitrary: deepText },
  { weight: 1, arbitrary: oddText }
)

const authChoice: fc.Arbitrary<AuthChoice> = fc.oneof(
  { weight: 20, arbitrary: fc.constant({ kind: 'service' as const }) },
  { weight: 1, arbitrary: fc.constantFrom('bearer', 'BEARER', 'bEaReR').map((scheme) => ({ kind: 'scheme' as const, scheme })) },
  { weight: 1, arbitrary: fc.constantFrom({ kind: 'reader' as const }, { kind: 'none' as const }, { kind: 'tampered' as const }) },
  {
    weight: 1,
    arbitrary: fc.tuple(fc.constantFrom('', 'Bearer ', 'bearer ', 'Basic ', 'Bearer eyJ'), fc.string({ unit: headerChar, maxLength: 60 }))
      .map(([prefix, rest]) => ({ kind: 'garbage' as const, value: prefix + rest }))
  }
)

const JSON_TYPES = ['application/json', 'application/merge-patch+json'] as const
/** Content types the contract accepts, in every spelling HTTP allows, and ones it refuses. */
const contentType: fc.Arbitrary<PatchCase['contentType']> = fc.oneof(
  {
    weight: 12,
    arbitrary: fc.tuple(fc.mixedCase(fc.constantFrom(...JSON_TYPES)), fc.constantFrom('', ' ', '\t'),
      fc.array(fc.tuple(fc.constantFrom('', ' '), fc.constantFrom('charset=utf-8', 'charset=UTF-8', 'charset="utf-8"', 'charset=latin1', 'charset=utf-16', 'q=1', 'x="a;b"', 'profile="urn:x"')), { maxLength: 2 }))
      .map(([essence, space, parameters]) => ({ value: `${essence}${space}${parameters.map(([gap, parameter]) => `;${gap}${parameter}`).join('')}`, json: true }))
  },
  {
    weight: 2,
    arbitrary: fc.oneof(
      fc.constantFrom('text/plain', 'application/jsonx', 'application/json-patch+json', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x',
        'application/*', '*/*', 'json', 'application/ json', 'application/json+merge-patch', 'text/json', 'application/vnd.api+json', 'application', '', ';application/json'),
      fc.string({ unit: headerChar, maxLength: 40 }).filter((value) => !/^\s*application\/(json|merge-patch\+json)\s*(;|$)/i.test(value))
    ).map((value) => ({ value, json: false }))
  },
  { weight: 1, arbitrary: fc.constant({ value: undefined, json: false }) }
)

const ifMatchChoice: fc.Arbitrary<IfMatchChoice> = fc.oneof(
  { weight: 12, arbitrary: fc.constant({ kind: 'absent' as const }) },
  { weight: 4, arbitrary: fc.constantFrom({ kind: 'current' as const }, { kind: 'star' as const }, { kind: 'weak' as const }, { kind: 'stale' as const }) },
  { weight: 1, arbitrary: fc.array(fc.constantFrom('"x"', 'W/"x"', '""', 'nope', ''), { maxLength: 3 }).map((others) => ({ kind: 'listed' as const, others })) },
  { weight: 2, arbitrary: fc.string({ unit: fc.oneof(headerChar, fc.constantFrom('*', '"', ',', 'W/')), maxLength: 40 }).map((value) => ({ kind: 'garbage' as const, value })) }
)

// ---------------------------------------------------------------------------------------------------------------

await writeRow(db.admin, STEADY)

t.test('PATCH with generated bodies and headers: the model\'s answer, the row unchanged on refusal, never a 5xx', async (t) => {
  await writeRow(db.admin, STEADY)
  const tally = new Tally()
  const cases = fc.record({ auth: authChoice, contentType, ifMatch: ifMatchChoice, body: bodyText.map((text) => Buffer.from(text, 'utf8')) })
  await checkProperty(t, 'mixed PATCH requests', runsOf(SHARE.mixed), cases, async (c) => {
    const before = await rowText(db.admin) as string
    const etag = needsEtag(c.ifMatch) ? await currentEtag() : undefined
    const headers: Record<string, string> = { ...authHeader(c.auth), ...ifMatchHeader(c.ifMatch, etag) }
    if (c.contentType.value !== undefined) headers['content-type'] = c.contentType.value
    const answer = await sendPatch(c.body, headers)
    tally.add(answer)
    assertPatchAnswer(answer, patchOutcome(c, etag), before, await rowText(db.admin) as string)
    assertPrototypeIntact()
  })
  t.comment(`mixed PATCH answers: ${tally.text()}`)
  for (const reached of ['200', '400 malformed_json', '400 invalid_request', '400 unknown_field', '401', '403', '412', '413', '415']) {
    t.ok(tally.has(reached), `the generators reach ${reached}`)
  }
})

t.test('valid generated PATCHes are accepted and write exactly what was asked; the scheduler\'s columns stay as they were', async (t) => {
  // The scheduler's own columns, generated too, so that "untouched" is checked against more than one row.
  const schedulerRow = fc.option(fc.record({
    instance_id: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 40 }),
    poll_count: fc.integer({ min: 0, max: 2 ** 31 - 1 }),
    dispatch_count: fc.nat({ max: 2 ** 31 - 1 }),
    error_count: fc.nat({ max: 1000 }),
    metadata: fc.jsonValue({ maxDepth: 2, stringUnit: 'grapheme' })
  }), { freq: 3 })
  const cases = fc.record({
    body: validBody,
    contentType: fc.mixedCase(fc.constantFrom(...JSON_TYPES)),
    scheme: fc.constantFrom('Bearer', 'bearer', 'BEARER'),
    ifMatch: fc.constantFrom<IfMatchChoice>({ kind: 'absent' }, { kind: 'current' }, { kind: 'star' }, { kind: 'listed', others: ['"x"'] }),
    scheduler: schedulerRow
  })
  let accepted = 0
  await checkProperty(t, 'valid PATCH requests', runsOf(SHARE.valid), cases, async (c) => {
    if (c.scheduler !== null) await writeRow(db.admin, { ...STEADY, ...c.scheduler })
    const before = await rowText(db.admin) as string
    const etag = needsEtag(c.ifMatch) ? await currentEtag() : undefined
    const bytes = Buffer.from(JSON.stringify(c.body), 'utf8')
    const expected = bodyOutcome(bytes)
    assert.equal(expected.status, 200, 'the generator makes valid bodies only')
    const answer = await sendPatch(bytes, { authorization: `${c.scheme} ${serviceToken}`, 'content-type': c.contentType, ...ifMatchHeader(c.ifMatch, etag) })
    const after = await rowText(db.admin) as string
    assertPatchAnswer(answer, expected, before, after)
    // What was asked, field by field, straight from the body sent.
    const stored = JSON.parse(after) as Record<string, unknown>
    if (c.body.status !== undefined) assert.equal(stored.status, c.body.status)
    if (c.body.circuit_breaker_state !== undefined) assert.equal(stored.circuit_breaker_state, c.body.circuit_breaker_state)
    if (c.body.paused_reason !== undefined) assert.equal(stored.paused_reason, c.body.paused_reason === null ? null : c.body.paused_reason.trim())
    // The next GET shows the same row under the ETag the PATCH answered.
    const next = fromInject(await app.inject({ method: 'GET', url: '/heartbeat', headers: service }))
    assert.equal(next.headers.etag, answer.headers.etag, 'the next GET has the PATCH\'s ETag')
    accepted++
  })
  t.equal(accepted, runsOf(SHARE.valid), 'every valid PATCH was accepted')
  await writeRow(db.admin, STEADY)
})

/** Invalid UTF-8, as RFC 3629 and the Unicode standard's tables list it. */
const INVALID_UTF8: ReadonlyArray<readonly [string, readonly number[]]> = [
  ['a lone continuation byte', [0x80]],
  ['a continuation byte 0xBF', [0xbf]],
  ['0xFE', [0xfe]],
  ['0xFF', [0xff]],
  ['0xC0 0xAF, an overlong "/"', [0xc0, 0xaf]],
  ['0xC1 0xBF, overlong', [0xc1, 0xbf]],
  ['0xE0 0x80 0xAF, an overlong "/"', [0xe0, 0x80, 0xaf]],
  ['0xF0 0x80 0x80 0xAF, an overlong "/"', [0xf0, 0x80, 0x80, 0xaf]],
  ['0xC0 0x80, an overlong NUL (modified UTF-8)', [0xc0, 0x80]],
  ['0xED 0xA0 0x80, an encoded high surrogate (CESU-8)', [0xed, 0xa0, 0x80]],
  ['0xED 0xBF 0xBF, an encoded low surrogate', [0xed, 0xbf, 0xbf]],
  ['0xF4 0x90 0x80 0x80, above U+10FFFF', [0xf4, 0x90, 0x80, 0x80]],
  ['0xF5 0x80 0x80 0x80', [0xf5, 0x80, 0x80, 0x80]],
  ['0xF8 0x88 0x80 0x80 0x80, a five-byte form', [0xf8, 0x88, 0x80, 0x80, 0x80]],
  ['0xE2 0x82, a truncated euro sign', [0xe2, 0x82]],
  ['0xC3, a truncated é', [0xc3]],
  ['0xE9, é in Latin-1', [0xe9]],
  ['0xE9 0x74 0xE9, "été" in Latin-1', [0xe9, 0x74, 0xe9]],
  ['0x80 0x80 0x80, continuation bytes only', [0x80, 0x80, 0x80]]
]

t.test('raw bytes: random bytes and invalid UTF-8 anywhere in a body are refused, never stored as U+FFFD', async (t) => {
  await writeRow(db.admin, STEADY)
  const tally = new Tally()
  const placed = fc.tuple(fc.constantFrom(...INVALID_UTF8), fc.constantFrom('reason', 'key', 'outside', 'start', 'end'), fc.string({ unit: chars(0x20, 0x7e), maxLength: 10 }), fc.constantFrom(...JSON_TYPES))
    .map(([[, sequence], where, text, type]) => {
      const bad = Buffer.from(sequence)
      const ascii = text.replace(/["\\]/g, '')
      const parts: Buffer[] = where === 'reason'
        ? [Buffer.from(`{"status":"stopping","paused_reason":"${ascii}`), bad, Buffer.from('"}')]
        : where === 'key'
          ? [Buffer.from('{"status":"stopping","'), bad, Buffer.from(`${ascii}":1}`)]
          : where === 'outside'
            ? [Buffer.from('{"status":"stopping",'), bad, Buffer.from('"paused_reason":null}')]
            : where === 'start' ? [bad, Buffer.from('{"status":"stopping"}')] : [Buffer.from('{"status":"stopping"}'), bad]
      return { body: Buffer.concat(parts), type }
    })
  const flipped = fc.tuple(objectText, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }), fc.constantFrom(...JSON_TYPES))
    .map(([text, edits, type]) => {
      const body = Buffer.from(text, 'utf8')
      for (const [position, byte] of edits) if (body.length > 0) body[position % body.length] = byte
      return { body, type }
    })
  const random = fc.tuple(fc.uint8Array({ maxLength: 96 }), fc.constantFrom(...JSON_TYPES)).map(([bytes, type]) => ({ body: Buffer.from(bytes), type }))
  await checkProperty(t, 'raw byte bodies', runsOf(SHARE.bytes), fc.oneof({ weight: 3, arbitrary: placed }, { weight: 3, arbitrary: flipped }, { weight: 1, arbitrary: random }), async (c) => {
    const before = await rowText(db.admin) as string
    const answer = await sendPatch(c.body, { ...service, 'content-type': c.type })
    tally.add(answer)
    assertPatchAnswer(answer, bodyOutcome(c.body), before, await rowText(db.admin) as string)
    if (!c.body.includes(Buffer.from('\ufffd')) && !before.includes('\ufffd')) assert.ok(!(await rowText(db.admin) as string).includes('\ufffd'), 'no replacement character was stored')
  })
  t.comment(`raw byte answers: ${tally.text()}`)
  t.ok(tally.has('400 malformed_json'), 'invalid bytes reach the parser')

  // Each sequence, once, in paused_reason: the case that used to be stored with U+FFFD instead of what was sent.
  for (const [name, sequence] of INVALID_UTF8) {
    const before = await rowText(db.admin)
    const body = Buffer.concat([Buffer.from('{"status":"stopping","paused_reason":"deploy '), Buffer.from(sequence), Buffer.from('"}')])
    const answer = await sendPatch(body, { ...service, 'content-type': 'application/json' })
    const problem = assertProblem(answer, { status: 400, codes: ['malformed_json'] })
    t.match(problem.detail, /UTF-8/, `${name}: 400 malformed_json, the detail says UTF-8`)
    t.equal(await rowText(db.admin), before, `${name}: row unchanged`)
  }
  // Controls: the same bodies in valid UTF-8 are stored exactly as sent, U+FFFD included when that is what was sent.
  for (const [name, reason] of [['é as UTF-8', 'déploy'], ['a 4-byte emoji', 'deploy 🚀'], ['U+FFFD itself, sent as valid UTF-8', 'deploy \ufffd'], ['U+FFFF, a noncharacter', 'deploy \uffff']] as const) {
    const answer = await sendPatch(Buffer.from(JSON.stringify({ status: 'stopping', paused_reason: reason }), 'utf8'), { ...service, 'content-type': 'application/json; charset=latin1' })
    t.equal(answer.status, 200, `${name}: 200 (the charset parameter is ignored: JSON is UTF-8)`)
    t.equal((JSON.parse(await rowText(db.admin) as string) as { paused_reason: string }).paused_reason, reason, `${name}: stored as sent`)
  }
  await writeRow(db.admin, STEADY)
})

t.test('prototype-pollution keys at any depth, in any spelling: refused, the row unchanged, Object.prototype untouched', async (t) => {
  await writeRow(db.admin, STEADY)
  const tally = new Tally()
  const pollutedBody = fc.record({
    key: fc.constantFrom(...POLLUTING),
    escape: fc.array(fc.boolean(), { maxLength: 11 }),
    upper: fc.boolean(),
    inner: fc.constantFrom('{"polluted":"yes"}', '{"prototype":{"polluted":"yes"}}', '{"prototype":null}', '{"prototype":1}', '{"toString":"x"}', 'null', '"x"', '[]', '{}', '[{"polluted":"yes"}]'),
    carrier: keyName,
    path: fc.array(fc.oneof(fc.constant<null>(null), keyName), { maxLength: 6 }),
    siblings: fc.array(member, { maxLength: 3 }),
    type: fc.constantFrom(...JSON_TYPES)
  }).map((c) => {
    let node = `{${stringLiteral(c.key, c.escape, c.upper)}:${c.inner}}`
    for (const step of [...c.path].reverse()) node = step === null ? `[${node}]` : `{${jsonText(step)}:${node}}`
    const top = c.path.length === 0 && c.siblings.length === 0 ? node : `{${[...c.siblings, c.path.length === 0 ? node.slice(1, -1) : `${jsonText(c.carrier)}:${node}`].join(',')}}`
    return { body: Buffer.from(top, 'utf8'), type: c.type }
  })
  await checkProperty(t, 'polluting keys', runsOf(SHARE.pollution), pollutedBody, async (c) => {
    const before = await rowText(db.admin) as string
    const answer = await sendPatch(c.body, { ...service, 'content-type': c.type })
    tally.add(answer)
    assertPatchAnswer(answer, bodyOutcome(c.body), before, await rowText(db.admin) as string)
    assertPrototypeIntact()
  })
  t.comment(`polluting-key answers: ${tally.text()}`)
  t.ok(tally.has('400 malformed_json'), '__proto__ and constructor.prototype are refused by the parser')
  t.ok(tally.has('400 unknown_field'), 'constructor and prototype as plain keys are unknown fields')

  // Beyond the route tests' top-level cases: nested, escaped, in arrays, with null and non-object values.
  const cases: Array<[string, string, string]> = [
    ['__proto__ two levels down under an unknown key', '{"status":"running","x":{"y":{"__proto__":{"polluted":"yes"}}}}', 'malformed_json'],
    ['__proto__ inside an array', '{"status":"running","x":[1,{"__proto__":{"polluted":"yes"}}]}', 'malformed_json'],
    ['__proto__ under paused_reason', '{"paused_reason":{"__proto__":{"polluted":"yes"}}}', 'malformed_json'],
    ['__proto__: null', '{"status":"running","__proto__":null}', 'malformed_json'],
    ['__proto__ written with \\u escapes', '{"status":"running","\\u005f\\u005F\\u0070\\u0072\\u006f\\u0074\\u006F\\u005f\\u005f":{"polluted":"yes"}}', 'malformed_json'],
    ['__proto__ with white space before the colon', '{"status":"running","__proto__" \n :{"polluted":"yes"}}', 'malformed_json'],
    ['constructor.prototype three levels down', '{"x":{"y":{"constructor":{"prototype":{"polluted":"yes"}}}}}', 'malformed_json'],
    ['constructor.prototype written with \\u escapes', '{"\\u0063onstructor":{"\\u0070rototype":{"polluted":"yes"}}}', 'malformed_json'],
    ['constructor: {prototype: null}', '{"constructor":{"prototype":null}}', 'malformed_json'],
    ['constructor as a string', '{"status":"running","constructor":"x"}', 'unknown_field'],
    ['constructor: null', '{"status":"running","constructor":null}', 'unknown_field'],
    ['constructor without prototype', '{"constructor":{"polluted":"yes"}}', 'unknown_field'],
    ['prototype at the top', '{"status":"running","prototype":{"polluted":"yes"}}', 'unknown_field'],
    ['prototype nested', '{"x":{"prototype":{"polluted":"yes"}}}', 'unknown_field'],
    ['__proto__ as a string value (not a key)', '{"status":"running","paused_reason":"__proto__"}', '200'],
    ['"constructor" as the reason', '{"paused_reason":"constructor.prototype"}', '200']
  ]
  for (const [name, text, code] of cases) {
    await writeRow(db.admin, STEADY)
    const before = await rowText(db.admin)
    const answer = await sendPatch(Buffer.from(text), { ...service, 'content-type': 'application/merge-patch+json' })
    if (code === '200') {
      t.equal(answer.status, 200, `${name}: 200`)
    } else {
      t.equal(assertProblem(answer, { status: 400 }).code, code, `${name}: 400 ${code}`)
      t.equal(await rowText(db.admin), before, `${name}: row unchanged`)
    }
    t.doesNotThrow(assertPrototypeIntact, `${name}: Object.prototype untouched`)
  }
  await writeRow(db.admin, STEADY)
})

t.test('deep nesting: 10 000 levels is a 413 (the body limit comes first); what fits in 16 KiB is parsed and refused with a 400', async (t) => {
  await writeRow(db.admin, STEADY)
  const cases: Array<[string, string, number, string]> = [
    ['10 000 nested arrays', '['.repeat(10_000) + ']'.repeat(10_000), 413, 'body_too_large'],
    ['10 000 nested objects', '{"a":'.repeat(10_000) + '0' + '}'.repeat(10_000), 413, 'body_too_large'],
    ['100 000 nested arrays, unterminated', '['.repeat(100_000), 413, 'body_too_large'],
    ['8 000 nested arrays at the top (16 000 bytes)', '['.repeat(8000) + ']'.repeat(8000), 400, 'invalid_request'],
    ['8 000 nested arrays, unterminated', '['.repeat(8000), 400, 'malformed_json'],
    ['8 000 nested arrays under an unknown key', `{"x":${'['.repeat(8000)}${']'.repeat(8000)}}`, 400, 'unknown_field'],
    ['8 000 nested arrays as paused_reason', `{"paused_reason":${'['.repeat(8000)}${']'.repeat(8000)}}`, 400, 'invalid_request'],
    ['8 000 nested arrays as status', `{"status":${'['.repeat(8000)}${']'.repeat(8000)}}`, 400, 'invalid_request'],
    ['2 500 nested objects under metadata', `{"status":"running","metadata":${'{"a":'.repeat(2500)}0${'}'.repeat(2500)}}`, 400, 'unknown_field'],
    ['2 500 nested objects ending in __proto__', `{"x":${'{"a":'.repeat(2500)}{"__proto__":{"polluted":"yes"}}${'}'.repeat(2500)}}`, 400, 'malformed_json']
  ]
  for (const [name, text, status, code] of cases) {
    for (const type of JSON_TYPES) {
      const before = await rowText(db.admin)
      const answer = await sendPatch(Buffer.from(text), { ...service, 'content-type': type })
      t.equal(assertProblem(answer, { status }).code, code, `${name} (${type}): ${status} ${code}`)
      t.equal(await rowText(db.admin), before, `${name} (${type}): row unchanged`)
    }
  }
  t.doesNotThrow(assertPrototypeIntact)
  const after = fromInject(await app.inject({ method: 'GET', url: '/heartbeat', headers: service }))
  t.equal(after.status, 200, 'the app still serves')
})

t.test('huge strings: up to and beyond the 16 KiB body limit, the boundary exact to the byte', async (t) => {
  await writeRow(db.admin, STEADY)
  const reasonOf = (bytes: number, char = 'x'): Buffer => {
    const frame = Buffer.byteLength('{"paused_reason":""}')
    const count = Math.floor((bytes - frame) / Buffer.byteLength(char))
    return Buffer.from(`{"paused_reason":"${char.repeat(count)}${'x'.repeat(bytes - frame - count * Buffer.byteLength(char))}"}`)
  }
  const cases: Array<[string, Buffer, number, string]> = [
    ['a reason making the body exactly 16 384 bytes', reasonOf(BODY_LIMIT), 400, 'invalid_request'],
    ['16 385 bytes', reasonOf(BODY_LIMIT + 1), 413, 'body_too_large'],
    ['16 384 bytes of 3-byte characters', reasonOf(BODY_LIMIT, '€'), 400, 'invalid_request'],
    ['16 385 bytes of 4-byte characters', reasonOf(BODY_LIMIT + 1, '😀'), 413, 'body_too_large'],
    ['1 MiB', reasonOf(1024 * 1024), 413, 'body_too_large'],
    ['16 MiB', reasonOf(16 * 1024 * 1024), 413, 'body_too_large'],
    ['an unknown key of 16 000 characters', Buffer.from(`{"${'k'.repeat(16_000)}":1}`), 400, 'unknown_field'],
    ['16 000 characters of white space around a valid body', Buffer.from(`${' '.repeat(16_000)}{"status":"running"}`), 200, ''],
    ['a reason of 500 characters padded with 15 000 spaces', Buffer.from(`{"paused_reason":"${' '.repeat(7500)}${'r'.repeat(500)}${' '.repeat(7500)}"}`), 200, ''],
    ['a reason of 501 characters padded with spaces', Buffer.from(`{"paused_reason":"${' '.repeat(7500)}${'r'.repeat(501)}${' '.repeat(7500)}"}`), 400, 'invalid_request'],
    ['5 000 escaped characters (\\u0078, 30 000 bytes)', Buffer.from(`{"paused_reason":"${'\\u0078'.repeat(5000)}"}`), 413, 'body_too_large'],
    ['2 000 escaped characters (\\u0078)', Buffer.from(`{"paused_reason":"${'\\u0078'.repeat(2000)}"}`), 400, 'invalid_request'],
    ['500 escaped characters (\\u0078)', Buffer.from(`{"paused_reason":"${'\\u0078'.repeat(500)}"}`), 200, '']
  ]
  for (const [name, body, status, code] of cases) {
    const before = await rowText(db.admin) as string
    const answer = await sendPatch(body, { ...service, 'content-type': 'application/json' })
    const after = await rowText(db.admin) as string
    t.equal(answer.status, status, `${name}: ${status}`)
    if (status !== 200) t.equal(assertProblem(answer).code, code, `${name}: ${code}`)
    t.equal(bodyOutcome(body).status, status, `${name}: the model agrees`)
    t.doesNotThrow(() => { assertPatchAnswer(answer, bodyOutcome(body), before, after) }, `${name}: the row as the model says (unchanged on refusal)`)
  }
  await writeRow(db.admin, STEADY)
})

t.test('duplicate keys: the last one wins, as JSON.parse, PostgreSQL\'s jsonb and most parsers do', async (t) => {
  const cases: Array<[string, string, number, Record<string, unknown>]> = [
    ['status twice', '{"status":"running","status":"stopped"}', 200, { status: 'stopped' }],
    ['status twice, the first not allowed', '{"status":"bogus","status":"stopping"}', 200, { status: 'stopping' }],
    ['status twice, the last not allowed', '{"status":"stopped","status":"bogus"}', 400, {}],
    ['paused_reason, then null', '{"status":"stopping","paused_reason":"deploy","paused_reason":null}', 200, { status: 'stopping', paused_reason: null }],
    ['paused_reason null, then a reason', '{"paused_reason":null,"paused_reason":"  deploy  "}', 200, { paused_reason: 'deploy' }],
    ['paused_reason, then one of 501 characters', `{"paused_reason":"ok","paused_reason":"${'r'.repeat(501)}"}`, 400, {}],
    ['circuit_breaker_state three times', '{"circuit_breaker_state":"OPEN","circuit_breaker_state":"CLOSED","circuit_breaker_state":"HALF_OPEN"}', 200, { circuit_breaker_state: 'HALF_OPEN' }],
    ['status spelled twice, once with escapes', '{"status":"stopped","\\u0073tatus":"running"}', 200, { status: 'running' }],
    ['an unknown key twice', '{"status":"running","x":1,"x":2}', 400, {}]
  ]
  for (const [name, text, status, stored] of cases) {
    await writeRow(db.admin, { ...STEADY, status: 'stopping', paused_reason: 'before', circuit_breaker_state: 'OPEN' })
    const before = await rowText(db.admin) as string
    const body = Buffer.from(text)
    t.equal(bodyOutcome(body).status, status, `${name}: the model agrees`)
    const answer = await sendPatch(body, { ...service, 'content-type': 'application/json' })
    const after = await rowText(db.admin) as string
    t.equal(answer.status, status, `${name}: ${status}`)
    t.doesNotThrow(() => { assertPatchAnswer(answer, bodyOutcome(body), before, after) }, `${name}: answer and row as the model says`)
    const row = JSON.parse(after) as Record<string, unknown>
    for (const [field, value] of Object.entries(stored)) t.equal(row[field], value, `${name}: ${field} is the last one sent`)
  }
  await writeRow(db.admin, STEADY)
})

// ---------------------------------------------------------------------------------------------------------------
// Query strings and conditional GETs.

type Route = '/heartbeat' | '/heartbeat/liveness'
interface QueryCase {
  route: Route
  query: string
  auth: AuthChoice
  ifNoneMatch: IfMatchChoice
  row: number
}

const ROWS: RowShape[] = [
  STEADY,
  { ...STEADY, status: 'stopping', paused_reason: 'deploy' },
  { ...STEADY, status: 'stopped' },
  { ...STEADY, circuit_breaker_state: 'OPEN' },
  { ...STEADY, circuit_breaker_state: 'HALF_OPEN' },
  { ...STEADY, nextPollIn: -30 },
  { ...STEADY, nextPollIn: -600, lastPollAgo: 700 },
  { ...STEADY, nextPollIn: null },
  { ...STEADY, status: 'stopping' }
]

const GRACE_TEXT = /^(?:\d+(?:\.\d*)?|\.\d+)$/
/** The contract: ?grace= is 0 to 86400 seconds, ?strict= true or false, each at most once; other parameters are ignored. */
function queryValid (query: string): { valid: boolean, grace: number | undefined, strict: boolean } {
  const params = new URLSearchParams(query)
  const graces = params.getAll('grace')
  const stricts = params.getAll('strict')
  const graceOk = graces.length === 0 || (graces.length === 1 && GRACE_TEXT.test(graces[0] as string) && Number(graces[0]) <= 86400)
  const strictOk = stricts.length === 0 || (stricts.length === 1 && ['true', 'false'].includes(stricts[0] as string))
  return { valid: graceOk && strictOk, grace: graces.length === 1 ? Number(graces[0]) : undefined, strict: stricts[0] === 'true' }
}

const graceValue = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: 0, max: 86400 }).map(String) },
  { weight: 2, arbitrary: fc.double({ min: 0, max: 86400, noNaN: true }).map((value) => String(value)) },
  { weight: 2, arbitrary: fc.constantFrom('0', '86400', '86400.0', '86400.0000001', '86401', '.5', '5.', '00012', '-0', '-1', '1e3', '1E3', 'Infinity', 'NaN', '0x10', '0b1', ' 5', '5 ', '+5', '', '%35', '5%00', '%', '%zz', '%ff', '1,5', '1_000', '١٢', '５', '1e999') },
  { weight: 1, arbitrary: fc.string({ unit: chars(0x21, 0x7e), maxLength: 8 }) }
)
const strictValue = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom('true', 'false') },
  { weight: 1, arbitrary: fc.constantFrom('TRUE', 'True', '1', '0', 'yes', 'on', '', 'null', 'true ', '%74rue', 'tru', 'false%00') },
  { weight: 1, arbitrary: fc.string({ unit: chars(0x21, 0x7e), maxLength: 6 }) }
)
const queryPart = fc.oneof(
  { weight: 4, arbitrary: graceValue.map((value) => `grace=${value}`) },
  { weight: 3, arbitrary: strictValue.map((value) => `strict=${value}`) },
  { weight: 1, arbitrary: fc.constantFrom('grace', 'strict', 'gr%61ce=30', 'GRACE=5', 'grace[]=5', 'grace[0]=5', 'grace.x=5', '__proto__[grace]=5', 'constructor=1', 'strict%00=true', '=', '&', 'a=1', '%ff=%ff', 'grace=1;strict=true') },
  { weight: 1, arbitrary: fc.tuple(fc.string({ unit: chars(0x21, 0x7e), maxLength: 8 }), fc.string({ unit: chars(0x21, 0x7e), maxLength: 8 })).map(([key, value]) => `${key.replace(/[#&]/g, '')}=${value.replace(/[#&]/g, '')}`) }
)
const queryCase: fc.Arbitrary<QueryCase> = fc.record({
  route: fc.constantFrom<Route>('/heartbeat', '/heartbeat/liveness'),
  // As a client sends it: no raw space or '#' in a request target.
  query: fc.array(queryPart, { maxLength: 4 }).map((parts) => parts.join('&').replace(/#/g, '%23').replace(/ /g, '%20')),
  auth: fc.oneof(
    { weight: 6, arbitrary: fc.constant<AuthChoice>({ kind: 'reader' }) },
    { weight: 2, arbitrary: authChoice },
    { weight: 1, arbitrary: fc.constantFrom<AuthChoice>({ kind: 'none' }, { kind: 'tampered' }, { kind: 'garbage', value: 'Bearer x' }) }
  ),
  ifNoneMatch: fc.oneof({ weight: 6, arbitrary: fc.constant<IfMatchChoice>({ kind: 'absent' }) }, { weight: 2, arbitrary: ifMatchChoice }),
  row: fc.nat({ max: ROWS.length - 1 })
})

/** RFC 9110 If-None-Match on GET: `*` or any tag equal to the current one under weak comparison means 304. */
function notModified (choice: IfMatchChoice, etag: string): boolean {
  const opaque = (tag: string): string => tag.startsWith('W/') ? tag.slice(2) : tag
  switch (choice.kind) {
    case 'absent': case 'stale': return false
    case 'current': case 'star': case 'weak': case 'listed': return true
    case 'garbage': return choice.value.split(',').map((tag) => tag.trim()).some((tag) => tag === '*' || opaque(tag) === etag)
  }
}

t.test('GET /heartbeat and /heartbeat/liveness with generated query strings, tokens and If-None-Match', async (t) => {
  const tally = new Tally()
  let rowNow = -1
  let validQueries = 0
  await checkProperty(t, 'query strings', runsOf(SHARE.queries), queryCase, async (c) => {
    if (c.row !== rowNow) {
      await writeRow(db.admin, ROWS[c.row] as RowShape)
      rowNow = c.row
    }
    const url = c.query === '' ? c.route : `${c.route}?${c.query}`
    const expected = queryValid(c.query)
    const headers = { ...authHeader(c.auth) }
    let etag: string | undefined
    if (c.route === '/heartbeat' && expected.valid && c.ifNoneMatch.kind !== 'absent') {
      const plain = await app.inject({ method: 'GET', url, headers: reader })
      etag = String(plain.headers.etag)
      const condition = ifMatchHeader(c.ifNoneMatch, etag)['if-match']
      if (condition !== undefined) headers['if-none-match'] = condition
    }
    const before = await rowText(db.admin)
    const answer = fromInject(await app.inject({ method: 'GET', url, headers }))
    tally.add(answer)
    assert.ok(answer.status < 500 || (c.route === '/heartbeat/liveness' && answer.headers['content-type']?.startsWith('application/health+json') === true),
      `never a 5xx but a liveness verdict: ${answer.status} ${answer.body.slice(0, 200)}`)
    assert.equal(await rowText(db.admin), before, 'a GET changes nothing')
    if (!expected.valid) {
      assertProblem(answer, { status: 400, codes: ['invalid_request'] })
      return
    }
    validQueries++
    if (c.route === '/heartbeat/liveness') {
      // Public by default: the token, whatever it is, plays no part.
      const liveness = assertLivenessAnswer(answer, expected.strict)
      if (expected.grace !== undefined) assert.ok(Math.abs((liveness.grace_seconds ?? -1) - expected.grace) <= 0.0005, `grace_seconds ${liveness.grace_seconds} is ?grace=${expected.grace}`)
      return
    }
    const auth = c.auth.kind
    if (auth === 'none' || auth === 'garbage' || auth === 'tampered') { assertProblem(answer, { status: 401 }); return }
    // The verdict can change between the two requests when the row sits on a boundary (late/stale with a small
    // ?grace=): then the ETag has changed too, and a 200 with the new one is right.
    if (etag !== undefined && notModified(c.ifNoneMatch, etag) && !(answer.status === 200 && answer.headers.etag !== etag)) {
      assert.equal(answer.status, 304, `If-None-Match ${JSON.stringify(headers['if-none-match'])} matches ${etag}: 304`)
      assert.equal(answer.body, '', '304 has no body')
      assert.equal(answer.headers.etag, etag, '304 carries the ETag')
      return
    }
    const body = assertHeartbeatAnswer(answer)
    assert.deepEqual(body.heartbeat, rowAsShown(before as string), 'the answer shows the stored row')
    if (expected.grace !== undefined) assert.ok(Math.abs((body.liveness.grace_seconds ?? -1) - expected.grace) <= 0.0005, `grace_seconds is ?grace=${expected.grace}`)
  })
  t.comment(`query answers: ${tally.text()}`)
  for (const reached of ['200', '304', '400 invalid_request', '401', '503']) t.ok(tally.has(reached), `the generators reach ${reached}`)
  t.ok(validQueries > 0 && validQueries < runsOf(SHARE.queries), 'both valid and invalid query strings were generated')
  await writeRow(db.admin, STEADY)
})
