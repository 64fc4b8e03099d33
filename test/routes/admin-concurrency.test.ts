// PATCH /heartbeat under concurrency, over real HTTP (app.listen on loopback, fetch): many writers with the same
// If-Match (exactly one wins, the others get 412 and the winner's ETag, the row is the winner's), unconditional
// writers (each change lands whole), and readers during writes (every row they see is one of the complete states the
// writers write, with the verdict and the ETag of that row).
import assert from 'node:assert/strict'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import type { Liveness } from '../../src/domain/liveness.js'
import type { HeartbeatJson } from '../../src/domain/heartbeat.js'
import { entityTag } from '../../src/domain/representation.js'
import { assertHeartbeatAnswer, assertLivenessAnswer, assertProblem, fromFetch, rowAsShown, type Answer, type HeartbeatAnswer } from '../helpers/answers.js'
import { bearer, rowText, startTestApp, writeRow, type RowShape } from '../helpers/app.js'

// A generous statement timeout: twenty writers queue on one row lock, and this machine is shared.
const { app, db } = await startTestApp(t, { env: { DB_STATEMENT_TIMEOUT_MS: '15000' } })
await app.listen({ host: '127.0.0.1', port: 0 })
const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`

const service = await bearer('service_role')
const reader = await bearer('authenticated')
const WRITERS = 20
const ROUNDS = 5
const STEADY: RowShape = { nextPollIn: 3600, lastPollAgo: 10, poll_count: 41, dispatch_count: 17, error_count: 2, metadata: { observe_only: false, note: 'concurrency' } }
const SCHEDULER_OWNED = ['id', 'instance_id', 'started_at', 'last_poll_at', 'next_poll_at', 'poll_count', 'dispatch_count', 'error_count', 'metadata'] as const

interface Change { status: string, paused_reason: string | null, circuit_breaker_state: string }

async function patch (body: Change, headers: Record<string, string> = {}): Promise<Answer> {
  return await fromFetch(await fetch(`${base}/heartbeat`, {
    method: 'PATCH',
    headers: { ...service, 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body)
  }))
}

async function get (path: string, headers: Record<string, string> = reader): Promise<Answer> {
  return await fromFetch(await fetch(`${base}${path}`, { headers }))
}

const fieldsOf = (row: Record<string, unknown>): Change =>
  ({ status: row.status as string, paused_reason: row.paused_reason as string | null, circuit_breaker_state: row.circuit_breaker_state as string })

const schedulerColumns = (row: Record<string, unknown>): Record<string, unknown> =>
  Object.fromEntries(SCHEDULER_OWNED.map((column) => [column, row[column]]))

t.test(`${WRITERS} parallel PATCHes with the same If-Match: exactly one 200, the rest 412, the row is the winner's`, async (t) => {
  const winners: number[] = []
  for (let round = 0; round < ROUNDS; round++) {
    await writeRow(db.admin, STEADY)
    const before = JSON.parse(await rowText(db.admin) as string) as Record<string, unknown>
    const current = await get('/heartbeat', service)
    const etag = current.headers.etag as string
    // Every writer asks for a different complete state, so the row says which one won.
    const bodies: Change[] = Array.from({ length: WRITERS }, (_, i) => ({
      status: ['stopping', 'stopped', 'running'][i % 3] as string,
      paused_reason: `round ${round} writer ${i}`,
      circuit_breaker_state: ['OPEN', 'HALF_OPEN', 'CLOSED'][i % 3] as string
    }))
    const answers = await Promise.all(bodies.map(async (body) => await patch(body, { 'if-match': etag })))

    const won = answers.flatMap((answer, i) => answer.status === 200 ? [i] : [])
    t.equal(won.length, 1, `round ${round}: exactly one 200 (${answers.map((answer) => answer.status).join(' ')})`)
    t.equal(answers.filter((answer) => answer.status === 412).length, WRITERS - 1, `round ${round}: ${WRITERS - 1} × 412`)
    const i = won[0] as number
    winners.push(i)
    const winner = answers[i] as Answer
    const shown = assertHeartbeatAnswer(winner)
    t.same(fieldsOf(shown.heartbeat), bodies[i], `round ${round}: the winner's answer shows its change`)
    for (const [j, answer] of answers.entries()) {
      if (j === i) continue
      const problem = assertProblem(answer, { status: 412, codes: ['precondition_failed'] })
      assert.equal(problem.code, 'precondition_failed')
      // A loser waited for the winner's lock and compared against the row the winner left.
      assert.equal(answer.headers.etag, winner.headers.etag, `round ${round}: loser ${j}'s 412 carries the winner's ETag`)
    }
    const after = await rowText(db.admin) as string
    const stored = JSON.parse(after) as Record<string, unknown>
    t.same(fieldsOf(stored), bodies[i], `round ${round}: the stored row is the winner's change`)
    t.same(schedulerColumns(stored), schedulerColumns(before), `round ${round}: the scheduler's columns untouched`)
    t.same(shown.heartbeat, rowAsShown(after), `round ${round}: the winner's answer is the stored row`)
    const next = await get('/heartbeat', service)
    t.equal(next.headers.etag, winner.headers.etag, `round ${round}: GET has the winner's ETag`)
    t.same(assertHeartbeatAnswer(next).heartbeat, shown.heartbeat, `round ${round}: GET shows the winner's row`)
  }
  t.comment(`winners by writer index, rounds 1 to ${ROUNDS}: ${winners.join(', ')}`)
})

