// A connection to the embedded server is used only when its listener belongs to the server's OS user: another local
// user who takes the port while the server restarts and asks for a cleartext password gets nothing.
import { spawn } from 'node:child_process'
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import t from 'tap'
import { loadConfig } from '../../src/config.js'
import { apiPoolOptions, createSql } from '../../src/db/client.js'
import { embeddedAppConfig } from '../../src/embedded/database.js'
import { freePort } from '../../src/embedded/local-postgres.js'
import { ownedBy, peerUid } from '../../src/embedded/peer.js'
import { startTestDatabase } from '../helpers/database.js'
import type { Tap } from '../helpers/server-process.js'
import { eventually } from '../helpers/wait.js'

const settings = { poolMax: 1, statementTimeoutMs: 2000, prepare: true }

t.test('peerUid: the owner of the server side of one loopback connection, from /proc/net/tcp', async (t) => {
  const table = [
    '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode',
    '   0: 0100007F:1538 00000000:0000 0A 00000000:00000000 00:00000000 00000000   104        0 1 1',
    '   1: 0100007F:1538 0100007F:A1B2 01 00000000:00000000 00:00000000 00000000   104        0 2 1',
    '   2: 0100007F:A1B2 0100007F:1538 01 00000000:00000000 00:00000000 00000000     0        0 3 1'
  ].join('\n')
  t.equal(peerUid(table, 0x1538, 0xA1B2), 104, 'the accepted socket of the listener')
  t.equal(peerUid(table, 0x1538, 0xA1B3), undefined, 'another connection')
})

t.test('the embedded server\'s own listener: the pool connects', async (t) => {
  const db = await startTestDatabase()
  t.teardown(db.close)
  const sql = createSql(db.apiUrl, apiPoolOptions(settings, ownedBy(db.server.serverUid)))
  t.teardown(async () => { await sql.end({ timeout: 1 }) })
  t.same(await sql`select 1 as one`, [{ one: 1 }])
})

/** A listener run as `nobody` that asks every client for a cleartext password and writes what it gets to `out`. */
async function foreignListener (t: Tap, port: number): Promise<() => Promise<string>> {
  const dir = await mkdtemp(path.join(tmpdir(), 'eva-fake-pg-'))
  await chmod(dir, 0o777)
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  const script = path.join(dir, 'fake.cjs')
  const out = path.join(dir, 'got')
  await writeFile(script, `
    const fs = require('node:fs')
    require('node:net').createServer((socket) => {
      let asked = false
      socket.on('data', (chunk) => {
        if (!asked) { asked = true; socket.write(Buffer.from([0x52, 0, 0, 0, 8, 0, 0, 0, 3])); return }
        fs.appendFileSync(${JSON.stringify(out)}, chunk.toString('latin1'))
      })
      socket.on('error', () => {})
    }).listen(${port}, '127.0.0.1', () => fs.writeFileSync(${JSON.stringify(out)}, ''))
    setTimeout(() => process.exit(0), 60000)`)
  await chmod(script, 0o644)
  // A directory of its own and no NODE_OPTIONS (tap adds its coverage hooks to every child's): the checkout may be
  // one this user cannot enter (a clone under /root).
  const child = spawn('su', ['nobody', '-s', '/bin/sh', '-c', `exec env -u NODE_OPTIONS ${process.execPath} ${script}`], { stdio: 'ignore', cwd: dir })
  t.teardown(() => { child.kill('SIGKILL') })
  await eventually(async () => await readFile(out, 'utf8').then(() => true, () => false), 15_000, 'the fake listener')
  return async () => await readFile(out, 'latin1')
}

t.test('a listener of another user on the port: no password is sent, the query fails', { skip: process.getuid?.() !== 0 && 'only root can run a listener as another user' }, async (t) => {
  const port = await freePort()
  const got = await foreignListener(t, port)
  const url = `postgres://authenticator:the-cluster-secret@127.0.0.1:${port}/postgres`

  const guarded = createSql(url, apiPoolOptions(settings, ownedBy(process.getuid?.() ?? 0)))
  t.teardown(async () => { await guarded.end({ timeout: 1 }) })
  await t.rejects(guarded`select 1`, /not the embedded PostgreSQL's \(its listener belongs to uid 65534/)
  t.notMatch(await got(), 'the-cluster-secret', 'nothing reached it')

  // The control: the same pool without the check hands the password over.
  const plain = createSql(url, apiPoolOptions(settings))
  t.teardown(async () => { await plain.end({ timeout: 1 }) })
  await plain`select 1`.catch(() => {})
  await eventually(async () => (await got()).includes('the-cluster-secret'), 10_000, 'the unchecked pool sent its password')
})

t.test('the embedded database hands its checked socket to every pool: the admin pool and the app\'s', { skip: process.getuid?.() !== 0 && 'only root can run a listener as another user' }, async (t) => {
  const db = await startTestDatabase({ migrate: false })
  t.teardown(db.close)
  t.equal((db.admin.options as { socket?: unknown }).socket, db.socket, 'the admin pool connects through it')
  const appConfig = embeddedAppConfig(loadConfig({}), db, 'a-secret-of-at-least-thirty-two-characters')
  t.equal(appConfig.databaseSocket, db.socket, 'so does the API\'s pool')
  t.equal(appConfig.demoData, true, 'and every answer says demo')

  // The socket refuses a listener that is not the server's OS user's (here: nobody's, on another port).
  const port = await freePort()
  const got = await foreignListener(t, port)
  const sql = createSql(`postgres://authenticator:the-cluster-secret@127.0.0.1:${port}/postgres`, apiPoolOptions(settings, appConfig.databaseSocket))
  t.teardown(async () => { await sql.end({ timeout: 1 }) })
  await t.rejects(sql`select 1`, /not the embedded PostgreSQL's/)
  t.notMatch(await got(), 'the-cluster-secret', 'nothing reached it')
})
