// The embedded default is no door into the machine: run as a user runs it (a ServerProcess), a second start in the
// same DATA_DIR refuses and leaves the first serving; an embedded server that dies comes back and liveness with it;
// a link planted where the cluster goes is refused; the password is in a 0600 file, never in the output.
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { chmod, mkdir, mkdtemp, readFile, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import t from 'tap'
import { alive, freePort } from '../src/embedded/local-postgres.js'
import { embeddedDataDir, embeddedPort, startServer, type ServerProcess } from './helpers/server-process.js'
import { delay, eventually } from './helpers/wait.js'

/** The liveness verdict, polled until it is `state` (the demo scheduler writes on its own clock); the last one read. */
async function liveness (address: string, state: string, timeoutMs = 60_000): Promise<{ status: number, state: string }> {
  const deadline = Date.now() + timeoutMs
  let last = { status: 0, state: 'none' }
  while (Date.now() < deadline) {
    const res = await fetch(`${address}/heartbeat/liveness`).catch(() => undefined)
    if (res !== undefined) last = { status: res.status, state: ((await res.json()) as { state: string }).state }
    if (last.state === state) return last
    await delay(250)
  }
  return last
}

const postmasterPid = async (dataDir: string): Promise<number> =>
  Number((await readFile(path.join(dataDir, 'pg', 'postmaster.pid'), 'utf8')).split('\n')[0])

/** The embedded server's port, from the banner (NaN without one, which no assertion accepts). */
const bannerPort = async (server: ServerProcess): Promise<number> => Number(await embeddedPort(server))

t.test('a second start in the same DATA_DIR refuses in one line naming the first; the first keeps serving', async (t) => {
  const dataDir = await embeddedDataDir(t, 'eva-second-')
  const first = startServer(t, { DATA_DIR: dataDir, PORT: '0', DEMO_INTERVAL_SECONDS: '0.5' })
  const { address } = await first.ready(60_000)
  t.match(await liveness(address, 'alive'), { status: 200, state: 'alive' })
  const pgPid = await postmasterPid(dataDir)
  const pgPort = await bannerPort(first)

  const second = startServer(t, { DATA_DIR: dataDir, PORT: '0', DEMO_INTERVAL_SECONDS: '0.5' })
  t.same(await second.exited, { code: 1, signal: null }, 'the second start exits 1')
  t.equal(second.stderr, `eva-heartbeat-api: cannot start the embedded PostgreSQL server in ${dataDir}: ${dataDir}/pg is in use by process ${String(first.child.pid)} ` +
    `(${address}, PostgreSQL on 127.0.0.1:${pgPort}): stop that process first, or set DATA_DIR to another directory\n`, 'one line naming its pid and ports')
  t.ok(alive(pgPid), 'the first one\'s PostgreSQL was not signalled')
  t.equal(await postmasterPid(dataDir), pgPid)
  // Still real verdicts: the demo keeps writing, so the row keeps moving.
  for (let i = 0; i < 3; i++) {
    t.match(await liveness(address, 'alive'), { status: 200, state: 'alive' }, `still alive, read ${i + 1}`)
    await delay(600)
  }
  t.same(await first.stop('SIGTERM'), { code: 0, signal: null })
  t.equal(first.stderr, '')
  t.notOk(existsSync(path.join(dataDir, 'pg.lock')), 'the lock goes with the process')
})

t.test('the embedded PostgreSQL killed under a running instance: it comes back, and so does liveness', async (t) => {
  const dataDir = await embeddedDataDir(t, 'eva-restart-')
  const server = startServer(t, { DATA_DIR: dataDir, PORT: '0', DEMO_INTERVAL_SECONDS: '0.5', LOG_LEVEL: 'info' })
  const { address } = await server.ready(60_000)
  t.match(await liveness(address, 'alive'), { status: 200, state: 'alive' })
  const port = await bannerPort(server)
  const pid = await postmasterPid(dataDir)
  process.kill(pid, 'SIGKILL')
  // Its backends outlive it for a moment (an answer right after the kill proves nothing): wait for the restart.
  await eventually(() => server.logLines().some((l) => l.msg === `embedded PostgreSQL: postgres runs again on 127.0.0.1:${port}`), 60_000, 'the restart, on the same port')
  t.ok(server.logLines().some((l) => typeof l.msg === 'string' && l.msg.startsWith('embedded PostgreSQL: postgres exited (signal SIGKILL)')), 'the exit is logged')
  t.not(await postmasterPid(dataDir), pid, 'a new postmaster')
  t.match(await liveness(address, 'alive'), { status: 200, state: 'alive' }, 'then a real verdict again, by itself')
  t.same(await server.stop('SIGTERM'), { code: 0, signal: null })
  t.notOk(existsSync(path.join(dataDir, 'pg', 'postmaster.pid')), 'the restarted server stops with the process')
})

t.test('EMBEDDED_PG_PORT sets the port; the banner names the password file and never shows the password', async (t) => {
  const dataDir = await embeddedDataDir(t, 'eva-port-')
  const port = await freePort()
  const server = startServer(t, { DATA_DIR: dataDir, PORT: '0', EMBEDDED_PG_PORT: String(port), DEMO_SCHEDULER: 'false' })
  await server.ready(60_000)
  t.equal(await bannerPort(server), port)
  const file = path.join(dataDir, 'pg.password')
  t.match(server.stdout, `its logins: user postgres (superuser) or authenticator, password in ${file}`)
  t.equal((await stat(file)).mode & 0o777, 0o600)
  const password = (await readFile(file, 'utf8')).trim()
  t.same(await server.stop('SIGTERM'), { code: 0, signal: null })
  t.notMatch(server.stdout + server.stderr, password, 'the password is in neither output')
})

t.test('as root, a link planted in DATA_DIR by another user: one line, exit 1, its target untouched', { skip: process.getuid?.() !== 0 && 'needs root and the user nobody' }, async (t) => {
  const checkout = await mkdtemp(path.join(tmpdir(), 'eva-planted-'))
  t.teardown(async () => { await rm(checkout, { recursive: true, force: true }) })
  await chmod(checkout, 0o755)
  const data = path.join(checkout, '.data')
  await mkdir(data)
  await chmod(data, 0o777)
  const victim = path.join(checkout, 'root-owned')
  await mkdir(victim, { mode: 0o700 })
  const code = await new Promise<number | null>((resolve) => {
    spawn('su', ['nobody', '-s', '/bin/sh', '-c', `ln -s ${victim} ${data}/pg`], { cwd: '/', stdio: 'ignore' }).on('exit', resolve)
  })
  t.equal(code, 0, 'nobody planted .data/pg')
  const server = startServer(t, { DATA_DIR: data, PORT: '0' })
  t.same(await server.exited, { code: 1, signal: null })
  t.equal(server.stderr, `eva-heartbeat-api: cannot start the embedded PostgreSQL server in ${data}: ${data}/pg is a symbolic link made by uid 65534, not by this user: not following it (remove it)\n`)
  const after = await stat(victim)
  t.same([after.uid, after.gid, after.mode & 0o777], [0, 0, 0o700], 'the target still belongs to root')
})
