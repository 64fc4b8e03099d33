// `pause --wait` and `resume --wait` as an ops script runs them: the CLI in its own process (node --import tsx
// src/cli/main.ts), the real app on a loopback port, the row in a real PostgreSQL server, and beside them a scheduler
// polling every 0.2 s: the demo one, which honours pauses, or one that upserts every column blindly as today's real
// EVA scheduler does.
import { execFile, spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import { DemoScheduler } from '../../src/embedded/demo-scheduler.js'
import { freePort } from '../../src/embedded/local-postgres.js'
import { bearer, deleteRow, rowText, startTestApp, writeRow } from '../helpers/app.js'
import { eventually, LOADED_MARGIN_MS } from '../helpers/wait.js'

// Each run starts node and tsx (seconds on a busy 2-core machine) and some wait on purpose.
t.setTimeout(300_000)

const CLI = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url))
const { app, db } = await startTestApp(t)
const url = await app.listen({ host: '127.0.0.1', port: 0 })
const service = await bearer('service_role', { sub: 'ops' })
const TOKEN = service.authorization.replace(/^Bearer /, '')

interface Run { code: number, stdout: string, stderr: string }

/** Runs the CLI in a child process with only the environment given (plus PATH). */
async function cli (args: string[], env: Record<string, string> = {}): Promise<Run> {
  return await new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', CLI, ...args], {
      env: { PATH: process.env.PATH ?? '', EVA_HEARTBEAT_URL: url, EVA_HEARTBEAT_TOKEN: TOKEN, ...env },
      timeout: 120_000
    }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1
      resolve({ code, stdout, stderr })
    })
  })
}

interface Row { status: string, paused_reason: string | null, instance_id: string, poll_count: number }

async function row (): Promise<Row | undefined> {
  const [found] = await db.admin<Row[]>`select status, paused_reason, instance_id, poll_count from public.eva_scheduler_heartbeat where id = 1`
  return found
}

/** A scheduler polling every 0.2 s, dispatching one job a poll (so a pause drains: stopping, then stopped). */
async function startScheduler (t: Test, honoursPauses: boolean): Promise<DemoScheduler> {
  const scheduler = new DemoScheduler(db.admin, { intervalSeconds: 0.2, jobsPerPoll: () => 1, honoursPauses })
  scheduler.start()
  t.teardown(async () => { await scheduler.stop() })
  await eventually(async () => (await row())?.instance_id === scheduler.instanceId, 15_000, 'the scheduler\'s first poll')
  return scheduler
}

interface Report {
  command: string
  outcome: string
  exit_code: number
  summary: string
  paused_reason: string | null
  wait_seconds: number
  waited_seconds: number
  patched_at: string | null
  scheduler_wrote_at: string | null
  operator_wrote_at: string | null
  silence: string | null
  failure: string | null
  heartbeat: { status: string, paused_reason: string | null, last_poll_at: string } | null
  liveness: { state: string, status: string } | null
}

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/

t.beforeEach(async () => { await deleteRow(db.admin) })

t.test('a scheduler that honours pauses: pause --wait and resume --wait exit 0', async (t) => {
  const scheduler = await startScheduler(t, true)

  const paused = await cli(['pause', '--reason', 'deploy 7', '--wait', '30'])
  t.equal(paused.code, 0, 'exit 0')
  t.equal(paused.stderr, '')
  const [accepted, settled, ...rest] = paused.stdout.split('\n')
  t.match(accepted, /^paused: status stopping, paused_reason "deploy 7", .*; waiting up to 30 s for the scheduler$/, 'the PATCH, at once')
  t.match(settled, /^paused: the scheduler stopped at \S+Z, keeping paused_reason "deploy 7" \(seen \d+(\.\d)? s after the pause\); verdict paused \(warn\)$/,
    'then when it stopped')
  t.same(rest, [''], 'two lines')
  t.match(await row(), { status: 'stopped', paused_reason: 'deploy 7', instance_id: scheduler.instanceId }, 'the row says so')

  const resumed = await cli(['resume', '--wait', '--json'])
  t.equal(resumed.code, 0, 'resume --wait: exit 0')
  t.equal(resumed.stderr, '')
  const report = JSON.parse(resumed.stdout) as Report
  t.match(report, {
    command: 'resume', outcome: 'acknowledged', exit_code: 0, paused_reason: null, wait_seconds: 120,
    patched_at: ISO, scheduler_wrote_at: ISO, operator_wrote_at: null, silence: null, failure: null,
    heartbeat: { status: 'running', paused_reason: null }, liveness: { status: 'pass' }
  }, '--json: one object with the outcome, the timestamps and the last row\'s liveness')
  t.match(report.summary, /^resumed: the scheduler is running again, polled at \S+Z \(seen .* after the resume\); verdict \w+ \(pass\)$/)
  t.equal(report.heartbeat?.last_poll_at, report.scheduler_wrote_at, 'the write that settled it')
  t.match(await row(), { status: 'running', paused_reason: null })
})

