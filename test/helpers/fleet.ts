// A fleet as it runs in production: replicas of the built server (`node dist/server.js`, real processes on loopback
// ports), a real HAProxy running deploy/haproxy/haproxy.cfg in front (only addresses set, through its environment),
// and what the fleet tests measure: HAProxy's own view of its servers, process CPU and RSS, database counters.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import net from 'node:net'
import path from 'node:path'
import type { Sql } from 'postgres'
import { freePort } from '../../src/embedded/local-postgres.js'
import { environment, ROOT } from './server-process.js'
import { findSbin } from './tools.js'
import { delay, eventually } from './wait.js'

export const HAPROXY_CONFIG = path.join(ROOT, 'deploy/haproxy/haproxy.cfg')
export const HAPROXY = findSbin('haproxy')

/** `npm run build`: the fleet runs what is deployed, dist/, so it must be today's. */
export function buildDist (): void {
  const build = spawnSync(process.execPath, [path.join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'], { cwd: ROOT, encoding: 'utf8' })
  if (build.status !== 0) throw new Error(`the build failed: ${build.stdout}${build.stderr}`)
}

const clockTicks = 100 // USER_HZ on Linux

/** CPU seconds (user + system) a process has used, from /proc/<pid>/stat. */
export async function cpuSeconds (pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) / clockTicks
}

export async function rssMiB (pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  return Number(/^VmRSS:\s+(\d+)\s+kB$/m.exec(status)?.[1] ?? NaN) / 1024
}

/** One replica: a fixed loopback port (HAProxy's server line names it), started again on the same port. */
export class Replica {
  private child: ChildProcess | undefined
  private exited: Promise<void> = Promise.resolve()
  output = ''

  constructor (readonly name: string, readonly port: number, private readonly env: Record<string, string>) {}

  get address (): string { return `127.0.0.1:${this.port}` }
  get base (): string { return `http://${this.address}` }
  get pid (): number {
    if (this.child?.pid === undefined) throw new Error(`${this.name} is not running`)
    return this.child.pid
  }

  get running (): boolean { return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null }

  /** Starts the process and waits until its own /readyz answers 200. */
  async start (): Promise<void> {
    const child = this.child = spawn(process.execPath, ['dist/server.js'], {
      cwd: ROOT,
      env: environment({ HOST: '127.0.0.1', PORT: String(this.port), LOG_LEVEL: 'warn', ...this.env }),
      stdio: ['ignore', 'pipe', 'pipe']
    })
    const keep = (chunk: Buffer): void => { this.output = (this.output + chunk.toString()).slice(-20_000) }
    child.stdout?.on('data', keep)
    child.stderr?.on('data', keep)
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.output += `\n[${this.name} pid ${child.pid ?? '?'} exited: ${String(code ?? signal)}]`
        resolve()
      })
    })
    await eventually(async () => {
      if (child.exitCode !== null) throw new Error(`${this.name} exited with ${child.exitCode}: ${this.output}`)
      try {
        return (await fetch(`${this.base}/readyz`)).status === 200
      } catch {
        return false
      }
    }, 60_000, `${this.name} ready`)
  }

  /** Sends the signal and waits for the process to end. */
  async stop (signal: NodeJS.Signals): Promise<void> {
    if (this.running) this.child?.kill(signal)
    await this.exited
  }
}

export interface ServerStat {
  backend: string
  server: string
  /** UP, DOWN, MAINT, "UP 1/2", ... as HAProxy's stats page shows it. */
  status: string
  /** Sessions open now. */
  current: number
  /** Requests this server was retried for / redispatched away from. */
  retries: number
  redispatches: number
}

/** A real HAProxy running the shipped configuration. */
export class HaProxy {
  private output = ''
  private constructor (private readonly child: ChildProcess, readonly base: string, readonly stats: string, private readonly socket: string, private readonly exited: Promise<void>) {}

