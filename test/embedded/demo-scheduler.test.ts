// The demo scheduler against a real PostgreSQL server: it writes the row as the real EVA scheduler does
// (docs/scheduler.md), and it honours an operator's pause and breaker, which the real one does not yet.
import t from 'tap'
import { DemoScheduler } from '../../src/embedded/demo-scheduler.js'
import type { HeartbeatRow } from '../../src/domain/heartbeat.js'
import { deleteRow } from '../helpers/app.js'
import { startTestDatabase } from '../helpers/database.js'

/** The row as postgres.js returns it, with the metadata the demo writes (an object) and the database's now(). */
type Row = Omit<HeartbeatRow, 'metadata'> & { metadata: Record<string, unknown>, db_now: Date }

const db = await startTestDatabase()
t.teardown(db.close)

async function row (): Promise<Row> {
  const [found] = await db.admin<Row[]>`select h.*, now() as db_now from public.eva_scheduler_heartbeat h where id = 1`
  if (found === undefined) throw new Error('no heartbeat row')
  return found
}

/** What an operator writes through PATCH, written here as the superuser. */
async function operatorWrites (fields: { status?: string, paused_reason?: string | null, circuit_breaker_state?: string }): Promise<void> {
  await db.admin`update public.eva_scheduler_heartbeat set ${db.admin(fields)}, updated_at = now() where id = 1`
}

/** A scheduler that dispatches one job on every poll it may: a poll that dispatches nothing is then visible. */
const scheduler = (intervalSeconds = 60): DemoScheduler => new DemoScheduler(db.admin, { intervalSeconds, jobsPerPoll: () => 1 })

t.beforeEach(async () => { await deleteRow(db.admin) })

t.test('one poll writes the row as the real scheduler does', async (t) => {
  const demo = scheduler(60)
  t.match(demo.instanceId, /^scheduler-[0-9a-f]{8}$/)
  const before = Date.now()
  await demo.poll()
  const r = await row()
  t.equal(r.id, 1)
  t.equal(r.instance_id, demo.instanceId)
  t.ok(r.last_poll_at !== null && Math.abs(r.last_poll_at.getTime() - before) < 5000, 'last_poll_at is about now')
  t.ok(r.last_poll_at !== null && Math.abs(r.last_poll_at.getTime() - r.db_now.getTime()) < 5000, 'and the database agrees')
  t.equal(r.next_poll_at !== null && r.last_poll_at !== null ? r.next_poll_at.getTime() - r.last_poll_at.getTime() : null, 60_000,
    'next_poll_at announces last + the base interval')
  t.equal(r.updated_at.getTime(), r.last_poll_at?.getTime(), 'updated_at is the poll\'s time')
  t.equal(r.status, 'running')
  t.equal(r.circuit_breaker_state, 'CLOSED')
  t.equal(r.paused_reason, null)
  t.same([r.poll_count, r.dispatch_count, r.error_count], [1, 1, 0])
  t.same(Object.keys(r.metadata).sort(), [
    'build_provenance', 'dynamic_scaling', 'job_last_runs', 'last_round_runs', 'metrics_write_failures', 'observe_only',
    'registered_rounds', 'round_error_count', 'round_execution_count'
  ], 'the metadata keys the real scheduler writes')
  t.match(r.metadata, {
    observe_only: false,
    build_provenance: { git_sha: String, started_from: String, node_version: process.version, env: String, stamped_at: String },
    metrics_write_failures: 0,
    round_execution_count: 1,
    round_error_count: 0,
    registered_rounds: ['demo_round'],
    dynamic_scaling: { enabled: Boolean, current_batch_size: Number, base_batch_size: Number, last_queue_depth: Number },
    last_round_runs: { demo_round: r.last_poll_at?.getTime() },
    job_last_runs: { demo_job: r.last_poll_at?.getTime() }
  })
  const provenance = r.metadata.build_provenance as Record<string, unknown>
  t.same(Object.keys(provenance).sort(), ['env', 'git_sha', 'node_version', 'stamped_at', 'started_from'])
})

