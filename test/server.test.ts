// The process, run as a user runs it (node + tsx on src/server.ts, so no stale build is used): bad configuration,
// an external database without the table, an external database that is right, and the embedded default with its
// demo scheduler, token command and development secret, across restarts on the same DATA_DIR.
import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import t from 'tap'
import { freePort } from '../src/embedded/local-postgres.js'
import { bearer, TEST_SECRET, token, writeRow } from './helpers/app.js'
import { startTestDatabase } from './helpers/database.js'
import { holdTableLock } from './helpers/faults.js'
import { embeddedDataDir, environment, ROOT, startServer as start, type Exit, type Tap } from './helpers/server-process.js'
import { delay } from './helpers/wait.js'

/** A run that must end by itself: its exit and output. */
async function runToEnd (t: Tap, env: Record<string, string>): Promise<{ exit: Exit, stdout: string, stderr: string }> {
  const server = start(t, env)
  const exit = await Promise.race([server.exited, delay(30_000).then(() => ({ code: null, signal: null }))])
  return { exit, stdout: server.stdout, stderr: server.stderr }
}

/** The whole stderr is exactly one line, and it matches. */
function oneLine (t: Tap, stderr: string, pattern: RegExp): void {
  const lines = stderr.split('\n')
  t.equal(lines.length, 2, `one line on stderr: ${JSON.stringify(stderr)}`)
  t.equal(lines[1], '', 'ended by a newline')
  t.match(lines[0], pattern)
}