  static async start (replicas: Replica[], dir: string): Promise<HaProxy> {
    const [bind, statsBind] = [await freePort(), await freePort()]
    const socket = path.join(dir, 'haproxy-admin.sock')
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? '',
      HAPROXY_BIND: `127.0.0.1:${bind}`,
      HAPROXY_STATS_BIND: `127.0.0.1:${statsBind}`,
      HAPROXY_ADMIN_SOCKET: socket
    }
    replicas.forEach((replica, i) => { env[`EVA_API_${i + 1}`] = replica.address })
    // -db: stay in the foreground, logs to stdout; the test ends it by its own pid.
    if (HAPROXY === undefined) throw new Error('haproxy is not installed (apt-get install -y haproxy)')
    const child = spawn(HAPROXY, ['-db', '-f', HAPROXY_CONFIG], { env, stdio: ['ignore', 'pipe', 'pipe'] })
    const exited = new Promise<void>((resolve) => { child.once('exit', () => { resolve() }) })
    const proxy = new HaProxy(child, `http://127.0.0.1:${bind}`, `http://127.0.0.1:${statsBind}`, socket, exited)
    // The test's own polling of the stats page is left out of the log it keeps.
    const keep = (chunk: Buffer): void => {
      const lines = chunk.toString().split('\n').filter((line) => !line.includes('stats/<STATS>')).join('\n')
      proxy.output = (proxy.output + lines).slice(-50_000)
    }
    child.stdout?.on('data', keep)
    child.stderr?.on('data', keep)
    await eventually(async () => {
      if (child.exitCode !== null) throw new Error(`haproxy exited with ${child.exitCode}: ${proxy.output}`)
      return (await proxy.servers().catch(() => [])).filter((s) => s.status === 'UP').length === replicas.length * 3
    }, 20_000, 'haproxy sees every replica UP')
    return proxy
  }

  get log (): string { return this.output }
  /** The runtime API's Unix socket (admin level). */
  get adminSocket (): string { return this.socket }
  get pid (): number { return this.child.pid ?? NaN }

  async stop (): Promise<void> {
    if (this.child.exitCode === null) this.child.kill('SIGTERM')
    await this.exited
  }

  /** Every server of every backend, from the stats page's CSV. */
  async servers (): Promise<ServerStat[]> {
    const csv = await (await fetch(`${this.stats}/stats;csv`)).text()
    const [header, ...lines] = csv.trim().split('\n')
    const names = (header ?? '').replace(/^# /, '').split(',')
    const column = (fields: string[], name: string): string => fields[names.indexOf(name)] ?? ''
    return lines.map((line) => line.split(',')).filter((f) => !['FRONTEND', 'BACKEND'].includes(column(f, 'svname'))).map((f) => ({
      backend: column(f, 'pxname'),
      server: column(f, 'svname'),
      status: column(f, 'status'),
      current: Number(column(f, 'scur')),
      retries: Number(column(f, 'wretr')),
      redispatches: Number(column(f, 'wredis'))
    }))
  }

  async server (backend: string, server: string): Promise<ServerStat> {
    const found = (await this.servers()).find((s) => s.backend === backend && s.server === server)
    if (found === undefined) throw new Error(`no server ${backend}/${server}`)
    return found
  }

  /** One command on the runtime API (the admin socket); its answer. */
  async admin (command: string): Promise<string> {
    return await new Promise((resolve, reject) => {
      let answer = ''
      const connection = net.createConnection(this.socket, () => { connection.end(`${command}\n`) })
      connection.setEncoding('utf8').on('data', (chunk: string) => { answer += chunk })
      connection.on('end', () => { resolve(answer) }).on('error', reject)
    })
  }

  async waitStatus (server: string, status: string, timeoutMs = 30_000): Promise<number> {
    const started = performance.now()
    let last = ''
    try {
      await eventually(async () => (last = (await this.server('replicas', server)).status) === status, timeoutMs, `${server} ${status}`)
    } catch (error) {
      const lines = this.output.split('\n').filter((line) => line.includes(`/${server} `) && !line.includes('<STATS>')).slice(-5)
      throw new Error(`${(error as Error).message} (still ${last}; HAProxy said: ${lines.join(' / ')})`)
    }
    return performance.now() - started
  }
}

