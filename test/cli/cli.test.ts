// The ops CLI as an operator runs it: `node --import tsx src/cli/main.ts …` (what the eva-heartbeat bin runs, compiled)
// against the real app listening on a loopback port, with the row in a real PostgreSQL server.
import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import { jwtVerify } from 'jose'
import { freePort } from '../../src/embedded/local-postgres.js'
import { bearer, deleteRow, rowText, startTestApp, TEST_SECRET, writeRow } from '../helpers/app.js'

// Each run starts node and tsx: seconds apiece on a busy 2-core machine, so this file gets more than tap's 120 s.
t.setTimeout(300_000)

const CLI = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url))
const { app, db } = await startTestApp(t)
const url = await app.listen({ host: '127.0.0.1', port: 0 })

interface Run { code: number, stdout: string, stderr: string }

/** Runs the CLI in a child process with only the environment given (plus PATH). */
async function cli (args: string[], env: Record<string, string> = {}): Promise<Run> {
  return await new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', CLI, ...args], {
      env: { PATH: process.env.PATH ?? '', EVA_HEARTBEAT_URL: url, ...env },
      timeout: 60_000
    }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1
      resolve({ code, stdout, stderr })
    })
  })
}

const bare = (header: { authorization: string }): string => header.authorization.replace(/^Bearer /, '')
const serviceToken = bare(await bearer('service_role', { sub: 'ops' }))
const readerToken = bare(await bearer('authenticated', { sub: 'dashboard' }))

async function stored (): Promise<{ status: string, paused_reason: string | null, circuit_breaker_state: string | null }> {
  const text = await rowText(db.admin)
  if (text === null) throw new Error('no row')
  return JSON.parse(text) as { status: string, paused_reason: string | null, circuit_breaker_state: string | null }
}

/** An error is exactly one line on stderr, prefixed with the program's name, and nothing on stdout. */
function oneErrorLine (t: Test, run: Run, pattern: RegExp): void {
  t.equal(run.stdout, '', 'nothing on stdout')
  t.match(run.stderr, /^eva-heartbeat: [^\n]+\n$/, 'one line on stderr')
  t.match(run.stderr, pattern)
}

t.test('check: Nagios exit codes and one summary line on stdout', async (t) => {
  await writeRow(db.admin)
  let run = await cli(['check'])
  t.equal(run.code, 0, 'alive: 0 OK')
  t.match(run.stdout, /^HEARTBEAT OK - alive, last poll \d+(\.\d)? s ago \| seconds_since_last_poll=\d+(\.\d+)?s seconds_overdue=0s grace_seconds=180s\n$/)
  t.equal(run.stderr, '')

  await writeRow(db.admin, { status: 'stopping', paused_reason: 'deploy' })
  run = await cli(['check'])
  t.equal(run.code, 1, 'paused: 1 WARNING')
  t.match(run.stdout, /^HEARTBEAT WARNING - paused, The scheduler is paused by an operator; last poll .* \| /)

  await writeRow(db.admin, { lastPollAgo: 900, nextPollIn: -840 })
  run = await cli(['check'])
  t.equal(run.code, 2, 'stale: 2 CRITICAL')
  t.match(run.stdout, /^HEARTBEAT CRITICAL - stale, No heartbeat since .*grace of 180 s has run out; last poll 15 min ago \| /)

  await deleteRow(db.admin)
  run = await cli(['check'])
  t.equal(run.code, 2, 'no row: 2 CRITICAL')
  t.match(run.stdout, /^HEARTBEAT CRITICAL - missing, .*no poll recorded \| seconds_since_last_poll=U seconds_overdue=U grace_seconds=U\n$/)
})

t.test('check: 3 UNKNOWN when the API cannot be reached or refuses', async (t) => {
  const privateApp = await startTestApp(t, { db, env: { LIVENESS_PUBLIC: 'false' } })
  const privateUrl = await privateApp.app.listen({ host: '127.0.0.1', port: 0 })
  await writeRow(db.admin)
  const [unreachable, refused, withToken] = await Promise.all([
    cli(['check', '--url', `http://127.0.0.1:${await freePort()}`]),
    cli(['check', '--url', privateUrl]),
    cli(['check', '--url', privateUrl], { EVA_HEARTBEAT_TOKEN: readerToken })
  ])
  t.equal(unreachable.code, 3, 'unreachable API: 3 UNKNOWN')
  t.match(unreachable.stdout, /^HEARTBEAT UNKNOWN - cannot reach http:\/\/127\.0\.0\.1:\d+\/heartbeat\/liveness: ECONNREFUSED\n$/)
  t.equal(refused.code, 3, '401: 3 UNKNOWN')
  t.match(refused.stdout, /^HEARTBEAT UNKNOWN - 401 missing_token: /)
  t.equal(withToken.code, 0, 'with EVA_HEARTBEAT_TOKEN: 0 OK')
})

t.test('token mints what the API accepts', async (t) => {
  const run = await cli(['token', '--role', 'service_role', '--sub', 'alice', '--ttl', '600'], { JWT_SECRET: TEST_SECRET })
  t.equal(run.code, 0)
  const jwt = run.stdout.trim()
  const { payload } = await jwtVerify(jwt, new TextEncoder().encode(TEST_SECRET))
  t.match(payload, { role: 'service_role', sub: 'alice' })
  t.equal((payload.exp ?? 0) - (payload.iat ?? 0), 600, '--ttl')
  await writeRow(db.admin, { status: 'running' })
  const paused = await cli(['pause', '--reason', 'minted', '--token', jwt])
  t.equal(paused.code, 0, 'the minted token may pause')
  t.match(await stored(), { status: 'stopping', paused_reason: 'minted' })
})