t.test('a bad environment value stops the start with one line naming the variable', async (t) => {
  const cases: Array<[Record<string, string>, RegExp]> = [
    [{ PORT: 'abc' }, /^eva-heartbeat-api: PORT must be a whole number from 0 to 65535.*\(got "abc"\)$/],
    [{ LIVENESS_PUBLIC: 'maybe' }, /^eva-heartbeat-api: LIVENESS_PUBLIC must be true or false.*\(got "maybe"\)$/],
    [{ DATABASE_URL: 'postgres://authenticator@127.0.0.1:1/postgres' }, /^eva-heartbeat-api: JWT_SECRET or JWKS_URL must be set when DATABASE_URL is set/],
    // Set but blank (a templating slip) is not unset: it must not start the embedded demo.
    [{ DATABASE_URL: '  ', JWT_SECRET: TEST_SECRET }, /^eva-heartbeat-api: DATABASE_URL is set but blank: set it to a postgres:\/\/ or postgresql:\/\/ URL, or unset it/],
    [{ DATABASE_URL: '', JWT_SECRET: TEST_SECRET }, /^eva-heartbeat-api: DATABASE_URL is set but blank/],
    [{ DATABASE_URL: 'postgres://[bad', JWT_SECRET: TEST_SECRET }, /^eva-heartbeat-api: DATABASE_URL must be a postgres:\/\/ or postgresql:\/\/ URL that parses \(got "postgres:\/\/\[bad"\)$/],
    // The image sets NODE_ENV=production: without DATABASE_URL it serves demo data only when told to.
    [{ NODE_ENV: 'production' }, /^eva-heartbeat-api: DATABASE_URL is not set and NODE_ENV=production: set DATABASE_URL to the scheduler's database, or EMBEDDED_IN_PRODUCTION=true to run the embedded database with demo data$/],
    [{ NODE_ENV: 'production', EMBEDDED_IN_PRODUCTION: 'false' }, /^eva-heartbeat-api: DATABASE_URL is not set and NODE_ENV=production/]
  ]
  // A directory of this run's own that is never made: another run's leftovers cannot decide the last assertion.
  const parent = await mkdtemp(path.join(tmpdir(), 'eva-refusals-'))
  t.teardown(async () => { await rm(parent, { recursive: true, force: true }) })
  const neverCreated = path.join(parent, 'never-created')
  for (const [env, pattern] of cases) {
    const { exit, stdout, stderr } = await runToEnd(t, { ...env, DATA_DIR: neverCreated })
    t.same(exit, { code: 1, signal: null }, `${JSON.stringify(env)}: exit code 1`)
    oneLine(t, stderr, pattern)
    t.equal(stdout, '', 'nothing on stdout')
  }
  t.notOk(existsSync(neverCreated), 'no embedded database was started')
})

t.test('DATABASE_URL at a database without the table: one line, exit 1, and the table is not created', async (t) => {
  const db = await startTestDatabase({ migrate: false })
  t.teardown(db.close)
  const { exit, stdout, stderr } = await runToEnd(t, { DATABASE_URL: db.server.url, JWT_SECRET: TEST_SECRET, PORT: '0' })
  t.same(exit, { code: 1, signal: null })
  oneLine(t, stderr, /^eva-heartbeat-api: DATABASE_URL: .*table public\.eva_scheduler_heartbeat does not exist$/)
  t.equal(stdout, '')
  const [row] = await db.admin<Array<{ table: string | null }>>`select to_regclass('public.eva_scheduler_heartbeat')::text as table`
  t.equal(row?.table, null, 'the API did not create the table')
  const roles = await db.admin`select rolname from pg_roles where rolname in ('anon', 'authenticated', 'service_role', 'authenticator')`
  t.equal(roles.count, 0, 'nor any role')
})

t.test('DATABASE_URL at a database that does not answer: one line, exit 1', async (t) => {
  const port = await freePort()
  const { exit, stderr } = await runToEnd(t, { DATABASE_URL: `postgres://authenticator@127.0.0.1:${port}/postgres`, JWT_SECRET: TEST_SECRET })
  t.same(exit, { code: 1, signal: null })
  oneLine(t, stderr, /^eva-heartbeat-api: DATABASE_URL: cannot check the table: .*ECONNREFUSED/)
})

t.test('DATABASE_URL at a database whose table is locked: the check gives up at the statement timeout, exit 1', async (t) => {
  const db = await startTestDatabase()
  t.teardown(db.close)
  const lock = await holdTableLock(db.admin)
  t.teardown(lock.release)
  const { exit, stderr } = await runToEnd(t, { DATABASE_URL: db.server.url, JWT_SECRET: TEST_SECRET, PORT: '0', DB_STATEMENT_TIMEOUT_MS: '1000' })
  t.same(exit, { code: 1, signal: null }, 'ends by itself rather than waiting for the lock')
  oneLine(t, stderr, /^eva-heartbeat-api: DATABASE_URL: cannot check the table: .*statement timeout/)
})

t.test('DATABASE_URL at a migrated database: serves, and SIGTERM ends it with exit 0', async (t) => {
  const db = await startTestDatabase()
  t.teardown(db.close)
  await writeRow(db.admin)
  const server = start(t, { DATABASE_URL: db.apiUrl, JWT_SECRET: TEST_SECRET, PORT: '0', LOG_LEVEL: 'info' })
  const { address, ms } = await server.ready()
  t.comment(`external database: ready ${ms} ms after spawn`)
  t.match(address, /^http:\/\/127\.0\.0\.1:\d+$/)
  t.not(address, 'http://127.0.0.1:0')

  const livez = await fetch(`${address}/livez`)
  t.equal(livez.status, 200)
  t.same(await livez.json(), { status: 'pass' })
  const liveness = await fetch(`${address}/heartbeat/liveness`)
  t.equal(liveness.status, 200)
  t.match(await liveness.json(), { status: 'pass', state: 'alive' })
  const heartbeat = await fetch(`${address}/heartbeat`, { headers: await bearer('authenticated') })
  t.equal(heartbeat.status, 200)
  t.match(await heartbeat.json(), { heartbeat: { id: 1, instance_id: 'scheduler-0a1b2c3d' }, liveness: { state: 'alive' } })
  await demoLabels(t, address, `Bearer ${await token({ role: 'authenticated' })}`, false)
  t.notOk('demo' in (server.logLines().find((l) => l.msg === 'ready') ?? {}), 'the ready line does not say demo')

  const exit = await server.stop('SIGTERM')
  t.same(exit, { code: 0, signal: null }, 'exit 0 within 15 s')
  t.notMatch(server.stdout, /is listening on/, 'no embedded banner, in all it printed')
  t.match(server.logLines().find((l) => l.msg === 'shutting down'), { signal: 'SIGTERM' })
  t.equal(server.stderr, '', 'nothing on stderr')
  const [row] = await db.admin<Array<{ instance_id: string }>>`select instance_id from public.eva_scheduler_heartbeat`
  t.equal(row?.instance_id, 'scheduler-0a1b2c3d', 'no demo scheduler against an external database')
})

interface HeartbeatBody {
  heartbeat: { instance_id: string, started_at: string, status: string, paused_reason: string | null, poll_count: number }
  liveness: { state: string, status: string }
}

async function getHeartbeat (address: string, jwt: string): Promise<{ status: number, body: HeartbeatBody }> {
  const res = await fetch(`${address}/heartbeat`, { headers: { authorization: `Bearer ${jwt}` } })
  return { status: res.status, body: await res.json() as HeartbeatBody }
}

/**
 * What every answer made from the row says about demo data: `"demo": true` in both liveness bodies, a notice on the
 * status page, "(demo)" in the badge and the shields.io message, `demo="true"` on the verdict and info metrics. With
 * `demo` false: none of it.
 */
async function demoLabels (t: Tap, address: string, authorization: string, demo: boolean): Promise<void> {
  const liveness = await (await fetch(`${address}/heartbeat/liveness`)).json() as Record<string, unknown>
  t.equal(liveness.demo, demo ? true : undefined, `liveness body: demo ${String(demo)}`)
  const heartbeat = await (await fetch(`${address}/heartbeat`, { headers: { authorization } })).json() as { liveness: Record<string, unknown> }
  t.equal(heartbeat.liveness.demo, demo ? true : undefined, `GET /heartbeat: liveness.demo ${String(demo)}`)
  const page = await (await fetch(`${address}/status`)).text()
  const svg = await (await fetch(`${address}/heartbeat/badge.svg`)).text()
  const shields = await (await fetch(`${address}/heartbeat/shields.json`)).json() as { message: string }
  const metrics = await (await fetch(`${address}/metrics`, { headers: { authorization } })).text()
  if (demo) {
    t.match(page, /<title>Demo: Scheduler /, 'the page title says demo')
    t.match(page, /<p id="demo" class="demo" role="note"><strong>Demo data\.<\/strong>/, 'the page says demo data, above the verdict')
    t.match(svg, /<title>scheduler: \w[\w ]* \(demo\)<\/title>/, 'the badge says demo')
    t.match(shields.message, / \(demo\)$/, 'the shields.io message says demo')
    t.match(metrics, /^scheduler_heartbeat_up\{demo="true"\} [01]$/m, 'the verdict metric is labelled demo')
    t.match(metrics, /^scheduler_info\{instance_id="[^"]+",demo="true"\} 1$/m, 'the info metric is labelled demo')
  } else {
    t.notMatch(page, /demo/i, 'nothing on the page says demo')
    t.notMatch(svg, /demo/i, 'nor on the badge')
    t.notMatch(shields.message, /demo/i, 'nor in the shields.io message')
    t.notMatch(metrics, /^[^#\n].*[{,]demo="/m, 'no demo label on any series')
    t.match(metrics, /^scheduler_heartbeat_up 1$/m)
  }
}

/** Polls until `check` passes (the demo scheduler writes on its own clock). */
async function eventually<T> (what: string, read: () => Promise<T>, check: (value: T) => boolean, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  let value = await read()
  while (!check(value)) {
    if (Date.now() > deadline) throw new Error(`${what}: still ${JSON.stringify(value)} after ${timeoutMs} ms`)
    await delay(100)
    value = await read()
  }
  return value
}

/** The token command, as a user runs it next to the server. */
async function cliToken (env: Record<string, string>, role: string): Promise<string> {
  return await new Promise((resolve, reject) => {
    execFile(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'token', '--role', role], { cwd: ROOT, env: environment(env) }, (error, stdout, stderr) => {
      if (error !== null) reject(new Error(`${error.message}: ${stderr}`))
      else resolve(stdout)
    })
  })
}

t.test('the token command without a secret says how to get one', async (t) => {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'eva-no-secret-'))
  t.teardown(async () => { await rm(dataDir, { recursive: true, force: true }) })
  const result = await new Promise<{ code: number | null, stdout: string, stderr: string }>((resolve) => {
    const child = execFile(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'token', '--role', 'authenticated'],
      { cwd: ROOT, env: environment({ DATA_DIR: dataDir }) }, (_error, stdout, stderr) => { resolve({ code: child.exitCode, stdout, stderr }) })
  })
  t.equal(result.code, 1, 'the CLI\'s exit code for a failure that is not a usage error')
  t.equal(result.stdout, '', 'no token')
  oneLine(t, result.stderr, /^eva-heartbeat: no JWT_SECRET and no development secret in .*eva-no-secret-.*: run npm start once first$/)
})