t.test('a scheduler that overwrites every column on every poll: pause --wait exits 1', async (t) => {
  await startScheduler(t, false)
  // One after the other: two pauses at once would each see the other's PATCH as another operator's.
  const text = await cli(['pause', '--reason', 'deploy 8', '--wait', '30'])
  const json = await cli(['pause', '--reason', 'deploy 9', '--wait=30', '--json'])
  t.equal(text.code, 1, 'exit 1')
  t.match(text.stdout, /^paused: status stopping, paused_reason "deploy 8", .*; waiting up to 30 s for the scheduler\n$/, 'the PATCH was accepted')
  t.match(text.stderr, /^eva-heartbeat: not paused: the scheduler overwrote the pause at \S+Z \(status running, no paused_reason\): this scheduler does not honour pauses; stop its process instead \(see "Honouring a pause" in docs\/scheduler\.md\)\n$/)
  t.equal(json.code, 1)
  t.equal(json.stderr, '')
  t.match(JSON.parse(json.stdout), { command: 'pause', outcome: 'overwritten', exit_code: 1, paused_reason: 'deploy 9', scheduler_wrote_at: ISO, heartbeat: { status: 'running', paused_reason: null } })
  t.match(await row(), { status: 'running', paused_reason: null }, 'the row: the pause is gone')

  const resumed = await cli(['resume', '--wait', '30'])
  t.equal(resumed.code, 0, 'resume --wait: it is running, so that is true')
})

t.test('a stopped scheduler: exit 2, saying its last write was a graceful stop', async (t) => {
  const scheduler = new DemoScheduler(db.admin, { intervalSeconds: 0.2 })
  scheduler.start()
  await eventually(async () => (await row()) !== undefined, 15_000, 'a first poll')
  await scheduler.stop()
  t.equal((await row())?.status, 'stopped', 'its graceful stop')
  const run = await cli(['pause', '--reason', 'deploy', '--wait', '2'])
  t.equal(run.code, 2, 'exit 2')
  t.match(run.stderr, /^eva-heartbeat: not confirmed within 2 s of the pause: no scheduler write; its last one, at \S+Z, was a graceful stop \(status stopped\): a stopped scheduler writes nothing until it is started again; verdict paused \(warn\)\n$/)
  t.match(await row(), { status: 'stopping', paused_reason: 'deploy' }, 'the pause stays written')
})

t.test('a dead scheduler (running, long silent): exit 2, stale; the row gone: exit 1, as a PATCH with no row is', async (t) => {
  await writeRow(db.admin, { lastPollAgo: 900, nextPollIn: -840 })
  const stale = await cli(['pause', '--reason', 'deploy', '--wait', '1', '--json'])
  t.equal(stale.code, 2)
  const report = JSON.parse(stale.stdout) as Report
  t.match(report, { outcome: 'no_word', exit_code: 2, silence: 'stale', scheduler_wrote_at: null, liveness: { state: 'paused' } })
  t.match(report.summary, /no scheduler write; the heartbeat is stale: last poll at \S+Z \(15 min ago\), beyond next_poll_at and a grace of 3 min: the scheduler is not polling/)

  await deleteRow(db.admin)
  const missing = await cli(['pause', '--reason', 'deploy', '--wait', '1'])
  t.equal(missing.code, 1)
  t.match(missing.stderr, /^eva-heartbeat: 404 heartbeat_not_found: /)
})

