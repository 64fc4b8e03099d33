// `npm run bench`: the app under test and a bare-Fastify ceiling, each in a child process of its own, measured with
// autocannon from this process, interleaved round by round, against an embedded PostgreSQL server with
// pg_stat_statements (so database statements per HTTP request are counted, not guessed). Then the embedded default's
// start to ready, from a fresh and from an existing data directory. See docs/performance.md.
//
//   npm run bench -- [--rounds 3] [--duration 10] [--connections 50] [--smoke] [--skip-startup | --startup-only]
//                    [--app-node-options="--max-semi-space-size=4"]   (NODE_OPTIONS for the app's process only)
//                    [--compare DIR,DIR]   (other builds, DIR/dist/server.js, measured on the read targets too: bench/ablation.ts)
//
// Exit status: 1 when a measurement saw errors or unexpected statuses, or the bench could not run; never because a
// figure missed its target (the table says that).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { cpus, loadavg, tmpdir, totalmem } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import autocannon from 'autocannon'
import { exportJWK, generateKeyPair, SignJWT } from 'jose'
import postgres, { type Sql } from 'postgres'
import ts from 'typescript'
import { embeddedBinDir, freePort, LocalPostgres } from '../src/db/local-postgres.js'
import { migrate } from '../src/db/migrate.js'
import { DemoScheduler } from '../src/demo/scheduler.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    duration: { type: 'string', default: '10' },
    connections: { type: 'string', default: '50' },
    smoke: { type: 'boolean', default: false },
    'app-node-options': { type: 'string', default: '' },
    'skip-startup': { type: 'boolean', default: false },
    'startup-only': { type: 'boolean', default: false },
    compare: { type: 'string', default: '' }
  }
})
const positive = (name: string, text: string): number => {
  const value = Number(text)
  if (!Number.isInteger(value) || value < 1) throw new Error(`--${name} must be a whole number of at least 1 (got ${text})`)
  return value
}
const ROUNDS = args.smoke ? 1 : positive('rounds', args.rounds)
const DURATION = args.smoke ? 2 : positive('duration', args.duration)
const CONNECTIONS = positive('connections', args.connections)
const PATCH_CONNECTIONS = 4
const WARMUP_SECONDS = args.smoke ? 1 : 3
/** Other work on the machine skews every figure (the ratios less so: every target runs in every round). */
const LOAD_AT_START = loadavg()

// ---------------------------------------------------------------------------------------------------------------
// Child processes

interface Child { process: ChildProcess, output: () => string }

