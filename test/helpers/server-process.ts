// The service as a user runs it: `node --import tsx src/server.ts` in a child process (so no stale build is used),
// its output collected and its end awaited; and a DATA_DIR for the embedded default that is cleaned up afterwards.
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import type t from 'tap'
import { EnvSchema } from '../../src/config.js'
import { delay, eventually } from './wait.js'

export type Tap = Parameters<Parameters<typeof t.test>[0]>[0]

export const ROOT = fileURLToPath(new URL('../..', import.meta.url))

/** The environment of the test run without any variable the service reads: each test says what it sets. */
export function environment (env: Record<string, string>): NodeJS.ProcessEnv {
  const base: NodeJS.ProcessEnv = { ...process.env }
  for (const key of Object.keys(EnvSchema.properties)) delete base[key]
  return { ...base, ...env }
}

export interface Exit { code: number | null, signal: NodeJS.Signals | null }

export class ServerProcess {
  readonly child: ChildProcess
  readonly spawnedAt = performance.now()
  stdout = ''
  stderr = ''
  readonly exited: Promise<Exit>
  private exit: Exit | undefined

  /**
   * `detached`: in a process group of its own, so that a signal can reach the group as a terminal's Ctrl-C does.
   * `cwd`: another checkout to run (default: this one).
   */
  constructor (env: Record<string, string>, options: { detached?: boolean, cwd?: string } = {}) {
    this.child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
      cwd: options.cwd ?? ROOT, env: environment(env), stdio: ['ignore', 'pipe', 'pipe'], detached: options.detached ?? false
    })
    this.child.stdout?.setEncoding('utf8').on('data', (chunk: string) => { this.stdout += chunk })
    this.child.stderr?.setEncoding('utf8').on('data', (chunk: string) => { this.stderr += chunk })
    this.exited = new Promise((resolve) => {
      this.child.once('close', (code, signal) => { // 'close': its output has all been read too
        this.exit = { code, signal }
        resolve(this.exit)
      })
    })
  }

  get running (): boolean { return this.exit === undefined }

  /** The JSON log lines on stdout. */
  logLines (): Array<Record<string, unknown>> {
    return this.stdout.split('\n').filter((line) => line.startsWith('{')).flatMap((line) => {
      try {
        return [JSON.parse(line) as Record<string, unknown>]
      } catch {
        return []
      }
    })
  }

  /** Waits for the "ready" log line; gives the address and the time from spawn. */
  async ready (timeoutMs = 60_000): Promise<{ address: string, ms: number }> {
    const deadline = Date.now() + timeoutMs
    while (Date.now() < deadline) {
      const line = this.logLines().find((l) => l.msg === 'ready')
      if (line !== undefined && typeof line.address === 'string') return { address: line.address, ms: Math.round(performance.now() - this.spawnedAt) }
      if (!this.running) throw new Error(`the server exited (${JSON.stringify(this.exit)}) before it was ready: ${this.stderr}`)
      await delay(25)
    }
    throw new Error(`not ready within ${timeoutMs} ms; stdout: ${this.stdout}; stderr: ${this.stderr}`)
  }

  /** Waits for the embedded default's whole banner (a write of its own, apart from the log lines); gives stdout. */
  async banner (timeoutMs = 10_000): Promise<string> {
    await eventually(() => this.stdout.includes('  API docs: '), timeoutMs, 'the whole banner')
    return this.stdout
  }

  /** Sends a signal (to the whole process group, as a terminal's Ctrl-C does, with `group`) and waits for the end. */
  async stop (signal: NodeJS.Signals = 'SIGTERM', options: { group?: boolean, timeoutMs?: number } = {}): Promise<Exit | 'timeout'> {
    if (this.running && this.child.pid !== undefined) process.kill(options.group === true ? -this.child.pid : this.child.pid, signal)
    return await Promise.race([this.exited, delay(options.timeoutMs ?? 15_000).then(() => 'timeout' as const)])
  }

  /** For teardown: whatever state it is in, it ends. */
  async kill (): Promise<void> {
    if (!this.running) return
    if (await this.stop('SIGTERM', { timeoutMs: 12_000 }) === 'timeout') {
      this.child.kill('SIGKILL')
      await this.exited
    }
  }
}

/** A ServerProcess that the test's teardown ends. */
export function startServer (t: Tap, env: Record<string, string>, options: { detached?: boolean, cwd?: string } = {}): ServerProcess {
  const server = new ServerProcess(env, options)
  t.teardown(async () => { await server.kill() })
  return server
}

/** The embedded PostgreSQL's port, from the banner; undefined when the banner names none. */
export async function embeddedPort (server: ServerProcess): Promise<number | undefined> {
  const port = /embedded PostgreSQL on 127\.0\.0\.1:(\d+)/.exec(await server.banner())?.[1]
  return port === undefined ? undefined : Number(port)
}

/** The embedded server's superuser URL: its port from the banner, its password from DATA_DIR/pg.password. */
export async function embeddedAdminUrl (server: ServerProcess, dataDir: string): Promise<string> {
  const port = await embeddedPort(server)
  if (port === undefined) throw new Error(`no embedded banner: ${server.stdout}`)
  const password = (await readFile(path.join(dataDir, 'pg.password'), 'utf8')).trim()
  return `postgres://postgres:${password}@127.0.0.1:${port}/postgres`
}

/**
 * A new, empty DATA_DIR for the embedded default, removed at teardown; a PostgreSQL server still running in it (its
 * process died without stopping it: the server has a process group of its own) is stopped first.
 */
export async function embeddedDataDir (t: Tap, prefix: string): Promise<string> {
  const dataDir = await mkdtemp(path.join(tmpdir(), prefix))
  // As root the embedded server runs as the system user postgres, which must reach its directory inside.
  await chmod(dataDir, 0o755)
  t.teardown(async () => {
    const pidFile = path.join(dataDir, 'pg', 'postmaster.pid')
    if (existsSync(pidFile)) {
      const pid = Number((await readFile(pidFile, 'utf8')).split('\n')[0])
      try {
        process.kill(pid, 'SIGQUIT')
        for (let i = 0; i < 100; i++) { process.kill(pid, 0); await delay(100) }
      } catch {}
    }
    await rm(dataDir, { recursive: true, force: true })
  })
  return dataDir
}
