// As root the server runs as the OS user postgres: what it cannot reach (a checkout in a mode-700 directory) is
// staged where it can, and a real server starts from there and keeps its data; where staging cannot help, one line
// names the directory and the fix. A link or a directory someone else could have planted is refused, never followed.
import { spawn } from 'node:child_process'
import { existsSync, lstatSync, readdirSync, readlinkSync } from 'node:fs'
import { chmod, cp, mkdir, mkdtemp, rm, stat, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import t from 'tap'
import postgres from 'postgres'
import { embeddedBinDir, LocalPostgres } from '../../src/embedded/local-postgres.js'
import { blockingDirectory, permits, reachableDataDir, serverUser } from '../../src/embedded/os-user.js'

type Tap = Parameters<Parameters<typeof t.test>[0]>[0]

const rootOnly = process.getuid?.() !== 0 && 'only root runs the server as another user'
/** Someone who is neither the owner nor in the group of anything made here. */
const stranger = { uid: 54_321, gid: 54_321 }

async function tempDir (t: Tap, mode: number): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'eva-os-user-'))
  await chmod(dir, mode)
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  return dir
}

t.test('permits reads the owner, group or other bits that apply', async (t) => {
  const file = { mode: 0o40750, uid: 10, gid: 20 }
  t.ok(permits(file, { uid: 10, gid: 99 }, 1), 'owner: rwx')
  t.ok(permits(file, { uid: 11, gid: 20 }, 1), 'group: r-x')
  t.ok(permits(file, { uid: 11, gid: 20 }, 4))
  t.notOk(permits(file, { uid: 11, gid: 21 }, 1), 'other: ---')
  t.notOk(permits({ mode: 0o40701, uid: 10, gid: 20 }, { uid: 11, gid: 20 }, 1), 'the group bits apply to the group, not the other bits')
})

t.test('blockingDirectory names the first directory in the way, even below it nothing exists yet', async (t) => {
  const open = await tempDir(t, 0o755)
  t.equal(blockingDirectory(path.join(open, 'not', 'yet'), stranger), undefined, 'an open way')
  const closed = path.join(open, 'closed')
  await mkdir(path.join(closed, 'inner'), { recursive: true, mode: 0o700 })
  await chmod(closed, 0o700)
  t.same(blockingDirectory(path.join(closed, 'inner', 'pg'), stranger), { dir: closed, mode: '700' })
  t.same(blockingDirectory(path.join(closed, 'inner', 'pg'), { uid: process.getuid?.() ?? 0, gid: 0 }), undefined, 'its owner goes through')
  t.equal(blockingDirectory(closed, stranger), undefined, 'a mode-700 target itself is not in the way (the runner makes it the server\'s)')
})

t.test('a cluster already inside an owner-only directory is not moved: one line with the directory and the fix', { skip: rootOnly }, async (t) => {
  const closed = await tempDir(t, 0o700)
  const dataDir = path.join(closed, '.data', 'pg')
  await mkdir(dataDir, { recursive: true })
  await writeFile(path.join(dataDir, 'PG_VERSION'), '17\n')
  const user = serverUser()
  if (user === undefined) throw new Error('unreachable: rootOnly')
  const stage = await tempDir(t, 0o755)
  await t.rejects(reachableDataDir(dataDir, user, stage), {
    message: new RegExp(`^the postgres OS user, which runs the server for root, cannot enter ${closed} \\(mode 700\\) to reach the cluster ${dataDir}, and it is not empty, so it is not moved; fix: clone \\(or set DATA_DIR\\) under a directory it can enter.*or set DATABASE_URL$`)
  })
  t.ok(existsSync(path.join(dataDir, 'PG_VERSION')), 'left where it was')
})

t.test('a staging directory that cannot be written: one line with the directory and the fix, no bare EACCES', { skip: rootOnly }, async (t) => {
  const closed = await tempDir(t, 0o700)
  const user = serverUser()
  if (user === undefined) throw new Error('unreachable: rootOnly')
  const stage = path.join(await tempDir(t, 0o755), 'file-not-dir')
  await writeFile(stage, '')
  await t.rejects(reachableDataDir(path.join(closed, 'pg'), user, stage), {
    message: new RegExp(`^the postgres OS user.*cannot enter ${closed} \\(mode 700\\) to reach the cluster ${closed}/pg, and staging it in ${stage} failed: .*; fix: clone`)
  })
})