t.test('status: the verdict and the row, for people and for scripts', async (t) => {
  await writeRow(db.admin, { instance_id: 'scheduler-feedbeef' })
  const [human, json, noToken] = await Promise.all([
    cli(['status', '--token', readerToken]),
    cli(['status', '--json'], { EVA_HEARTBEAT_TOKEN: readerToken }),
    cli(['status'])
  ])
  t.equal(human.code, 0)
  t.match(human.stdout, /^scheduler alive \(pass\)\n/)
  t.match(human.stdout, /\n {2}status {17}running\n/)
  t.match(human.stdout, /\n {2}paused_reason {10}—\n/)
  t.match(human.stdout, /\n {2}instance_id {12}scheduler-feedbeef\n/)
  // The row was written 10 s before the database's now; a loaded machine adds its own seconds before the CLI runs.
  t.match(human.stdout, /\n {2}last_poll_at {11}\S+Z \(\d+(\.\d)? s ago\)\n/)
  t.match(human.stdout, /\n {2}etag {19}"[\w-]+"\n/)

  t.equal(json.code, 0)
  const body = JSON.parse(json.stdout) as { heartbeat: { instance_id: string }, liveness: { state: string } }
  t.equal(body.heartbeat.instance_id, 'scheduler-feedbeef', '--json prints the API\'s body')
  t.equal(body.liveness.state, 'alive')

  t.equal(noToken.code, 2, 'no token: usage error')
  oneErrorLine(t, noToken, /status needs an authenticated or service_role token: --token-file PATH or EVA_HEARTBEAT_TOKEN \(eva-heartbeat token --role authenticated, in a checkout npm run -s token -- --role authenticated, mints one/)
})

t.test('pause, resume and breaker change the row; the verdict follows', async (t) => {
  await writeRow(db.admin)
  let run = await cli(['pause', '--reason', 'deploy 42'], { EVA_HEARTBEAT_TOKEN: serviceToken })
  t.equal(run.code, 0, 'pause: 0')
  t.equal(run.stdout, 'paused: status stopping, paused_reason "deploy 42", circuit_breaker_state CLOSED; verdict paused (warn)\n')
  t.equal(run.stderr, '')
  t.match(await stored(), { status: 'stopping', paused_reason: 'deploy 42' })

  run = await cli(['resume', '--token', serviceToken])
  t.equal(run.code, 0, 'resume: 0')
  t.equal(run.stdout, 'resumed: status running, no paused_reason, circuit_breaker_state CLOSED; verdict alive (pass)\n')
  t.match(await stored(), { status: 'running', paused_reason: null })

  run = await cli(['breaker', 'open', '--token', serviceToken])
  t.equal(run.code, 0, 'breaker open: 0')
  t.match(run.stdout, /^breaker OPEN: .*circuit_breaker_state OPEN; verdict circuit_open \(warn\)\n$/)
  t.equal((await stored()).circuit_breaker_state, 'OPEN')

  run = await cli(['breaker', 'close', '--token', serviceToken])
  t.equal(run.code, 0, 'breaker close: 0')
  t.match(run.stdout, /^breaker CLOSED: .*verdict alive \(pass\)\n$/)
  t.equal((await stored()).circuit_breaker_state, 'CLOSED')
})

t.test('the API refusing: one line on stderr, exit 1, and the row as it was', async (t) => {
  await writeRow(db.admin)
  const before = await rowText(db.admin)
  const [forbidden, stale] = await Promise.all([
    cli(['pause', '--reason', 'x'], { EVA_HEARTBEAT_TOKEN: readerToken }),
    cli(['pause', '--reason', 'x', '--if-match', '"stale"'], { EVA_HEARTBEAT_TOKEN: serviceToken })
  ])
  t.equal(forbidden.code, 1)
  oneErrorLine(t, forbidden, /^eva-heartbeat: 403 insufficient_scope: Role authenticated may not update the heartbeat\.\n$/)
  t.equal(stale.code, 1)
  oneErrorLine(t, stale, /^eva-heartbeat: 412 precondition_failed: /)
  t.notOk(forbidden.stderr.includes(readerToken) || stale.stderr.includes(serviceToken), 'no token in the messages')
  t.equal(await rowText(db.admin), before, 'row unchanged')
})

t.test('--help', async (t) => {
  const run = await cli(['--help'])
  t.equal(run.code, 0)
  t.match(run.stdout, /^usage: eva-heartbeat <command> \[options\]/)
  for (const command of ['status', 'check', 'pause --reason TEXT', 'resume', 'breaker open|close|half-open', 'token --role ROLE']) {
    t.ok(run.stdout.includes(command), command)
  }
})

t.test('check: the database down is 3 UNKNOWN (the scheduler\'s state cannot be known), and recovers', async (t) => {
  await writeRow(db.admin)
  await db.server.stop()
  let run: Run
  try {
    run = await cli(['check'])
  } finally {
    await db.server.start()
  }
  t.equal(run.code, 3)
  t.match(run.stdout, /^HEARTBEAT UNKNOWN - unknown, The database could not be reached in time/)
  let again: Run | undefined
  for (let i = 0; i < 10 && again?.code !== 0; i++) again = await cli(['check'])
  t.equal(again?.code, 0, 'OK again once the database is back')
})