/** A child with the same process settings for every server: production, logs at warn, its stdout/stderr kept. */
function startChild (argv: string[], env: Record<string, string>): Child {
  const child = spawn(process.execPath, argv, {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', NODE_ENV: 'production', LOG_LEVEL: 'warn', HOST: '127.0.0.1', ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let output = ''
  const keep = (chunk: Buffer): void => { output = (output + chunk.toString()).slice(-4000) }
  child.stdout?.on('data', keep)
  child.stderr?.on('data', keep)
  return { process: child, output: () => output }
}

async function stopChild (child: Child): Promise<void> {
  if (child.process.exitCode !== null || child.process.signalCode !== null) return
  await new Promise<void>((resolve) => {
    const timer = setTimeout(() => child.process.kill('SIGKILL'), 15_000)
    child.process.once('exit', () => { clearTimeout(timer); resolve() })
    child.process.kill('SIGTERM')
  })
}

/** Polls `url` until it answers 200; the child's exit or the deadline is a failure that shows its last output. */
async function waitFor200 (url: string, child: Child, deadlineMs = 60_000): Promise<number> {
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

/** The child's resident set size in bytes, from /proc (0 where there is no /proc). */
async function rssOf (pid: number | undefined): Promise<number> {
  if (pid === undefined) return 0
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8')
    const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status)
    return match?.[1] === undefined ? 0 : Number(match[1]) * 1024
  } catch {
    return 0
  }
}

/** Samples the child's RSS every 100 ms until stopped; resolves to the peak. */
function sampleRss (pid: number | undefined): { stop: () => Promise<number> } {
  let peak = 0
  let running = true
  const loop = (async () => {
    while (running) {
      peak = Math.max(peak, await rssOf(pid))
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  })()
  return { stop: async () => { running = false; await loop; return Math.max(peak, await rssOf(pid)) } }
}

// ---------------------------------------------------------------------------------------------------------------
// The database: statements counted by pg_stat_statements for every role but the superuser (the writer, this bench)

interface StatementCount { statements: number, transactions: number }

// pg_stat_statements does not count every BEGIN and COMMIT sent through the extended protocol (prepared), so they are
// left out of its sum and added back: two for every role-switched transaction, which has exactly one set_config
// statement. Transactions below are those role-switched ones.

async function resetStatements (admin: Sql): Promise<void> {
  await admin`select pg_stat_statements_reset()`
}

async function countStatements (admin: Sql): Promise<StatementCount> {
  const [row] = await admin<Array<{ statements: string, transactions: string }>>`
    select coalesce(sum(s.calls) filter (where s.query !~* '^\\s*(begin|commit|rollback)\\M'), 0)::text as statements,
           coalesce(sum(s.calls) filter (where s.query ~* 'set_config\\(''role'''), 0)::text as transactions
    from pg_stat_statements s join pg_roles r on r.oid = s.userid
    where s.dbid = (select oid from pg_database where datname = current_database()) and not r.rolsuper`
  const transactions = Number(row?.transactions ?? 0)
  return { statements: Number(row?.statements ?? 0) + 2 * transactions, transactions }
}

// ---------------------------------------------------------------------------------------------------------------
// Targets and measurements

interface Target {
  name: string
  /** 'ceiling', 'app', or the name of a build given with --compare. */
  server: string
  path: string
  method?: 'GET' | 'PATCH'
  headers?: Record<string, string>
  body?: string
  connections: number
  /** Statuses this target is expected to answer; anything else counts as unexpected. */
  expect: number
  /** Whether database statements per request apply (not for the ceiling). */
  database: boolean
}

interface Measurement {
  rps: number
  p50: number
  p99: number
  requests: number
  errors: number
  unexpected: number
  rssPeak: number
  statements: number
  transactions: number
}

type Servers = Record<string, { url: string, child: Child }>

async function measure (target: Target, servers: Servers, admin: Sql, seconds: number): Promise<Measurement> {
  const server = servers[target.server]
  if (server === undefined) throw new Error(`no server ${target.server}`)
  await resetStatements(admin)
  const rss = sampleRss(server.child.process.pid)
  const result = await autocannon({
    url: server.url + target.path,
    method: target.method ?? 'GET',
    headers: { ...target.headers, ...(target.body !== undefined ? { 'content-type': 'application/json' } : {}) },
    body: target.body,
    connections: target.connections,
    duration: seconds,
    pipelining: 1
  })
  const rssPeak = await rss.stop()
  const count = await countStatements(admin)
  const requests = result['1xx'] + result['2xx'] + result['3xx'] + result['4xx'] + result['5xx']
  const matching = result.statusCodeStats?.[String(target.expect) as `${number}`]?.count ?? 0
  return {
    rps: requests / result.duration,
    p50: result.latency.p50,
    p99: result.latency.p99,
    requests,
    errors: result.errors,
    unexpected: requests - matching,
    rssPeak,
    statements: count.statements,
    transactions: count.transactions
  }
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[middle] ?? 0 : ((sorted[middle - 1] ?? 0) + (sorted[middle] ?? 0)) / 2
}

/**
 * bench/ceiling.ts as plain JavaScript, so that the ceiling runs as the app does (compiled, no loader): kept under
 * node_modules/.cache so that it resolves fastify from this project.
 */
async function compiledCeiling (): Promise<string> {
  const source = await readFile(path.join(ROOT, 'bench/ceiling.ts'), 'utf8')
  const { outputText } = ts.transpileModule(source, { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } })
  const dir = path.join(ROOT, 'node_modules/.cache/eva-heartbeat-bench')
  await mkdir(dir, { recursive: true })
  const file = path.join(dir, 'ceiling.mjs')
  await writeFile(file, outputText)
  return file
}

// ---------------------------------------------------------------------------------------------------------------
// Start to ready on the embedded default: `node dist/server.js` with a fresh DATA_DIR, then again with it kept

async function startToReady (): Promise<{ fresh: number, existing: number }> {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'eva-bench-start-'))
  // The embedded server may run as another user (postgres, when we are root): it must reach DATA_DIR/pg.
  await chmod(dataDir, 0o755)
  try {
    const once = async (): Promise<number> => {
      const port = await freePort()
      const child = startChild(['dist/server.js'], { PORT: String(port), DATA_DIR: dataDir, LOG_LEVEL: 'warn' })
      try {
        return await waitFor200(`http://127.0.0.1:${port}/readyz`, child)
      } finally {
        await stopChild(child)
      }
    }
    const fresh = await once()
    const existing = await once()
    return { fresh, existing }
  } finally {
    await rm(dataDir, { recursive: true, force: true })
  }
}