t.test('a real server from binaries and data inside an owner-only directory: staged, started, and its data kept', { skip: rootOnly }, async (t) => {
  const closed = await tempDir(t, 0o700)
  const stage = await tempDir(t, 0o755)
  // The binaries' installation (bin, lib, share) copied inside, as in a checkout under /root.
  const source = path.dirname(process.env.PG_BIN ?? await embeddedBinDir())
  await cp(source, path.join(closed, 'pg-install'), { recursive: true, verbatimSymlinks: true })
  const binDir = path.join(closed, 'pg-install', 'bin')
  const dataDir = path.join(closed, '.data', 'pg')

  const first = new LocalPostgres({ dataDir, binDir, stageRoot: stage })
  t.teardown(async () => { await first.stop() })
  await first.init()
  await first.start()
  t.ok(lstatSync(dataDir).isSymbolicLink(), 'the data directory is now a link')
  const staged = readlinkSync(dataDir)
  t.equal(first.dataDir, staged, 'the server runs on the staged cluster')
  t.equal(path.dirname(path.dirname(staged)), stage)
  t.equal(((await stat(staged)).mode & 0o777).toString(8), '700', 'the cluster stays owner-only')
  const sql = postgres(first.url, { max: 1, onnotice: () => {} })
  await sql`create table marker (text text)`
  await sql`insert into marker values ('kept')`
  await sql.end()
  await first.stop()

  // A restart, as after a reboot: the link leads to the same cluster.
  const second = new LocalPostgres({ dataDir, binDir, stageRoot: stage })
  t.teardown(async () => { await second.stop() })
  await second.init()
  await second.start()
  t.equal(second.dataDir, staged)
  const again = postgres(second.url, { max: 1, onnotice: () => {} })
  t.same((await again`select text from marker`).map((row) => row.text), ['kept'])
  await again.end()
})

t.test('a link planted by another user where the cluster goes: refused in one line, its target left as it was', { skip: rootOnly }, async (t) => {
  const checkout = await tempDir(t, 0o755)
  const data = path.join(checkout, '.data')
  await mkdir(data, { mode: 0o777 })
  await chmod(data, 0o777) // as a careless `chmod -R a+w` leaves it
  const victim = path.join(checkout, 'root-only')
  await mkdir(victim, { mode: 0o700 })
  const planted = await new Promise<number | null>((resolve) => {
    spawn('su', ['nobody', '-s', '/bin/sh', '-c', `ln -s ${victim} ${data}/pg`], { cwd: '/', stdio: 'ignore' }).on('exit', resolve)
  })
  t.equal(planted, 0, 'nobody planted the link')
  t.equal(lstatSync(path.join(data, 'pg')).uid, 65534)
  const stage = await tempDir(t, 0o755)
  const server = new LocalPostgres({ dataDir: path.join(data, 'pg'), binDir: process.env.PG_BIN ?? await embeddedBinDir(), stageRoot: stage })
  t.teardown(async () => { await server.stop() })
  await t.rejects(server.init(), {
    name: 'UnsafePathError',
    message: `${data}/pg is a symbolic link made by uid 65534, not by this user: not following it (remove it)`
  })
  await t.rejects(server.start(), { name: 'UnsafePathError' })
  const after = await stat(victim)
  t.same([after.uid, after.gid, after.mode & 0o777], [0, 0, 0o700], 'the target still belongs to root, mode 700')
  t.same(readdirSync(victim), [], 'and nothing was written into it')
})

t.test('a link of ours that leads out of the staging directory is not followed', { skip: rootOnly }, async (t) => {
  const checkout = await tempDir(t, 0o755)
  const elsewhere = path.join(checkout, 'elsewhere')
  await mkdir(elsewhere, { mode: 0o700 })
  await mkdir(path.join(checkout, '.data'))
  await symlink(elsewhere, path.join(checkout, '.data', 'pg'))
  const stage = await tempDir(t, 0o755)
  const user = serverUser()
  if (user === undefined) throw new Error('unreachable: rootOnly')
  await t.rejects(reachableDataDir(path.join(checkout, '.data', 'pg'), user, stage), {
    message: `${checkout}/.data/pg is a symbolic link to ${elsewhere}, which is not a cluster staged in ${stage}/data: not following it (remove it)`
  })
  t.equal((await stat(elsewhere)).uid, 0, 'not handed to postgres')
})

t.test('a directory the cluster sits in that every user may write is not trusted', { skip: rootOnly }, async (t) => {
  const checkout = await tempDir(t, 0o755)
  const data = path.join(checkout, '.data')
  await mkdir(data)
  await chmod(data, 0o777)
  const user = serverUser()
  if (user === undefined) throw new Error('unreachable: rootOnly')
  await t.rejects(reachableDataDir(path.join(data, 'pg'), user, await tempDir(t, 0o755)), {
    message: `${data} is writable by every user (mode 777): not trusting what is inside it`
  })
  t.notOk(existsSync(path.join(data, 'pg')), 'no cluster made there')
})
