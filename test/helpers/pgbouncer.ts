// A real PgBouncer (Debian's `pgbouncer`) in transaction mode, in front of a test PostgreSQL server, as Supabase's
// dedicated pooler on port 6543 is: the tests that run the API through it connect with DB_PREPARE=false. Loopback
// only; clients are trusted (auth_type trust), and PgBouncer logs in to the server with the users' password (auth file). Stopped by its
// own pid at teardown.
import { spawn } from 'node:child_process'
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import net from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { freePort } from '../../src/embedded/local-postgres.js'
import { findSbin } from './tools.js'

interface Teardown { teardown: (fn: () => unknown) => void }

/** Debian installs it in /usr/sbin, which is not on every PATH. */
export const PGBOUNCER = findSbin('pgbouncer')

export interface PgBouncer {
  port: number
  /** `url` (a postgres:// URL to the server, user and database) with its host and port replaced by the pooler's. */
  through: (url: string) => string
  /** What PgBouncer logged so far. */
  log: () => Promise<string>
}

export interface PgBouncerOptions {
  /** Server connections per user and database (default_pool_size). */
  poolSize?: number
  /** The server's password for both users (the test clusters' one password): PgBouncer logs in to it with SCRAM. */
  password?: string
}

async function accepts (port: number): Promise<boolean> {
  return await new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port }, () => { socket.destroy(); resolve(true) })
    socket.once('error', () => { resolve(false) })
  })
}

/** PgBouncer in transaction mode for the server at 127.0.0.1:`serverPort` (database `postgres`). */
export async function startPgBouncer (t: Teardown, serverPort: number, options: PgBouncerOptions = {}): Promise<PgBouncer> {
  if (PGBOUNCER === undefined) throw new Error('pgbouncer is not installed (apt-get install -y pgbouncer)')
  const dir = await mkdtemp(path.join(tmpdir(), 'eva-pgbouncer-'))
  const port = await freePort()
  const logfile = path.join(dir, 'pgbouncer.log')
  const password = (options.password ?? '').replaceAll('"', '""')
  await writeFile(path.join(dir, 'userlist.txt'), `"authenticator" "${password}"\n"postgres" "${password}"\n`)
  await writeFile(path.join(dir, 'pgbouncer.ini'), [
    '[databases]',
    `postgres = host=127.0.0.1 port=${serverPort} dbname=postgres`,
    '[pgbouncer]',
    'listen_addr = 127.0.0.1',
    `listen_port = ${port}`,
    'unix_socket_dir =',
    'auth_type = trust',
    `auth_file = ${path.join(dir, 'userlist.txt')}`,
    'pool_mode = transaction',
    `default_pool_size = ${options.poolSize ?? 4}`,
    'max_client_conn = 500',
    // postgres.js sends nothing else at startup but user, database, client_encoding and application_name.
    'ignore_startup_parameters = extra_float_digits',
    `logfile = ${logfile}`,
    'log_connections = 0',
    'log_disconnections = 0',
    ''
  ].join('\n'))
  // PgBouncer refuses to run as root; as root it is told to become `postgres`, who must read its files.
  const asRoot = process.getuid?.() === 0
  if (asRoot) {
    await chmod(dir, 0o777)
    for (const file of ['userlist.txt', 'pgbouncer.ini']) await chmod(path.join(dir, file), 0o644)
  }
  const child = spawn(PGBOUNCER, [...(asRoot ? ['-u', 'postgres'] : []), path.join(dir, 'pgbouncer.ini')], { stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString() })
  child.stderr.on('data', (chunk: Buffer) => { output += chunk.toString() })
  const exited = new Promise<void>((resolve) => child.once('exit', () => { resolve() }))
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
    await exited
    await rm(dir, { recursive: true, force: true })
  })
  const deadline = Date.now() + 15_000
  while (!await accepts(port)) {
    if (child.exitCode !== null) throw new Error(`pgbouncer exited with ${child.exitCode}:\n${output}`)
    if (Date.now() > deadline) throw new Error(`pgbouncer did not listen on 127.0.0.1:${port} within 15 s:\n${output}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  return {
    port,
    through: (url) => {
      const parsed = new URL(url)
      parsed.hostname = '127.0.0.1'
      parsed.port = String(port)
      return parsed.toString()
    },
    log: async () => await readFile(logfile, 'utf8').catch(() => output)
  }
}
