// What the bench's modes share: server child processes (with their RSS and CPU read from /proc), the database with
// pg_stat_statements, the signing keys and their JWKS endpoint, the compiled ceiling, and the report's formatting.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { closeSync, openSync, readFileSync } from 'node:fs'
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { exportJWK, generateKeyPair, SignJWT } from 'jose'
import postgres, { type Sql } from 'postgres'
import ts from 'typescript'
import { embeddedBinDir, LocalPostgres } from '../src/embedded/local-postgres.js'
import { grantApiLogin } from '../src/embedded/database.js'
import { migrate } from '../src/db/migrate.js'

export const ROOT = fileURLToPath(new URL('..', import.meta.url))

export const log = (line: string): void => { process.stderr.write(line + '\n') }

/** Compiles src/ to dist/ (what the app and the ceiling are started from), as `npm run build` does. */
export function buildDist (): void {
  log('building dist/ (npm run build)…')
  const build = spawnSync(process.execPath, [path.join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'], { cwd: ROOT, stdio: 'inherit' })
  if (build.status !== 0) throw new Error('the build failed')
}

/** Steps run in reverse order at the end, whatever happened. */
export class Cleanups {
  private readonly steps: Array<() => Promise<void>> = []
  add (step: () => Promise<void>): void { this.steps.push(step) }
  async run (): Promise<void> {
    for (const step of this.steps.reverse()) await step().catch((error: unknown) => { log(`cleanup: ${String(error)}`) })
    this.steps.length = 0
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Child processes

export interface Child { process: ChildProcess, output: () => string }

export interface ChildOptions {
  /** Spawned through prlimit(1) with this open-file limit (soft and hard). */
  openFiles?: number
}

/**
 * A server child with the same process settings for every server: production, loopback. Its standard output (log
 * lines) goes to a file, as it would to a log collector, so reading it costs the bench no CPU; stderr is kept too.
 */
export async function startChild (argv: string[], env: Record<string, string>, options: ChildOptions = {}): Promise<Child> {
  const dir = await mkdtemp(path.join(tmpdir(), 'eva-bench-out-'))
  const stdoutFile = path.join(dir, 'stdout')
  const fd = openSync(stdoutFile, 'w')
  const command = options.openFiles === undefined
    ? [process.execPath, ...argv]
    : ['prlimit', `--nofile=${options.openFiles}:${options.openFiles}`, process.execPath, ...argv]
  const child = spawn(command[0] ?? '', command.slice(1), {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', NODE_ENV: 'production', HOST: '127.0.0.1', ...env },
    stdio: ['ignore', fd, 'pipe']
  })
  closeSync(fd)
  let errors = ''
  child.stderr?.on('data', (chunk: Buffer) => { errors = (errors + chunk.toString()).slice(-4000) })
  child.once('exit', () => { void rm(dir, { recursive: true, force: true }) })
  const output = (): string => {
    let out = ''
    try { out = readFileSync(stdoutFile, 'utf8').slice(-4000) } catch {}
    return out + errors
  }
  return { process: child, output }
}

export async function stopChild (child: Child): Promise<void> {
  if (child.process.exitCode !== null || child.process.signalCode !== null) return
  await new Promise<void>((resolve) => {
    const timer = setTimeout(() => child.process.kill('SIGKILL'), 15_000)
    child.process.once('exit', () => { clearTimeout(timer); resolve() })
    child.process.kill('SIGTERM')
  })
}

/** Polls `url` until it answers 200; the child's exit or the deadline is a failure that shows its last output. */
export async function waitFor200 (url: string, child: Child, deadlineMs = 60_000): Promise<number> {
  const started = performance.now()
  while (performance.now() - started < deadlineMs) {
    if (child.process.exitCode !== null) throw new Error(`the server exited (${child.process.exitCode}) before ${url} answered 200:\n${child.output()}`)
    try {
      const response = await fetch(url)
      await response.arrayBuffer()
      if (response.status === 200) return performance.now() - started
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  throw new Error(`${url} did not answer 200 within ${deadlineMs} ms:\n${child.output()}`)
}

/**
 * The server's own pid: the child itself, or under prlimit(1) the process it execs into (prlimit execs, so the pid
 * is the same either way).
 */
export const pidOf = (child: Child): number | undefined => child.process.pid

/** The process's resident set size in bytes, from /proc (0 where there is no /proc). */
export async function rssOf (pid: number | undefined): Promise<number> {
  if (pid === undefined) return 0
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8')
    const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status)
    return match?.[1] === undefined ? 0 : Number(match[1]) * 1024
  } catch {
    return 0
  }
}

/** CPU time (user + system) the process has used, in microseconds, from /proc/<pid>/stat (clock ticks of 10 ms). */
export async function cpuMicrosOf (pid: number | undefined): Promise<number> {
  if (pid === undefined) return 0
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
    // The command name (field 2) may hold spaces: count from the closing parenthesis. utime, stime are fields 14, 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12])) * 10_000
  } catch {
    return 0
  }
}

/** Samples the process's RSS every 100 ms until stopped; resolves to the peak and the last sample. */
export function sampleRss (pid: number | undefined): { stop: () => Promise<{ peak: number, last: number }> } {
  let peak = 0
  let running = true
  const loop = (async () => {
    while (running) {
      peak = Math.max(peak, await rssOf(pid))
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  })()
  return {
    stop: async () => {
      running = false
      await loop
      const last = await rssOf(pid)
      return { peak: Math.max(peak, last), last }
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The database

export interface BenchDatabase {
  server: LocalPostgres
  /** The superuser: migrations, the row writer, pg_stat_statements. Its own statements are never counted. */
  admin: Sql
  /** What the app logs in as (Supabase's `authenticator`). */
  apiUrl: string
}

/** A PostgreSQL server from the embedded binaries in a temporary directory, migrated, pg_stat_statements loaded. */
export async function startDatabase (cleanups: Cleanups): Promise<BenchDatabase> {
  const parent = await mkdtemp(path.join(tmpdir(), 'eva-bench-pg-'))
  cleanups.add(async () => { await rm(parent, { recursive: true, force: true }) })
  // The cluster's password and lock files sit beside it: inside the temporary directory too.
  await chmod(parent, 0o755)
  const dataDir = path.join(parent, 'pg')
  const server = new LocalPostgres({ dataDir, binDir: process.env.PG_BIN ?? await embeddedBinDir(), settings: { shared_preload_libraries: 'pg_stat_statements' } })
  await server.init()
  await server.start()
  cleanups.add(async () => { await server.stop() })
  const admin = postgres(server.url, { max: 2, onnotice: () => {} })
  cleanups.add(async () => { await admin.end({ timeout: 2 }) })
  await migrate(admin)
  await admin`create extension if not exists pg_stat_statements`
  await grantApiLogin(admin, server)
  return { server, admin, apiUrl: server.loginUrl('authenticator') }
}

export interface StatementCount { statements: number, transactions: number, rowReads: number }

// pg_stat_statements does not count every BEGIN and COMMIT sent through the extended protocol (prepared), so they are
// left out of its sum and added back: two for every role-switched transaction (a read or a write), which has exactly
// one set_config('role', …) statement. Row reads are the statements that select the row.

export async function resetStatements (admin: Sql): Promise<void> {
  await admin`select pg_stat_statements_reset()`
}

export async function countStatements (admin: Sql): Promise<StatementCount> {
  // The settings statement's constants show as $1 in pg_stat_statements.
  const [row] = await admin<Array<{ statements: string, transactions: string, reads: string }>>`
    select coalesce(sum(s.calls) filter (where s.query !~* '^\\s*(begin|commit|rollback)\\M'), 0)::text as statements,
           coalesce(sum(s.calls) filter (where s.query ~* 'set_config\\((''role''|\\$1)'), 0)::text as transactions,
           coalesce(sum(s.calls) filter (where s.query ~* '^\\s*select' and s.query ~* 'eva_scheduler_heartbeat' and s.query !~* 'for update'), 0)::text as reads
    from pg_stat_statements s join pg_roles r on r.oid = s.userid
    where s.dbid = (select oid from pg_database where datname = current_database()) and not r.rolsuper`
  return {
    statements: Number(row?.statements ?? 0) + 2 * Number(row?.transactions ?? 0),
    transactions: Number(row?.transactions ?? 0),
    rowReads: Number(row?.reads ?? 0)
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Signing keys: an HS256 secret and an ES256 key published as a JWKS on loopback, as Supabase does.

export interface SigningKeys {
  secret: string
  jwksUrl: string
  hs256: (role: string) => Promise<string>
  es256: (role: string) => Promise<string>
}

export async function signingKeys (cleanups: Cleanups): Promise<SigningKeys> {
  const secret = randomBytes(48).toString('base64url')
  const ec = await generateKeyPair('ES256')
  const jwks = JSON.stringify({ keys: [{ ...await exportJWK(ec.publicKey), kid: 'bench-ec', alg: 'ES256', use: 'sig' }] })
  const jwksServer: Server = createServer((_request, response) => { response.writeHead(200, { 'content-type': 'application/json' }).end(jwks) })
  await new Promise<void>((resolve) => jwksServer.listen(0, '127.0.0.1', resolve))
  cleanups.add(async () => { jwksServer.closeAllConnections(); await new Promise<void>((resolve) => jwksServer.close(() => resolve())) })
  const exp = Math.floor(Date.now() / 1000) + 6 * 3600
  return {
    secret,
    jwksUrl: `http://127.0.0.1:${(jwksServer.address() as AddressInfo).port}/.well-known/jwks.json`,
    hs256: async (role) => await new SignJWT({ role, sub: `bench-${role}` })
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).setIssuedAt().setExpirationTime(exp).sign(new TextEncoder().encode(secret)),
    es256: async (role) => await new SignJWT({ role, sub: 'bench-es256' })
      .setProtectedHeader({ alg: 'ES256', typ: 'JWT', kid: 'bench-ec' }).setIssuedAt().setExpirationTime(exp).sign(ec.privateKey)
  }
}

/**
 * bench/<name>.ts (the ceiling, the reference) as plain JavaScript, so that it runs as the app does (compiled, no
 * loader): under dist/ (the build's output, not committed) so that it resolves fastify and postgres from this project.
 */
export async function compiledServer (name: 'ceiling' | 'reference'): Promise<string> {
  const source = await readFile(path.join(ROOT, `bench/${name}.ts`), 'utf8')
  const { outputText } = ts.transpileModule(source, { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } })
  const dir = path.join(ROOT, 'dist/bench')
  await mkdir(dir, { recursive: true })
  const file = path.join(dir, `${name}.mjs`)
  await writeFile(file, outputText)
  return file
}

export const compiledCeiling = async (): Promise<string> => await compiledServer('ceiling')

// ---------------------------------------------------------------------------------------------------------------
// The report

export const format = {
  int: (n: number): string => Math.round(n).toLocaleString('en-US'),
  ms: (n: number): string => n.toFixed(n < 10 ? 2 : 1),
  pct: (n: number): string => `${(n * 100).toFixed(1)}%`,
  mb: (bytes: number): string => (bytes / (1024 * 1024)).toFixed(0),
  ratio: (n: number): string => n.toFixed(n < 1 ? 3 : 2)
}

export const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[middle] ?? 0 : ((sorted[middle - 1] ?? 0) + (sorted[middle] ?? 0)) / 2
}

export function table (rows: string[][]): string {
  const widths = rows[0]?.map((_, column) => Math.max(...rows.map((row) => row[column]?.length ?? 0))) ?? []
  const line = (row: string[]): string => '| ' + row.map((cell, column) => column === 0 ? cell.padEnd(widths[column] ?? 0) : cell.padStart(widths[column] ?? 0)).join(' | ') + ' |'
  const rule = '|' + widths.map((width, column) => column === 0 ? '-'.repeat(width + 2) : '-'.repeat(width + 1) + ':').join('|') + '|'
  return [line(rows[0] ?? []), rule, ...rows.slice(1).map(line)].join('\n')
}

export const check = (label: string, ok: boolean, value: string): string => `  ${ok ? 'met    ' : 'MISSED '} ${label}: ${value}`