const ceilingOf = (servers: Servers): { url: string, child: Child } => {
  const found = servers.ceiling
  if (found === undefined) throw new Error('no ceiling server')
  return found
}

// ---------------------------------------------------------------------------------------------------------------

const format = {
  int: (n: number): string => Math.round(n).toLocaleString('en-US'),
  ms: (n: number): string => n.toFixed(n < 10 ? 2 : 1),
  pct: (n: number): string => `${(n * 100).toFixed(1)}%`,
  mb: (bytes: number): string => (bytes / (1024 * 1024)).toFixed(0),
  ratio: (n: number): string => n.toFixed(n < 1 ? 3 : 2)
}

function table (rows: string[][]): string {
  const widths = rows[0]?.map((_, column) => Math.max(...rows.map((row) => row[column]?.length ?? 0))) ?? []
  const line = (row: string[]): string => '| ' + row.map((cell, column) => column === 0 ? cell.padEnd(widths[column] ?? 0) : cell.padStart(widths[column] ?? 0)).join(' | ') + ' |'
  const rule = '|' + widths.map((width, column) => column === 0 ? '-'.repeat(width + 2) : '-'.repeat(width + 1) + ':').join('|') + '|'
  return [line(rows[0] ?? []), rule, ...rows.slice(1).map(line)].join('\n')
}