t.test('counters grow with every poll; started_at is written once', async (t) => {
  const demo = scheduler(60)
  await demo.poll()
  const first = await row()
  await demo.poll()
  await demo.poll()
  const third = await row()
  t.same([third.poll_count, third.dispatch_count, third.error_count], [3, 3, 0])
  t.equal(third.instance_id, first.instance_id)
  t.equal(third.started_at.getTime(), first.started_at.getTime(), 'started_at means "row created"')
  t.ok(third.last_poll_at !== null && first.last_poll_at !== null && third.last_poll_at >= first.last_poll_at)
  t.equal(third.metadata.round_execution_count, 3)
})

t.test('a new instance claims the row and starts its counters at 0 again', async (t) => {
  const old = scheduler(60)
  await old.poll()
  await old.poll()
  const before = await row()
  const fresh = scheduler(60)
  t.not(fresh.instanceId, old.instanceId)
  await fresh.poll()
  const after = await row()
  t.equal(after.instance_id, fresh.instanceId)
  t.same([after.poll_count, after.dispatch_count, after.error_count], [1, 1, 0], 'a counter that goes down means a restart')
  t.equal(after.started_at.getTime(), before.started_at.getTime(), 'started_at is kept')
})

t.test('an operator\'s pause is honoured: no dispatch, stopping while jobs drain, then stopped; resume', async (t) => {
  const demo = scheduler(60)
  await demo.poll()
  await demo.poll()
  t.same([(await row()).dispatch_count, (await row()).status], [2, 'running'])

  await operatorWrites({ status: 'stopping', paused_reason: 'deploy' })
  await demo.poll()
  let r = await row()
  t.same({ status: r.status, paused_reason: r.paused_reason, dispatch_count: r.dispatch_count, poll_count: r.poll_count },
    { status: 'stopping', paused_reason: 'deploy', dispatch_count: 2, poll_count: 3 }, 'the last poll\'s job still runs: stopping')
  await demo.poll()
  r = await row()
  t.same({ status: r.status, paused_reason: r.paused_reason, dispatch_count: r.dispatch_count, poll_count: r.poll_count },
    { status: 'stopped', paused_reason: 'deploy', dispatch_count: 2, poll_count: 4 }, 'idle: stopped, still paused')
  await demo.poll()
  r = await row()
  t.same([r.status, r.paused_reason, r.dispatch_count, r.poll_count], ['stopped', 'deploy', 2, 5], 'it stays paused')
  t.ok(r.last_poll_at !== null && Math.abs(r.last_poll_at.getTime() - Date.now()) < 5000, 'a paused scheduler still polls')

  await operatorWrites({ status: 'running', paused_reason: null })
  await demo.poll()
  r = await row()
  t.same([r.status, r.paused_reason, r.dispatch_count, r.poll_count], ['running', null, 3, 6], 'resumed: dispatching again')
})

t.test('honoursPauses: false behaves as today\'s real scheduler: every poll overwrites pause and breaker, and dispatches', async (t) => {
  const blind = new DemoScheduler(db.admin, { intervalSeconds: 60, jobsPerPoll: () => 1, honoursPauses: false })
  await blind.poll()
  await operatorWrites({ status: 'stopping', paused_reason: 'deploy', circuit_breaker_state: 'OPEN' })
  await blind.poll()
  const r = await row()
  t.same({ status: r.status, paused_reason: r.paused_reason, circuit_breaker_state: r.circuit_breaker_state, dispatch_count: r.dispatch_count },
    { status: 'running', paused_reason: null, circuit_breaker_state: 'CLOSED', dispatch_count: 2 }, 'pause and breaker gone; it dispatched')
  t.equal(r.updated_at.getTime(), r.last_poll_at?.getTime(), 'updated_at and last_poll_at from one clock reading, as the real one')
  await operatorWrites({ status: 'stopping', paused_reason: 'deploy' })
  await blind.stop()
  t.same([(await row()).status, (await row()).paused_reason], ['stopped', null], 'its graceful stop clears the reason too')
})

t.test('a pause written while idle stops at once', async (t) => {
  const demo = new DemoScheduler(db.admin, { intervalSeconds: 60, jobsPerPoll: () => 0 })
  await demo.poll()
  await operatorWrites({ status: 'stopped', paused_reason: 'maintenance window' })
  await demo.poll()
  const r = await row()
  t.same([r.status, r.paused_reason], ['stopped', 'maintenance window'])
})

t.test('status stopping without a reason is not a pause: the scheduler runs on', async (t) => {
  const demo = scheduler(60)
  await demo.poll()
  await operatorWrites({ status: 'stopping', paused_reason: null })
  await demo.poll()
  const r = await row()
  t.same([r.status, r.paused_reason, r.dispatch_count], ['running', null, 2])
})

