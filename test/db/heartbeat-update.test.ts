// The database layer's write, called directly (no route, no policy mirror): the table's own RLS policies are the
// second layer, and a refusal is reported, never taken for success.
import t from 'tap'
import postgres from 'postgres'
import { UpdateRefusedError, updateHeartbeat, type DbIdentity } from '../../src/db/heartbeat.js'
import type { HeartbeatChanges } from '../../src/domain/patch.js'
import { deleteRow, rowText, skipEveryUpdate, writeRow } from '../helpers/app.js'
import { startTestDatabase } from '../helpers/database.js'

const db = await startTestDatabase()
t.teardown(db.close)
// The API's login role, exactly as the app connects.
const api = postgres(db.apiUrl, { onnotice: () => {}, max: 4 })
t.teardown(async () => { await api.end({ timeout: 1 }) })

/** What a promise rejected with (fails the test when it resolved). */
async function rejection (promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise
  } catch (error) {
    return error
  }
  throw new Error('expected a rejection, got a result')
}

const AUTHENTICATED: DbIdentity = { role: 'authenticated', claims: { role: 'authenticated', sub: 'reader' } }
const SERVICE: DbIdentity = { role: 'service_role', claims: { role: 'service_role', sub: 'ops' } }

t.test('as authenticated, RLS refuses the write: UpdateRefusedError, row unchanged', async (t) => {
  await writeRow(db.admin, { status: 'running', paused_reason: null })
  const before = await rowText(db.admin)
  let preconditionCalled = false
  const error = await rejection(updateHeartbeat(api, AUTHENTICATED, { status: 'stopping', paused_reason: 'deploy' }, () => { preconditionCalled = true }))
  t.type(error, UpdateRefusedError, 'refused with UpdateRefusedError')
  t.match(error, { role: 'authenticated', message: /no row-level security policy lets it update/ })
  t.equal(await rowText(db.admin), before, 'row byte for byte unchanged')
  t.notOk(preconditionCalled, 'no precondition ran: the row was never locked')

  // The same role can read the row: the refusal is about updating, not about seeing.
  const [visible] = await api.begin(async (tx) => {
    await tx`select set_config('role', 'authenticated', true)`
    return await tx`select status from public.eva_scheduler_heartbeat where id = 1`
  })
  t.equal(visible?.status, 'running', 'authenticated reads the row')
})

t.test('without the role switch, the login role itself may not write at all', async (t) => {
  await writeRow(db.admin)
  const before = await rowText(db.admin)
  await t.rejects(api`update public.eva_scheduler_heartbeat set status = 'stopped' where id = 1`, { code: '42501' })
  t.equal(await rowText(db.admin), before)
})

t.test('as service_role the change is made: only the given columns, updated_at = the database\'s clock at the update', async (t) => {
  await writeRow(db.admin, { status: 'running', paused_reason: null, circuit_breaker_state: 'CLOSED', updatedAgo: 600 })
  const before = JSON.parse(await rowText(db.admin) ?? 'null') as Record<string, unknown>
  const change = await updateHeartbeat(api, SERVICE, { status: 'stopping', paused_reason: 'deploy' })
  if (change === null) throw new Error('no change')
  t.equal(change.before.status, 'running')
  t.equal(change.before.paused_reason, null)
  t.equal(change.after.status, 'stopping')
  t.equal(change.after.paused_reason, 'deploy')
  t.equal(change.after.circuit_breaker_state, 'CLOSED', 'not given, not changed')
  t.equal(change.after.updated_at.getTime(), change.now.getTime(), 'updated_at is the database\'s clock at the update (statement_timestamp())')
  const after = JSON.parse(await rowText(db.admin) ?? 'null') as Record<string, unknown>
  const others = (row: Record<string, unknown>): Record<string, unknown> => {
    const { status: _s, paused_reason: _p, updated_at: _u, ...rest } = row
    return rest
  }
  t.same(others(after), others(before), 'every other column as it was')
  t.equal(after.status, 'stopping')
})

t.test('only writable columns are ever written, whatever the caller passes', async (t) => {
  await writeRow(db.admin, { instance_id: 'scheduler-0a1b2c3d' })
  const sneaky = { status: 'stopped', instance_id: 'supervisor-ffffffff', poll_count: 0 } as unknown as HeartbeatChanges
  const change = await updateHeartbeat(api, SERVICE, sneaky)
  t.equal(change?.after.status, 'stopped')
  t.equal(change?.after.instance_id, 'scheduler-0a1b2c3d', 'instance_id untouched')
  t.equal(change?.after.poll_count, 7, 'poll_count untouched')
  await t.rejects(updateHeartbeat(api, SERVICE, {}), TypeError, 'nothing to write is a programming error')
  await t.rejects(updateHeartbeat(api, SERVICE, { instance_id: 'x' } as unknown as HeartbeatChanges), TypeError)
})

t.test('a precondition that throws rolls everything back', async (t) => {
  await writeRow(db.admin)
  const before = await rowText(db.admin)
  const seen: string[] = []
  await t.rejects(updateHeartbeat(api, SERVICE, { status: 'stopped' }, ({ row }) => {
    seen.push(row.status)
    throw new Error('stale')
  }), { message: 'stale' })
  t.same(seen, ['running'], 'the precondition saw the locked row')
  t.equal(await rowText(db.admin), before)
})

t.test('no row: null, and nothing is inserted (for either role)', async (t) => {
  await deleteRow(db.admin)
  t.equal(await updateHeartbeat(api, SERVICE, { status: 'stopped' }), null)
  t.equal(await updateHeartbeat(api, AUTHENTICATED, { status: 'stopped' }), null)
  t.equal(await rowText(db.admin), null)
})

t.test('an UPDATE that changes no row is an error, not a success', async (t) => {
  await writeRow(db.admin)
  await skipEveryUpdate(db.admin, t)
  const before = await rowText(db.admin)
  const error = await rejection(updateHeartbeat(api, SERVICE, { status: 'stopped' }))
  t.type(error, UpdateRefusedError)
  t.match(error, { role: 'service_role', message: /changed no row/ })
  t.equal(await rowText(db.admin), before)
})

t.test('a policy that lets a role read but not write: the refusal names the role', async (t) => {
  // Give authenticated an UPDATE policy whose WITH CHECK refuses every new row: the lock succeeds, the write fails.
  await db.admin`create policy eva_test_check_refuses on public.eva_scheduler_heartbeat for update to authenticated using (true) with check (false)`
  t.teardown(async () => { await db.admin`drop policy if exists eva_test_check_refuses on public.eva_scheduler_heartbeat` })
  await writeRow(db.admin)
  const before = await rowText(db.admin)
  const error = await rejection(updateHeartbeat(api, AUTHENTICATED, { status: 'stopped' }))
  t.type(error, UpdateRefusedError)
  t.match(error, { role: 'authenticated', message: /permission denied/, cause: { code: '42501' } })
  t.equal(await rowText(db.admin), before)
})