async function main (): Promise<number> {
  const log = (line: string): void => { process.stderr.write(line + '\n') }
  const cleanups: Array<() => Promise<void>> = []
  const cleanup = async (): Promise<void> => {
    for (const step of cleanups.reverse()) await step().catch((error: unknown) => log(`cleanup: ${String(error)}`))
  }
  process.once('SIGINT', () => { void cleanup().then(() => process.exit(130)) })

  try {
    log('building dist/ (npm run build)…')
    const build = spawnSync(process.execPath, [path.join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'], { cwd: ROOT, stdio: 'inherit' })
    if (build.status !== 0) throw new Error('the build failed')
    if (args['startup-only']) {
      const startup = await startToReady()
      process.stdout.write(`start to ready (node dist/server.js, embedded default, first 200 from /readyz): fresh DATA_DIR ${format.int(startup.fresh)} ms, existing DATA_DIR ${format.int(startup.existing)} ms\n`)
      return 0
    }

    // The database, with pg_stat_statements loaded so that every statement the app sends is counted.
    const dataDir = await mkdtemp(path.join(tmpdir(), 'eva-bench-pg-'))
    cleanups.push(async () => { await rm(dataDir, { recursive: true, force: true }) })
    const server = new LocalPostgres({ dataDir, binDir: process.env.PG_BIN ?? await embeddedBinDir(), settings: { shared_preload_libraries: 'pg_stat_statements' } })
    await server.init()
    await server.start()
    cleanups.push(async () => { await server.stop() })
    const admin = postgres(server.url, { max: 2, onnotice: () => {} })
    cleanups.push(async () => { await admin.end({ timeout: 2 }) })
    await migrate(admin)
    await admin`create extension if not exists pg_stat_statements`

    // The row writer: the demo scheduler, once a second, as the superuser (whose statements are not counted).
    const writer = new DemoScheduler(admin, { intervalSeconds: 1, onError: (error) => log(`row writer: ${String(error)}`) })
    writer.start()
    cleanups.push(async () => { await writer.stop() })

    // Signing keys: an HS256 secret and an ES256 key published as a JWKS on loopback, as Supabase does.
    const secret = randomBytes(48).toString('base64url')
    const ec = await generateKeyPair('ES256')
    const jwks = JSON.stringify({ keys: [{ ...await exportJWK(ec.publicKey), kid: 'bench-ec', alg: 'ES256', use: 'sig' }] })
    const jwksServer: Server = createServer((_request, response) => { response.writeHead(200, { 'content-type': 'application/json' }).end(jwks) })
    await new Promise<void>((resolve) => jwksServer.listen(0, '127.0.0.1', resolve))
    cleanups.push(async () => { jwksServer.closeAllConnections(); await new Promise<void>((resolve) => jwksServer.close(() => resolve())) })
    const jwksUrl = `http://127.0.0.1:${(jwksServer.address() as AddressInfo).port}/.well-known/jwks.json`

    const startApp = async (serverJs: string): Promise<{ url: string, child: Child }> => {
      const port = await freePort()
      const child = startChild([serverJs], {
        PORT: String(port),
        DATABASE_URL: `postgres://authenticator@127.0.0.1:${server.port}/postgres`,
        JWT_SECRET: secret,
        JWKS_URL: jwksUrl,
        ...(args['app-node-options'] !== '' ? { NODE_OPTIONS: args['app-node-options'] } : {})
      })
      cleanups.push(async () => { await stopChild(child) })
      await waitFor200(`http://127.0.0.1:${port}/readyz`, child)
      return { url: `http://127.0.0.1:${port}`, child }
    }
    const app = await startApp('dist/server.js')
    const appChild = app.child
    const ceilingPort = await freePort()
    const ceilingChild = startChild([await compiledCeiling()], { PORT: String(ceilingPort) })
    cleanups.push(async () => { await stopChild(ceilingChild) })
    const servers: Servers = { app, ceiling: { url: `http://127.0.0.1:${ceilingPort}`, child: ceilingChild } }
    await waitFor200(ceilingOf(servers).url + '/', ceilingChild)
    const compared = args.compare === '' ? [] : args.compare.split(',')
    for (const dir of compared) servers[path.basename(dir)] = await startApp(path.join(dir, 'dist/server.js'))
    const idleRss = await rssOf(appChild.process.pid)

    // Which optional routes this build has: from its own OpenAPI document.
    const openapi = await (await fetch(app.url + '/openapi.json')).json() as { paths?: Record<string, Record<string, unknown>> }
    const has = (method: string, route: string): boolean => openapi.paths?.[route]?.[method] !== undefined

    const exp = Math.floor(Date.now() / 1000) + 6 * 3600
    const hs256 = async (role: string): Promise<string> => await new SignJWT({ role, sub: `bench-${role}` })
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).setIssuedAt().setExpirationTime(exp).sign(new TextEncoder().encode(secret))
    const es256 = await new SignJWT({ role: 'authenticated', sub: 'bench-es256' })
      .setProtectedHeader({ alg: 'ES256', typ: 'JWT', kid: 'bench-ec' }).setIssuedAt().setExpirationTime(exp).sign(ec.privateKey)
    const authenticated = { authorization: `Bearer ${await hs256('authenticated')}` }
    const service = { authorization: `Bearer ${await hs256('service_role')}` }

    const targets: Target[] = [
      { name: 'ceiling: bare Fastify, constant JSON', server: 'ceiling', path: '/', connections: CONNECTIONS, expect: 200, database: false },
      { name: 'GET /heartbeat/liveness (public)', server: 'app', path: '/heartbeat/liveness', connections: CONNECTIONS, expect: 200, database: true },
      { name: 'GET /heartbeat, HS256 JWT, RLS', server: 'app', path: '/heartbeat', headers: authenticated, connections: CONNECTIONS, expect: 200, database: true },
      { name: 'GET /heartbeat, ES256 JWT (JWKS), RLS', server: 'app', path: '/heartbeat', headers: { authorization: `Bearer ${es256}` }, connections: CONNECTIONS, expect: 200, database: true }
    ]
    if (has('get', '/metrics')) {
      targets.push({ name: 'GET /metrics, HS256 JWT', server: 'app', path: '/metrics', headers: authenticated, connections: CONNECTIONS, expect: 200, database: true })
    }
    for (const dir of compared) {
      const name = path.basename(dir)
      targets.push(
        { name: `${name}: GET /heartbeat/liveness`, server: name, path: '/heartbeat/liveness', connections: CONNECTIONS, expect: 200, database: true },
        { name: `${name}: GET /heartbeat, HS256`, server: name, path: '/heartbeat', headers: authenticated, connections: CONNECTIONS, expect: 200, database: true },
        { name: `${name}: GET /heartbeat, ES256`, server: name, path: '/heartbeat', headers: { authorization: `Bearer ${es256}` }, connections: CONNECTIONS, expect: 200, database: true })
    }
    if (has('patch', '/heartbeat')) {
      // A change that leaves the demo scheduler running: the breaker stays closed.
      targets.push({ name: `PATCH /heartbeat, ${PATCH_CONNECTIONS} connections`, server: 'app', path: '/heartbeat', method: 'PATCH', headers: service, body: '{"circuit_breaker_state":"CLOSED"}', connections: PATCH_CONNECTIONS, expect: 200, database: true })
    }

    log(`machine: ${cpus().length} × ${cpus()[0]?.model ?? 'unknown CPU'}, ${format.mb(totalmem())} MB, Node ${process.version}`)
    log(`warm-up: ${WARMUP_SECONDS} s per target`)
    for (const target of targets) await measure(target, servers, admin, WARMUP_SECONDS)

    const results = new Map<Target, Measurement[]>(targets.map((target) => [target, []]))
    for (let round = 1; round <= ROUNDS; round++) {
      for (const target of targets) {
        const m = await measure(target, servers, admin, DURATION)
        results.get(target)?.push(m)
        log(`round ${round}/${ROUNDS}  ${target.name.padEnd(44)} ${format.int(m.rps).padStart(7)} req/s  p50 ${format.ms(m.p50)} ms  p99 ${format.ms(m.p99)} ms  ` +
          `errors ${m.errors}  unexpected ${m.unexpected}  RSS ${format.mb(m.rssPeak)} MB` +
          (target.database ? `  statements/req ${format.ratio(m.statements / Math.max(1, m.requests))}` : ''))
      }
    }

    let startup: { fresh: number, existing: number } | undefined
    if (!args['skip-startup']) {
      log('start to ready on the embedded default (node dist/server.js, no DATABASE_URL)…')
      startup = await startToReady()
    }

    // The report: medians over the rounds; errors summed; RSS the peak of all rounds.
    const summary = targets.map((target) => {
      const runs = results.get(target) ?? []
      return {
        target,
        rps: median(runs.map((m) => m.rps)),
        p50: median(runs.map((m) => m.p50)),
        p99: median(runs.map((m) => m.p99)),
        errors: runs.reduce((sum, m) => sum + m.errors, 0),
        unexpected: runs.reduce((sum, m) => sum + m.unexpected, 0),
        rssPeak: Math.max(...runs.map((m) => m.rssPeak)),
        statementsPerRequest: median(runs.map((m) => m.statements / Math.max(1, m.requests))),
        transactionsPerRequest: median(runs.map((m) => m.transactions / Math.max(1, m.requests)))
      }
    })
    const ceiling = summary[0]?.rps ?? 1
    const rows = [['target', 'req/s', 'of ceiling', 'p50 ms', 'p99 ms', 'errors', 'non-2xx', 'RSS MB', 'stmts/req', 'xacts/req']]
    for (const s of summary) {
      rows.push([
        s.target.name, format.int(s.rps), format.pct(s.rps / ceiling), format.ms(s.p50), format.ms(s.p99),
        String(s.errors), String(s.unexpected), format.mb(s.rssPeak),
        s.target.database ? format.ratio(s.statementsPerRequest) : '–', s.target.database ? format.ratio(s.transactionsPerRequest) : '–'
      ])
    }
    const out: string[] = []
    out.push(`eva-heartbeat-api bench: ${ROUNDS} round(s) × ${DURATION} s per target, ${CONNECTIONS} connections (PATCH ${PATCH_CONNECTIONS}), keep-alive, medians`)
    out.push(`machine: ${cpus().length} × ${cpus()[0]?.model ?? 'unknown CPU'}, ${format.mb(totalmem())} MB RAM, Node ${process.version}, ${process.platform}, load average ${LOAD_AT_START.map((n) => n.toFixed(1)).join(' ')} before the run`)
    out.push(`app: node dist/server.js${args['app-node-options'] !== '' ? ` with NODE_OPTIONS="${args['app-node-options']}"` : ''}, RSS ${format.mb(idleRss)} MB idle after start`)
    out.push('')
    out.push(table(rows))
    if (startup !== undefined) {
      out.push('')
      out.push(`start to ready (node dist/server.js, embedded default, first 200 from /readyz): fresh DATA_DIR ${format.int(startup.fresh)} ms, existing DATA_DIR ${format.int(startup.existing)} ms`)
    }

    const byName = (prefix: string): typeof summary[number] | undefined => summary.find((s) => s.target.name.startsWith(prefix))
    const reads = summary.filter((s) => s.target.server === 'app' && s.target.database && s.target.connections === CONNECTIONS)
    const check = (label: string, ok: boolean, value: string): string => `  ${ok ? 'met    ' : 'MISSED '} ${label}: ${value}`
    const jwtRead = [byName('GET /heartbeat, HS256'), byName('GET /heartbeat, ES256')].filter((s) => s !== undefined)
    const liveness = byName('GET /heartbeat/liveness')
    const worstStatements = Math.max(...reads.map((s) => s.statementsPerRequest))
    const worstRss = Math.max(...summary.filter((s) => s.target.server === 'app').map((s) => s.rssPeak))
    out.push('')
    out.push('targets:')
    for (const s of jwtRead) out.push(check(`${s.target.name} ≥ 50% of the ceiling`, s.rps / ceiling >= 0.5, format.pct(s.rps / ceiling)))
    if (liveness !== undefined) out.push(check('GET /heartbeat/liveness ≥ 70% of the ceiling', liveness.rps / ceiling >= 0.7, format.pct(liveness.rps / ceiling)))
    out.push(check(`database statements per request ≤ 0.1 at ${CONNECTIONS} clients (worst read target)`, worstStatements <= 0.1, format.ratio(worstStatements)))
    out.push(check('RSS under load ≤ 120 MB (peak)', worstRss <= 120 * 1024 * 1024, `${format.mb(worstRss)} MB`))
    if (startup !== undefined) {
      out.push(check('start to ready < 3 s (existing DATA_DIR)', startup.existing < 3000, `${format.int(startup.existing)} ms`))
      out.push(check('start to ready < 3 s (fresh DATA_DIR)', startup.fresh < 3000, `${format.int(startup.fresh)} ms`))
    }
    process.stdout.write('\n' + out.join('\n') + '\n')

    const failures = summary.filter((s) => s.errors > 0 || s.unexpected > 0)
    for (const s of failures) log(`FAILED: ${s.target.name}: ${s.errors} connection errors, ${s.unexpected} responses other than ${s.target.expect}`)
    return failures.length > 0 ? 1 : 0
  } finally {
    await cleanup()
  }
}

main().then((code) => { process.exitCode = code }, (error: unknown) => {
  process.stderr.write(`bench failed: ${error instanceof Error ? error.stack ?? error.message : String(error)}\n`)
  process.exitCode = 1
})