/** Statements the API (every non-superuser role) has run since the database started, and transactions committed. */
export async function databaseWork (admin: Sql): Promise<{ statements: number, transactions: number }> {
  const [s] = await admin<Array<{ calls: string | null }>>`
    select sum(s.calls)::text as calls from pg_stat_statements s join pg_roles r on r.oid = s.userid where not r.rolsuper`
  const [x] = await admin<Array<{ xacts: string }>>`
    select (xact_commit + xact_rollback)::text as xacts from pg_stat_database where datname = current_database()`
  return { statements: Number(s?.calls ?? 0), transactions: Number(x?.xacts ?? 0) }
}

export interface Outcome { kind: string, status: number | string, ok: boolean, at: number }

/**
 * Client traffic through HAProxy: uptime monitors (GET and HEAD /heartbeat/liveness, no token) and dashboards
 * (GET /heartbeat with a token, half of them revalidating with If-None-Match), each a loop that sends one request
 * every `periodMs` (or as soon as the previous answer is in, when that is later): the same offered load whatever
 * is behind HAProxy. Every answer is kept.
 */
export class Load {
  readonly outcomes: Outcome[] = []
  private running = true
  private readonly loops: Array<Promise<void>> = []

  constructor (base: string, options: { monitors: number, readers: number, periodMs: number, authorization: string }) {
    for (let i = 0; i < options.monitors; i++) {
      const method = i % 2 === 0 ? 'GET' : 'HEAD'
      this.loops.push(this.loop(`${method} /heartbeat/liveness`, options.periodMs, async () =>
        await fetch(`${base}/heartbeat/liveness`, { method }), (status) => status === 200))
    }
    for (let i = 0; i < options.readers; i++) {
      let etag: string | undefined
      this.loops.push(this.loop('GET /heartbeat', options.periodMs, async () => {
        const headers: Record<string, string> = { authorization: options.authorization }
        if (i % 2 === 1 && etag !== undefined) headers['if-none-match'] = etag
        const response = await fetch(`${base}/heartbeat`, { headers })
        etag = response.headers.get('etag') ?? etag
        return response
      }, (status) => status === 200 || status === 304))
    }
  }

  private async loop (kind: string, periodMs: number, send: () => Promise<Response>, good: (status: number) => boolean): Promise<void> {
    // Spread over the period, so that the loops do not fire together.
    let due = performance.now() + Math.random() * periodMs
    while (this.running) {
      await delay(Math.max(0, due - performance.now()))
      due += periodMs
      let status: number | string
      try {
        const response = await send()
        await response.arrayBuffer()
        status = response.status
      } catch (error) {
        const cause = (error as { cause?: { code?: string } }).cause
        status = cause?.code ?? String(error)
      }
      this.outcomes.push({ kind, status, ok: typeof status === 'number' && good(status), at: performance.now() })
    }
  }

  async stop (): Promise<void> {
    this.running = false
    await Promise.all(this.loops)
  }

  get failures (): Outcome[] { return this.outcomes.filter((o) => !o.ok) }

  /** "412 GET /heartbeat/liveness, 1 × ECONNRESET GET /heartbeat" style summary of what failed. */
  describeFailures (): string {
    const counts = new Map<string, number>()
    for (const f of this.failures) counts.set(`${String(f.status)} ${f.kind}`, (counts.get(`${String(f.status)} ${f.kind}`) ?? 0) + 1)
    return [...counts].map(([what, n]) => `${n} × ${what}`).join(', ') || 'none'
  }
}

export { delay }