t.test('another operator resuming during the wait: exit 1, and not the scheduler\'s fault', async (t) => {
  await writeRow(db.admin)
  const waiting = cli(['pause', '--reason', 'deploy', '--wait', '60'])
  await eventually(async () => (await row())?.status === 'stopping', 30_000, 'the pause written')
  const res = await app.inject({ method: 'PATCH', url: '/heartbeat', headers: { ...service, 'content-type': 'application/json' }, payload: '{"status":"running","paused_reason":null}' })
  t.equal(res.statusCode, 200)
  const run = await waiting
  t.equal(run.code, 1)
  t.match(run.stderr, /^eva-heartbeat: not paused: another operator changed the row at \S+Z \(status running, no paused_reason\) before the scheduler took the pause\n$/)
})

t.test('the API or its database unreachable: exit 3, as check does', async (t) => {
  await writeRow(db.admin)
  const before = await rowText(db.admin)
  const noApi = await cli(['pause', '--reason', 'deploy', '--wait', '5', '--json', '--url', `http://127.0.0.1:${await freePort()}`])
  t.equal(noApi.code, 3, 'no API: 3')
  t.match(JSON.parse(noApi.stdout), { outcome: 'unreachable', exit_code: 3, patched_at: null, failure: /^cannot reach http:\/\/127\.0\.0\.1:\d+\/heartbeat: ECONNREFUSED$/ })

  await db.server.stop()
  let down: Run
  try {
    down = await cli(['pause', '--reason', 'deploy', '--wait', '5'])
  } finally {
    await db.server.start()
  }
  t.equal(down.code, 3, 'database down: 3')
  t.match(down.stderr, /^eva-heartbeat: not paused: 503 database_unavailable: .*; the API did not confirm the pause \(eva-heartbeat status shows the row\)\n$/)
  t.equal(await rowText(db.admin), before, 'nothing written')

  // Down after the PATCH: the wait goes on through failed reads, and ends with 3 when the last one failed too.
  await eventually(async () => (await app.inject({ method: 'GET', url: '/heartbeat', headers: service })).statusCode === 200, 30_000, 'the API reads again')
  const waiting = cli(['pause', '--reason', 'deploy', '--wait', '8'])
  await eventually(async () => (await row())?.status === 'stopping', 30_000, 'the pause written')
  await db.server.stop()
  let late: Run
  try {
    late = await waiting
  } finally {
    await db.server.start()
  }
  t.equal(late.code, 3, 'down during the wait: 3')
  t.match(late.stderr, /^eva-heartbeat: not confirmed: 503 database_unavailable: .*; the pause was written at \S+Z, whether the scheduler took it is unknown\n$/)
})

/** The CLI in its own process, timing its exit from the last thing it printed (the time the caller waits for nothing). */
async function cliLinger (args: string[]): Promise<Run & { lingerMs: number }> {
  const child = spawn(process.execPath, ['--import', 'tsx', CLI, ...args], {
    env: { PATH: process.env.PATH ?? '', EVA_HEARTBEAT_URL: url, EVA_HEARTBEAT_TOKEN: TOKEN }, stdio: ['ignore', 'pipe', 'pipe']
  })
  let stdout = ''
  let stderr = ''
  let printedAt = performance.now()
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk; printedAt = performance.now() })
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk; printedAt = performance.now() })
  const killer = setTimeout(() => { child.kill('SIGKILL') }, 120_000)
  const code = await new Promise<number>((resolve) => child.once('close', (exitCode) => { resolve(exitCode ?? -1) }))
  clearTimeout(killer)
  return { code, stdout, stderr, lingerMs: performance.now() - printedAt }
}

t.test('pause --wait and resume --wait exit as soon as they have answered', async (t) => {
  // No scheduler: every read during the wait is a 304 for the ETag already held, the answer whose connection used to
  // stay open until the request's timeout. --timeout 30 makes any such linger far longer than the bound below.
  await writeRow(db.admin)
  const runs = [
    await cliLinger(['pause', '--reason', 'deploy', '--wait', '3', '--timeout', '30']),
    await cliLinger(['resume', '--wait', '3', '--timeout', '30'])
  ]
  for (const [name, run] of [['pause --wait', runs[0]], ['resume --wait', runs[1]]] as const) {
    t.equal(run?.code, 2, `${name}: exit 2, no scheduler write`)
    t.match(run?.stderr, /^eva-heartbeat: not confirmed within 3 s of the (pause|resume)/, `${name}: its answer`)
    t.ok((run?.lingerMs ?? Infinity) < LOADED_MARGIN_MS, `${name}: exited ${Math.round(run?.lingerMs ?? 0)} ms after its answer, not at the 30 s timeout`)
  }
})
