// Pause semantics end to end: the app, a demo scheduler polling every 0.2 s against the same PostgreSQL server,
// and an operator pausing and resuming through PATCH /heartbeat, seen through /heartbeat/liveness.
import t from 'tap'
import { DemoScheduler } from '../../src/embedded/demo-scheduler.js'
import { bearer, deleteRow, startTestApp } from '../helpers/app.js'

const { app, db } = await startTestApp(t)
await deleteRow(db.admin)
const errors: unknown[] = []
const scheduler = new DemoScheduler(db.admin, { intervalSeconds: 0.2, onError: (error) => errors.push(error) })

interface Row { status: string, paused_reason: string | null, poll_count: number, dispatch_count: number, instance_id: string }
const service = await bearer('service_role', { sub: 'ops' })

async function row (): Promise<Row | undefined> {
  const [found] = await db.admin<Row[]>`
    select status, paused_reason, poll_count, dispatch_count, instance_id from public.eva_scheduler_heartbeat where id = 1`
  return found
}

async function liveness (): Promise<{ code: number, state: string, status: string }> {
  const res = await app.inject({ method: 'GET', url: '/heartbeat/liveness' })
  const body = res.json<{ state: string, status: string }>()
  return { code: res.statusCode, state: body.state, status: body.status }
}

/** Polls `probe` until `done` says yes or 15 s pass (the machine may be busy); returns the last value seen. */
async function waitFor<T> (probe: () => Promise<T>, done: (value: T) => boolean): Promise<T> {
  const deadline = Date.now() + 15_000
  let value = await probe()
  while (!done(value) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 50))
    value = await probe()
  }
  return value
}

async function patch (body: unknown): Promise<{ code: number, state: string }> {
  const res = await app.inject({ method: 'PATCH', url: '/heartbeat', headers: { ...service, 'content-type': 'application/json' }, payload: JSON.stringify(body) })
  return { code: res.statusCode, state: res.json<{ liveness: { state: string } }>().liveness.state }
}

t.test('alive → paused → alive, with the scheduler honouring the pause', async (t) => {
  scheduler.start()
  t.teardown(async () => { await scheduler.stop() })

  const running = await waitFor(liveness, (l) => l.state === 'alive')
  t.same(running, { code: 200, state: 'alive', status: 'pass' }, 'the scheduler is alive')

  // Pause.
  t.same(await patch({ status: 'stopping', paused_reason: 'deploy' }), { code: 200, state: 'paused' }, 'the PATCH answers paused at once')
  const stopped = await waitFor(row, (r) => r?.status === 'stopped')
  t.equal(stopped?.status, 'stopped', 'once idle the scheduler moves itself to stopped')
  t.equal(stopped?.paused_reason, 'deploy', 'and keeps the operator\'s reason')
  t.same(await liveness(), { code: 200, state: 'paused', status: 'warn' }, 'paused: warn, 200')

  // While paused it keeps polling (the heartbeat stays fresh) and dispatches nothing.
  const pausedAt = stopped as Row
  const later = await waitFor(row, (r) => (r?.poll_count ?? 0) >= pausedAt.poll_count + 5)
  t.ok((later?.poll_count ?? 0) >= pausedAt.poll_count + 5, 'five more polls while paused')
  t.equal(later?.dispatch_count, pausedAt.dispatch_count, 'no dispatch while paused')
  t.equal(later?.status, 'stopped')
  t.equal(later?.paused_reason, 'deploy')
  t.same(await liveness(), { code: 200, state: 'paused', status: 'warn' }, 'still paused')

  // Resume.
  t.equal((await patch({ status: 'running', paused_reason: null })).code, 200)
  const resumed = await waitFor(row, (r) => r !== undefined && r.poll_count > (later?.poll_count ?? 0) + 1 && r.dispatch_count > pausedAt.dispatch_count)
  t.equal(resumed?.status, 'running', 'the scheduler runs again')
  t.equal(resumed?.paused_reason, null, 'with no reason')
  t.ok((resumed?.dispatch_count ?? 0) > pausedAt.dispatch_count, 'and dispatches again')
  t.equal(resumed?.instance_id, scheduler.instanceId, 'the same scheduler all along')
  const alive = await waitFor(liveness, (l) => l.state === 'alive')
  t.same(alive, { code: 200, state: 'alive', status: 'pass' }, 'alive again')
  t.same(errors, [], 'the scheduler never failed a poll')
})

t.test('a pause with status stopped directly is honoured too, and a stop without a reason is not a pause', async (t) => {
  scheduler.start()
  t.teardown(async () => { await scheduler.stop() })
  await waitFor(liveness, (l) => l.state === 'alive')
  t.equal((await patch({ status: 'stopped', paused_reason: 'maintenance window' })).state, 'paused')
  const held = await waitFor(row, (r) => r?.status === 'stopped')
  const dispatched = held?.dispatch_count
  const after = await waitFor(row, (r) => (r?.poll_count ?? 0) >= (held?.poll_count ?? 0) + 3)
  t.equal(after?.dispatch_count, dispatched, 'nothing dispatched')
  t.equal(after?.paused_reason, 'maintenance window')

  // Clearing only the reason: status stays stopped for an instant, which is not a pause; the scheduler resumes.
  t.equal((await patch({ paused_reason: null })).state, 'stopped', 'stopped without a reason is the verdict stopped')
  const back = await waitFor(row, (r) => r?.status === 'running')
  t.equal(back?.status, 'running', 'without a reason the scheduler does not stay paused')
  t.same(await waitFor(liveness, (l) => l.state === 'alive'), { code: 200, state: 'alive', status: 'pass' })
})