t.test('the embedded default: starts, demo heartbeats, token command, restarts on the same DATA_DIR', async (t) => {
  const dataDir = await embeddedDataDir(t, 'eva-embedded-')
  const env = { DATA_DIR: dataDir, PORT: '0', DEMO_INTERVAL_SECONDS: '0.5' }

  // First start: initdb, migration, demo scheduler.
  const first = start(t, env)
  const { address, ms } = await first.ready()
  t.comment(`embedded default, first start (initdb + migrate): ready ${ms} ms after spawn`)
  await first.banner()
  t.match(first.stdout, `eva-heartbeat-api is listening on ${address}`)
  t.match(first.stdout, /embedded PostgreSQL on 127\.0\.0\.1:\d+, data in .*eva-embedded-.*\/pg, demo scheduler every 0\.5 s/)
  t.match(first.stdout, `TOKEN=$(DATA_DIR=${dataDir} npm run -s token -- --role authenticated)`, 'the banner\'s token command finds this DATA_DIR')

  const alive = await eventually('liveness', async () => {
    const res = await fetch(`${address}/heartbeat/liveness`)
    return { status: res.status, body: await res.json() as { state: string } }
  }, (r) => r.status === 200 && r.body.state === 'alive')
  t.equal(alive.body.state, 'alive', 'the demo scheduler keeps the heartbeat alive')

  const jwt = (await cliToken({ DATA_DIR: dataDir }, 'authenticated')).trim()
  t.match(jwt, /^[\w-]+\.[\w-]+\.[\w-]+$/, 'the token command prints one JWT')
  // The embedded database is demo data, and every answer made from it says so.
  t.match(first.stdout, /\n {2}DEMO DATA: the row is the embedded database's, not your scheduler's, and every verdict says "demo";\n/, 'the banner says demo')
  t.match(first.logLines().find((l) => l.msg === 'ready'), { embedded: true, demo: true }, 'the ready line says demo')
  await demoLabels(t, address, `Bearer ${jwt}`, true)
  const one = await getHeartbeat(address, jwt)
  t.equal(one.status, 200, 'the server accepts the token command\'s token')
  t.match(one.body.heartbeat, { instance_id: /^scheduler-[0-9a-f]{8}$/, status: 'running' })
  const wrong = await fetch(`${address}/heartbeat`, { headers: { authorization: `Bearer ${await token({ role: 'authenticated' })}` } })
  t.equal(wrong.status, 401, 'a token signed with another secret is refused')

  const secret = await stat(path.join(dataDir, 'jwt-secret'))
  t.equal(secret.mode & 0o777, 0o600, 'the development secret is owner-only')

  t.same(await first.stop('SIGTERM'), { code: 0, signal: null }, 'SIGTERM: exit 0')
  t.equal(first.stderr, '')

  // Second start: the data and the secret are kept; a new scheduler instance claims the row.
  const second = start(t, env, { detached: true })
  const again = await second.ready()
  t.comment(`embedded default, restart on the same DATA_DIR: ready ${again.ms} ms after spawn`)
  const two = await eventually('a new instance', async () => await getHeartbeat(again.address, jwt),
    (r) => r.status === 200 && r.body.heartbeat.instance_id !== one.body.heartbeat.instance_id)
  t.equal(two.status, 200, 'the old token still works: same secret')
  t.match(two.body.heartbeat.instance_id, /^scheduler-[0-9a-f]{8}$/)
  t.equal(two.body.heartbeat.started_at, one.body.heartbeat.started_at, 'started_at survives: the row was kept')

  // A Ctrl-C in the terminal reaches the whole process group: the demo still writes its "stopped".
  t.same(await second.stop('SIGINT', { group: true }), { code: 0, signal: null }, 'Ctrl-C: exit 0')
  t.equal(second.stderr, '')

  // Third start, without the demo scheduler, as the image runs (NODE_ENV=production, opted in to the embedded
  // database): the row is as the last demo scheduler left it, and still demo data.
  const third = start(t, { ...env, DEMO_SCHEDULER: 'false', NODE_ENV: 'production', EMBEDDED_IN_PRODUCTION: 'true' })
  const last = await third.ready()
  await demoLabels(t, last.address, `Bearer ${jwt}`, true)
  await third.banner()
  t.match(third.stdout, /DEMO DATA/, 'the banner says demo without the demo scheduler too')
  t.notMatch(third.stdout.split('\n').find((l) => l.includes('embedded PostgreSQL on')) ?? '', /demo scheduler/)
  const three = await getHeartbeat(last.address, jwt)
  t.equal(three.status, 200)
  t.match(three.body.heartbeat, {
    instance_id: two.body.heartbeat.instance_id,
    started_at: one.body.heartbeat.started_at,
    status: 'stopped',
    paused_reason: null
  }, 'the graceful stop wrote status stopped')
  const liveness = await fetch(`${last.address}/heartbeat/liveness`)
  t.equal(liveness.status, 503)
  t.match(await liveness.json(), { state: 'stopped', status: 'fail' })
  t.same(await third.stop('SIGTERM'), { code: 0, signal: null })
  t.notOk(existsSync(path.join(dataDir, 'pg', 'postmaster.pid')), 'the embedded server was stopped with the process')
})
