// pause/resume --wait in-process (runCli, the function the bin calls) against the real app and PostgreSQL: the cases
// that need the test to act during the wait (the row deleted, the token expiring), and the main outcomes again
// where coverage can see them (pause-wait.test.ts runs them as separate processes).
import t from 'tap'
import { DemoScheduler } from '../../src/embedded/demo-scheduler.js'
import { bearer, deleteRow, startTestApp, token, writeRow } from '../helpers/app.js'
import { runCliCaptured, type CliRun } from '../helpers/cli.js'
import { eventually } from '../helpers/wait.js'

const { app, db } = await startTestApp(t)
const url = await app.listen({ host: '127.0.0.1', port: 0 })
const serviceToken = (await bearer('service_role')).authorization.replace(/^Bearer /, '')

async function run (args: string[], env: Record<string, string> = {}): Promise<CliRun> {
  return await runCliCaptured(args, { EVA_HEARTBEAT_URL: url, EVA_HEARTBEAT_TOKEN: serviceToken, ...env })
}

const status = async (): Promise<string | undefined> =>
  (await db.admin<Array<{ status: string }>>`select status from public.eva_scheduler_heartbeat where id = 1`)[0]?.status

t.beforeEach(async () => { await deleteRow(db.admin) })

t.test('the demo scheduler takes a pause and a resume; a blind one overwrites the pause', async (t) => {
  const honouring = new DemoScheduler(db.admin, { intervalSeconds: 0.2, jobsPerPoll: () => 1 })
  honouring.start()
  await eventually(async () => (await status()) === 'running', 15_000)
  let result = await run(['pause', '--reason', 'deploy', '--wait', '30'])
  t.equal(result.code, 0)
  t.match(result.stdout, /\npaused: the scheduler stopped at /)
  result = await run(['resume', '--wait', '30'])
  t.equal(result.code, 0)
  t.match(result.stdout, /\nresumed: the scheduler is running again, polled at /)
  await honouring.stop()

  const blind = new DemoScheduler(db.admin, { intervalSeconds: 0.2, honoursPauses: false })
  blind.start()
  t.teardown(async () => { await blind.stop() })
  result = await run(['pause', '--reason', 'deploy', '--wait', '30', '--json'])
  t.equal(result.code, 1)
  t.match(JSON.parse(result.stdout), { outcome: 'overwritten', heartbeat: { status: 'running', paused_reason: null } })
})

t.test('the row deleted during the wait: 2, missing', async (t) => {
  await writeRow(db.admin)
  const waiting = run(['pause', '--reason', 'deploy', '--wait', '4', '--json'])
  await eventually(async () => (await status()) === 'stopping', 15_000, 'the pause written')
  await deleteRow(db.admin)
  const result = await waiting
  t.equal(result.code, 2)
  t.match(JSON.parse(result.stdout), { outcome: 'no_word', silence: 'missing', heartbeat: null, liveness: null })
})

t.test('the token expiring during the wait: 3 at once, with the API\'s reason', async (t) => {
  const strict = await startTestApp(t, { db, env: { JWT_CLOCK_TOLERANCE_SECONDS: '0' } })
  const strictUrl = await strict.app.listen({ host: '127.0.0.1', port: 0 })
  await writeRow(db.admin)
  const shortLived = await token({ role: 'service_role', sub: 'ops', exp: Math.floor(Date.now() / 1000) + 3 })
  const result = await run(['pause', '--reason', 'deploy', '--wait', '60', '--url', strictUrl], { EVA_HEARTBEAT_TOKEN: shortLived })
  t.equal(result.code, 3)
  t.match(result.stderr, /^eva-heartbeat: not confirmed: 401 token_expired: .*; the pause was written at \S+Z, whether the scheduler took it is unknown\n$/)
})