t.test('a breaker set OPEN by an operator: no dispatch, running, paused_reason circuit_breaker_open', async (t) => {
  const demo = scheduler(60)
  await demo.poll()
  await operatorWrites({ circuit_breaker_state: 'OPEN' })
  await demo.poll()
  let r = await row()
  t.same([r.status, r.circuit_breaker_state, r.paused_reason, r.dispatch_count, r.poll_count],
    ['running', 'OPEN', 'circuit_breaker_open', 1, 2])
  await demo.poll()
  r = await row()
  t.same([r.status, r.circuit_breaker_state, r.paused_reason, r.dispatch_count], ['running', 'OPEN', 'circuit_breaker_open', 1])

  await operatorWrites({ circuit_breaker_state: 'CLOSED' })
  await demo.poll()
  r = await row()
  t.same([r.status, r.circuit_breaker_state, r.paused_reason, r.dispatch_count], ['running', 'CLOSED', null, 2], 'reset: dispatching again')
})

t.test('stop() writes stopped with a fresh last_poll_at', async (t) => {
  const demo = scheduler(60)
  await demo.poll()
  const before = await row()
  await new Promise((resolve) => setTimeout(resolve, 20))
  await demo.stop()
  const r = await row()
  t.equal(r.status, 'stopped')
  t.equal(r.paused_reason, null)
  t.equal(r.instance_id, demo.instanceId)
  t.ok(r.last_poll_at !== null && before.last_poll_at !== null && r.last_poll_at > before.last_poll_at, 'last_poll_at is fresh')
  t.equal(r.dispatch_count, before.dispatch_count, 'a stopping scheduler dispatches nothing')
})

t.test('start() polls on its interval until stop()', async (t) => {
  const errors: unknown[] = []
  const demo = new DemoScheduler(db.admin, { intervalSeconds: 0.1, jobsPerPoll: () => 1, onError: (error) => errors.push(error) })
  demo.start()
  demo.start()
  t.teardown(async () => { await demo.stop() })
  const deadline = Date.now() + 20_000
  let polls = 0
  while (Date.now() < deadline) {
    const [found] = await db.admin<Array<{ poll_count: number }>>`select poll_count from public.eva_scheduler_heartbeat where id = 1`
    polls = found?.poll_count ?? 0
    if (polls >= 3) break
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  t.ok(polls >= 3, `polled on its own (${polls} polls)`)
  await demo.stop()
  const stopped = await row()
  t.equal(stopped.status, 'stopped')
  await new Promise((resolve) => setTimeout(resolve, 300))
  t.equal((await row()).poll_count, stopped.poll_count, 'no poll after stop()')
  t.same(errors, [])
})

t.test('a poll that fails is counted in error_count and reported', async (t) => {
  const errors: unknown[] = []
  const demo = new DemoScheduler(db.admin, { intervalSeconds: 0.1, jobsPerPoll: () => 1, onError: (error) => errors.push(error) })
  await demo.poll()
  // A trigger that refuses every update stands for a database hiccup.
  await db.admin.unsafe(`
    create function public.refuse_heartbeat_writes () returns trigger language plpgsql as $$ begin raise exception 'disk full'; end $$;
    create trigger refuse_writes before update on public.eva_scheduler_heartbeat for each row execute function public.refuse_heartbeat_writes();`)
  const cleanup = async (): Promise<void> => {
    await db.admin.unsafe(`
      drop trigger if exists refuse_writes on public.eva_scheduler_heartbeat;
      drop function if exists public.refuse_heartbeat_writes();`)
  }
  t.teardown(cleanup)
  demo.start()
  const deadline = Date.now() + 20_000
  while (errors.length < 2 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50))
  t.ok(errors.length >= 2, 'each failed poll is reported')
  t.match(String(errors[0]), /disk full/)
  t.equal((await row()).poll_count, 1, 'nothing was written meanwhile')
  await cleanup()
  const failed = errors.length
  await demo.stop()
  const r = await row()
  t.equal(r.status, 'stopped', 'the write after the hiccup succeeds')
  t.ok(r.error_count >= failed, `error_count counts the failed polls (${r.error_count} >= ${failed})`)
  t.equal(r.metadata.round_error_count, r.error_count)
})