t.test(`${WRITERS} parallel unconditional PATCHes: all 200, each change lands whole, the row is the last one, updated_at never goes back`, async (t) => {
  for (let round = 0; round < ROUNDS; round++) {
    await writeRow(db.admin, STEADY)
    const bodies: Change[] = Array.from({ length: WRITERS }, (_, i) => ({
      status: ['running', 'stopping', 'stopped'][i % 3] as string,
      paused_reason: i % 4 === 0 ? null : `round ${round} writer ${i}`,
      circuit_breaker_state: ['CLOSED', 'OPEN', 'HALF_OPEN'][i % 3] as string
    }))
    const answers = await Promise.all(bodies.map(async (body) => await patch(body)))
    t.same(answers.map((answer) => answer.status), bodies.map(() => 200), `round ${round}: every PATCH is a 200`)
    const shown = answers.map((answer) => assertHeartbeatAnswer(answer))
    for (const [i, body] of bodies.entries()) {
      assert.deepEqual(fieldsOf((shown[i] as HeartbeatAnswer).heartbeat), body, `round ${round}: writer ${i} sees its own change, whole`)
    }
    t.pass(`round ${round}: each answer shows its own change, nothing of another's`)
    const stored = rowAsShown(await rowText(db.admin) as string)
    const last = shown.filter((answer) => JSON.stringify(answer.heartbeat) === JSON.stringify(stored))
    t.equal(last.length, 1, `round ${round}: the stored row is exactly one writer's answer (the last to commit)`)
    // updated_at follows the commit order: the change that stayed carries the latest of all the answers' updated_at.
    // (With now(), the transaction's start, most rounds failed here: the row kept an older updated_at than an earlier answer had shown.)
    const latest = shown.map((answer) => answer.heartbeat.updated_at).sort().at(-1)
    t.equal(stored.updated_at, latest, `round ${round}: the stored row has the latest updated_at of the ${WRITERS} changes`)
  }
})

t.test('readers during writes never see a half-applied change', async (t) => {
  const A: Change = { status: 'stopping', paused_reason: 'A', circuit_breaker_state: 'OPEN' }
  const B: Change = { status: 'running', paused_reason: null, circuit_breaker_state: 'CLOSED' }
  const VERDICT = { A: 'paused', B: 'alive' } as const
  const WRITES_PER_WRITER = 60
  await writeRow(db.admin, { ...STEADY, ...B })
  const scheduler = schedulerColumns(rowAsShown(await rowText(db.admin) as string))
  const which = (change: Change): 'A' | 'B' | undefined =>
    JSON.stringify(change) === JSON.stringify(A) ? 'A' : JSON.stringify(change) === JSON.stringify(B) ? 'B' : undefined

  let writing = true
  const seen = { heartbeat: { A: 0, B: 0 }, liveness: { paused: 0, alive: 0 }, database: { A: 0, B: 0 } }
  const writer = async (offset: number): Promise<void> => {
    for (let i = 0; i < WRITES_PER_WRITER && writing; i++) {
      const answer = await patch((i + offset) % 2 === 0 ? A : B)
      assert.equal(answer.status, 200, `write ${i}: ${answer.body.slice(0, 200)}`)
    }
  }
  const heartbeatReader = async (): Promise<void> => {
    while (writing) {
      const answer = await get('/heartbeat')
      const body = assertHeartbeatAnswer(answer)
      const state = which(fieldsOf(body.heartbeat))
      assert.ok(state !== undefined, `a half-applied change: ${JSON.stringify(fieldsOf(body.heartbeat))}`)
      assert.equal(body.liveness.state, VERDICT[state], `row ${state} has the verdict ${VERDICT[state]}`)
      assert.deepEqual(schedulerColumns(body.heartbeat), scheduler, 'the scheduler\'s columns as written')
      assert.equal(answer.headers.etag, entityTag(body.heartbeat as unknown as HeartbeatJson, body.liveness as Liveness), 'the ETag is that of the row and verdict in the body')
      seen.heartbeat[state]++
    }
  }
  const livenessReader = async (): Promise<void> => {
    while (writing) {
      const liveness = assertLivenessAnswer(await get('/heartbeat/liveness', {}), false)
      assert.ok(liveness.state === 'paused' || liveness.state === 'alive', `liveness of a complete state, got ${liveness.state}`)
      seen.liveness[liveness.state]++
    }
  }
  const databaseReader = async (): Promise<void> => {
    while (writing) {
      const state = which(fieldsOf(JSON.parse(await rowText(db.admin) as string) as Record<string, unknown>))
      assert.ok(state !== undefined, 'the database holds a complete state')
      seen.database[state]++
    }
  }
  const readers = Promise.all([heartbeatReader(), heartbeatReader(), heartbeatReader(), livenessReader(), databaseReader()])
  readers.catch(() => { writing = false }) // a reader's failure stops the writers too; it is reported below
  try {
    await Promise.all([writer(0), writer(1)])
  } finally {
    writing = false
  }
  await readers
  t.comment(`observed: ${JSON.stringify(seen)}`)
  t.ok(seen.heartbeat.A > 0 && seen.heartbeat.B > 0, 'GET /heartbeat saw both states')
  t.ok(seen.liveness.paused > 0 && seen.liveness.alive > 0, 'GET /heartbeat/liveness saw both verdicts')
  t.ok(seen.database.A > 0 && seen.database.B > 0, 'the database reader saw both states')
  t.pass(`${seen.heartbeat.A + seen.heartbeat.B + seen.liveness.paused + seen.liveness.alive} API reads during ${2 * WRITES_PER_WRITER} writes, every one a complete state`)
})
