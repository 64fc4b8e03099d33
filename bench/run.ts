// `npm run bench`: the app under test, a bare-Fastify ceiling and the reference (bench/reference.ts: a bare Fastify
// route doing the app's strict read, shared as the app shares it), each in a child process of its own, loaded by wrk
// (autocannon where wrk is not installed), interleaved round by round, against an embedded PostgreSQL server with
// pg_stat_statements (so database statements per HTTP request are counted, not guessed). The app runs at its default
// settings (LOG_LEVEL info, nothing turned off). Then the embedded default's start to ready, from a fresh and from an
// existing data directory. `--watchers N` runs bench/watchers.ts instead: N event-stream clients on one process.
// See docs/performance.md.
//
//   npm run bench -- [--rounds 3] [--duration 10] [--connections 50] [--threads 1] [--tool wrk|autocannon] [--smoke]
//                    [--skip-startup | --startup-only] [--skip-writes] [--only TEXT]   (only targets named with TEXT)
//                    [--app-env "LOG_LEVEL=warn,LOG_REQUESTS=true"]   (more environment for the app's process)
//                    [--app-node-options="--max-semi-space-size=4"]   (NODE_OPTIONS for the app's process only)
//                    [--app-node-args="--cpu-prof --cpu-prof-dir=/tmp/prof"]   (node's own arguments for the app's process)
//                    [--ceiling-node-args="…"]   (the same for the ceiling's)
//                    [--compare DIR,DIR]   (other builds, DIR/dist/server.js, measured on the read targets too: bench/ablation.ts)
//                    [--compare-json '[{"name":…,"dir":…,"env":{…}}]']   (the same, each with a name and its own environment)
//   npm run bench -- --watchers 10000 [--duration 20] …   (see bench/watchers.ts)
//
// Exit status: 1 when a measurement saw errors or unexpected statuses, or the bench could not run; never because a
// figure missed its target (the table says that).
import { chmod, mkdtemp, rm } from 'node:fs/promises'
import { cpus, loadavg, tmpdir, totalmem } from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'
import type { Sql } from 'postgres'
import { freePort } from '../src/embedded/local-postgres.js'
import { DemoScheduler } from '../src/embedded/demo-scheduler.js'
import {
  buildDist, check, Cleanups, compiledServer, countStatements, cpuMicrosOf, format, log, median, resetStatements, rssOf,
  sampleRss, signingKeys, startChild, startDatabase, stopChild, table, waitFor200, type Child
} from './harness.js'
import { availableTool, runLoad, type LoadTool } from './load.js'

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    duration: { type: 'string', default: '10' },
    connections: { type: 'string', default: '50' },
    threads: { type: 'string', default: '1' },
    tool: { type: 'string' },
    smoke: { type: 'boolean', default: false },
    'app-env': { type: 'string', default: '' },
    'app-node-options': { type: 'string', default: '' },
    'app-node-args': { type: 'string', default: '' },
    'ceiling-node-args': { type: 'string', default: '' },
    'skip-startup': { type: 'boolean', default: false },
    'startup-only': { type: 'boolean', default: false },
    'skip-writes': { type: 'boolean', default: false },
    compare: { type: 'string', default: '' },
    'compare-json': { type: 'string', default: '' },
    watchers: { type: 'string' },
    only: { type: 'string', default: '' },
    help: { type: 'boolean', default: false }
  },
  strict: false
})
const text = (name: string, fallback: string): string => typeof args[name] === 'string' ? args[name] : fallback
const positive = (name: string, value: string): number => {
  const n = Number(value)
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a whole number of at least 1 (got ${value})`)
  return n
}

/** KEY=VALUE,KEY=VALUE → an environment. */
function parseEnv (list: string): Record<string, string> {
  const env: Record<string, string> = {}
  for (const pair of list.split(',').map((p) => p.trim()).filter((p) => p !== '')) {
    const eq = pair.indexOf('=')
    if (eq < 1) throw new Error(`--app-env: ${pair} is not KEY=VALUE`)
    env[pair.slice(0, eq)] = pair.slice(eq + 1)
  }
  return env
}

interface Target {
  name: string
  /** 'ceiling', 'reference', 'app', or the name of a compared build. */
  server: string
  path: string
  method?: 'GET' | 'PATCH'
  headers?: Record<string, string>
  body?: string
  connections: number
  /** The status this target is expected to answer; anything else counts as unexpected. */
  expect: number
  /** Whether database statements per request apply (not for the ceiling). */
  database: boolean
  /** Read targets run first, all rounds; then the others (their load leaves the heap bigger). */
  phase: 'read' | 'other'
}

interface Measurement {
  rps: number
  p50: number
  p99: number
  requests: number
  errors: number
  unexpected: number
  rssPeak: number
  rssAfter: number
  cpuPerRequestUs: number
  statements: number
  transactions: number
}

type Servers = Record<string, { url: string, child: Child }>

interface Compared { name: string, dir: string, env: Record<string, string> }

const USAGE = `npm run bench -- [--rounds 3] [--duration 10] [--connections 50] [--threads 1] [--tool wrk|autocannon] [--smoke]
  [--skip-startup | --startup-only] [--skip-writes] [--only TEXT] [--app-env "K=V,K=V"] [--app-node-options=…]
  [--app-node-args="…"] [--ceiling-node-args="…"] [--compare DIR,DIR] [--compare-json '[…]']
npm run bench -- --watchers N [--duration 20]
Targets: the ceiling (bare Fastify), the reference (bench/reference.ts: the strict read, shared), the app's routes.
See docs/performance.md.
`

async function main (): Promise<number> {
  if (args.help === true) {
    process.stdout.write(USAGE)
    return 0
  }
  if (args.watchers !== undefined) {
    const { runWatchers } = await import('./watchers.js')
    return await runWatchers()
  }
  const ROUNDS = args.smoke === true ? 1 : positive('rounds', text('rounds', '3'))
  const DURATION = args.smoke === true ? 2 : positive('duration', text('duration', '10'))
  const CONNECTIONS = positive('connections', text('connections', '50'))
  const THREADS = positive('threads', text('threads', '1'))
  const PATCH_CONNECTIONS = 4
  const WARMUP_SECONDS = args.smoke === true ? 1 : 3
  const tool: LoadTool = args.tool === 'autocannon' || args.tool === 'wrk' ? args.tool : availableTool()
  const appEnv = parseEnv(text('app-env', ''))
  const appNodeOptions = text('app-node-options', '')
  /** Other work on the machine skews every figure (the ratios less so: every target runs in every round). */
  const loadAtStart = loadavg()

  const cleanups = new Cleanups()
  process.once('SIGINT', () => { void cleanups.run().then(() => process.exit(130)) })
  try {
    buildDist()
    if (args['startup-only'] === true) {
      const startup = await startToReady()
      process.stdout.write(`start to ready (node dist/server.js, embedded default, first 200 from /readyz): fresh DATA_DIR ${format.int(startup.fresh)} ms, existing DATA_DIR ${format.int(startup.existing)} ms\n`)
      return 0
    }

    const db = await startDatabase(cleanups)
    // The row writer: the demo scheduler, once a second, as the superuser (whose statements are not counted).
    const writer = new DemoScheduler(db.admin, { intervalSeconds: 1, onError: (error) => log(`row writer: ${String(error)}`) })
    writer.start()
    cleanups.add(async () => { await writer.stop() })
    const keys = await signingKeys(cleanups)

    const startApp = async (serverJs: string, env: Record<string, string>): Promise<{ url: string, child: Child }> => {
      const port = await freePort()
      const nodeArgs = text('app-node-args', '').split(' ').filter((a) => a !== '')
      const child = await startChild([...nodeArgs, serverJs], {
        PORT: String(port),
        DATABASE_URL: db.apiUrl,
        JWT_SECRET: keys.secret,
        JWKS_URL: keys.jwksUrl,
        ...(appNodeOptions !== '' ? { NODE_OPTIONS: appNodeOptions } : {}),
        ...env
      })
      cleanups.add(async () => { await stopChild(child) })
      await waitFor200(`http://127.0.0.1:${port}/readyz`, child)
      return { url: `http://127.0.0.1:${port}`, child }
    }
    const app = await startApp('dist/server.js', appEnv)
    const ceilingPort = await freePort()
    const ceilingArgs = text('ceiling-node-args', '').split(' ').filter((a) => a !== '')
    const ceilingChild = await startChild([...ceilingArgs, await compiledServer('ceiling')], { PORT: String(ceilingPort), LOG_LEVEL: 'warn' })
    cleanups.add(async () => { await stopChild(ceilingChild) })
    const referencePort = await freePort()
    const referenceChild = await startChild([...ceilingArgs, await compiledServer('reference')], { PORT: String(referencePort), LOG_LEVEL: 'warn', DATABASE_URL: db.apiUrl })
    cleanups.add(async () => { await stopChild(referenceChild) })
    const servers: Servers = {
      app,
      ceiling: { url: `http://127.0.0.1:${ceilingPort}`, child: ceilingChild },
      reference: { url: `http://127.0.0.1:${referencePort}`, child: referenceChild }
    }
    await waitFor200(servers.ceiling?.url + '/', ceilingChild)
    await waitFor200(servers.reference?.url + '/', referenceChild)
    const compared: Compared[] = [
      ...text('compare', '').split(',').filter((dir) => dir !== '').map((dir) => ({ name: path.basename(dir), dir, env: {} })),
      ...(text('compare-json', '') === '' ? [] : (JSON.parse(text('compare-json', '')) as Array<Omit<Compared, 'env'> & Partial<Compared>>).map((c) => ({ ...c, env: c.env ?? {} })))
    ]
    for (const c of compared) servers[c.name] = await startApp(path.join(c.dir, 'dist/server.js'), { ...appEnv, ...c.env })
    const idleRss = await rssOf(app.child.process.pid)

    // Which optional routes this build has: from its own OpenAPI document.
    const openapi = await (await fetch(app.url + '/openapi.json')).json() as { paths?: Record<string, Record<string, unknown>> }
    const has = (method: string, route: string): boolean => openapi.paths?.[route]?.[method] !== undefined

    const authenticated = { authorization: `Bearer ${await keys.hs256('authenticated')}` }
    const es256 = { authorization: `Bearer ${await keys.es256('authenticated')}` }
    const service = { authorization: `Bearer ${await keys.hs256('service_role')}` }
    const read = (name: string, server: string, route: string, headers?: Record<string, string>): Target =>
      ({ name, server, path: route, headers, connections: CONNECTIONS, expect: 200, database: server !== 'ceiling', phase: 'read' })

    const targets: Target[] = [
      read('ceiling: bare Fastify, constant JSON', 'ceiling', '/'),
      read('reference: Fastify + strict read, shared', 'reference', '/'),
      read('GET /heartbeat/liveness (public)', 'app', '/heartbeat/liveness'),
      read('GET /heartbeat, HS256 JWT, RLS', 'app', '/heartbeat', authenticated),
      read('GET /heartbeat, ES256 JWT (JWKS), RLS', 'app', '/heartbeat', es256)
    ]
    for (const { name } of compared) {
      targets.push(
        read(`${name}: GET /heartbeat/liveness`, name, '/heartbeat/liveness'),
        read(`${name}: GET /heartbeat, HS256`, name, '/heartbeat', authenticated),
        read(`${name}: GET /heartbeat, ES256`, name, '/heartbeat', es256))
    }
    if (args['skip-writes'] !== true && has('get', '/metrics')) {
      targets.push({ ...read('GET /metrics, HS256 JWT', 'app', '/metrics', authenticated), phase: 'other' })
    }
    if (args['skip-writes'] !== true && has('patch', '/heartbeat')) {
      // A change that leaves the demo scheduler running: the breaker stays closed.
      targets.push({ name: `PATCH /heartbeat, ${PATCH_CONNECTIONS} connections`, server: 'app', path: '/heartbeat', method: 'PATCH', headers: service, body: '{"circuit_breaker_state":"CLOSED"}', connections: PATCH_CONNECTIONS, expect: 200, database: true, phase: 'other' })
    }

    // --only: the ceiling and the targets whose name contains the text (e.g. a CPU profile of one route).
    const only = text('only', '')
    if (only !== '') targets.splice(0, targets.length, ...targets.filter((t) => t.server === 'ceiling' || t.server === 'reference' || t.name.includes(only)))
    const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'unknown CPU'}, ${format.mb(totalmem())} MB RAM, Node ${process.version}, ${process.platform}`
    log(`machine: ${machine}; load generator: ${tool}${tool === 'wrk' ? ` (${THREADS} thread)` : ''}`)
    const measure = async (target: Target, seconds: number): Promise<Measurement> => await measureOne(tool, THREADS, target, servers, db.admin, seconds)
    const results = new Map<Target, Measurement[]>(targets.map((target) => [target, []]))
    for (const phase of ['read', 'other'] as const) {
      const group = targets.filter((target) => target.phase === phase)
      // Each phase's warm-up just before it: /metrics and PATCH load before the read rounds would grow the heap.
      if (group.length > 0) log(`warm-up: ${WARMUP_SECONDS} s per target (${phase} targets)`)
      for (const target of group) await measure(target, WARMUP_SECONDS)
      for (let round = 1; round <= ROUNDS && group.length > 0; round++) {
        for (const target of group) {
          const m = await measure(target, DURATION)
          results.get(target)?.push(m)
          log(`round ${round}/${ROUNDS}  ${target.name.padEnd(44)} ${format.int(m.rps).padStart(7)} req/s  p50 ${format.ms(m.p50)} ms  p99 ${format.ms(m.p99)} ms  ` +
            `CPU ${format.int(m.cpuPerRequestUs)} µs/req  errors ${m.errors}  unexpected ${m.unexpected}  RSS ${format.mb(m.rssPeak)}/${format.mb(m.rssAfter)} MB` +
            (target.database ? `  statements/req ${format.ratio(m.statements / Math.max(1, m.requests))}` : ''))
        }
      }
    }

    let startup: { fresh: number, existing: number } | undefined
    if (args['skip-startup'] !== true) {
      log('start to ready on the embedded default (node dist/server.js, no DATABASE_URL)…')
      startup = await startToReady()
    }

    // The report: medians over the rounds; errors summed; RSS the highest of all rounds.
    const summary = targets.map((target) => {
      const runs = results.get(target) ?? []
      return {
        target,
        rps: median(runs.map((m) => m.rps)),
        p50: median(runs.map((m) => m.p50)),
        p99: median(runs.map((m) => m.p99)),
        cpu: median(runs.map((m) => m.cpuPerRequestUs)),
        errors: runs.reduce((sum, m) => sum + m.errors, 0),
        unexpected: runs.reduce((sum, m) => sum + m.unexpected, 0),
        rssPeak: Math.max(...runs.map((m) => m.rssPeak)),
        rssAfter: Math.max(...runs.map((m) => m.rssAfter)),
        statementsPerRequest: median(runs.map((m) => m.statements / Math.max(1, m.requests))),
        transactionsPerRequest: median(runs.map((m) => m.transactions / Math.max(1, m.requests)))
      }
    })
    const ceiling = summary.find((s) => s.target.server === 'ceiling')
    const reference = summary.find((s) => s.target.server === 'reference')
    const ceilingRps = ceiling?.rps ?? 1
    const referenceRps = reference?.rps ?? 1
    const rows = [['target', 'req/s', 'of reference', 'of ceiling', 'p50 ms', 'p99 ms', 'p99 × reference', 'CPU µs/req', 'errors', 'non-2xx', 'RSS MB peak/after', 'stmts/req', 'xacts/req']]
    for (const s of summary) {
      rows.push([
        s.target.name, format.int(s.rps), format.pct(s.rps / referenceRps), format.pct(s.rps / ceilingRps), format.ms(s.p50), format.ms(s.p99),
        format.ratio(s.p99 / Math.max(0.001, reference?.p99 ?? 1)), format.int(s.cpu),
        String(s.errors), String(s.unexpected), `${format.mb(s.rssPeak)}/${format.mb(s.rssAfter)}`,
        s.target.database ? format.ratio(s.statementsPerRequest) : '–', s.target.database ? format.ratio(s.transactionsPerRequest) : '–'
      ])
    }
    const out: string[] = []
    out.push(`eva-heartbeat-api bench: ${tool}${tool === 'wrk' ? ` (${THREADS} thread)` : ''}, ${ROUNDS} round(s) × ${DURATION} s per target, ${CONNECTIONS} connections (PATCH ${PATCH_CONNECTIONS}), keep-alive, medians`)
    out.push(`machine: ${machine}, load average ${loadAtStart.map((n) => n.toFixed(1)).join(' ')} before the run, ${loadavg().map((n) => n.toFixed(1)).join(' ')} after`)
    const settings = Object.entries(appEnv).map(([k, v]) => `${k}=${v}`).join(' ')
    out.push(`app: node dist/server.js, ${settings === '' ? 'default settings' : settings}${appNodeOptions !== '' ? `, NODE_OPTIONS="${appNodeOptions}"` : ''}; RSS ${format.mb(idleRss)} MB idle after start`)
    for (const c of compared) out.push(`compared: ${c.name} = ${c.dir}${Object.keys(c.env).length > 0 ? ` with ${Object.entries(c.env).map(([k, v]) => `${k}=${v}`).join(' ')}` : ''}`)
    out.push('')
    out.push(table(rows))
    if (startup !== undefined) {
      out.push('')
      out.push(`start to ready (node dist/server.js, embedded default, first 200 from /readyz): fresh DATA_DIR ${format.int(startup.fresh)} ms, existing DATA_DIR ${format.int(startup.existing)} ms`)
    }

    const of = (name: string): typeof summary[number] | undefined => summary.find((s) => s.target.name === name)
    const liveness = of('GET /heartbeat/liveness (public)')
    const hs = of('GET /heartbeat, HS256 JWT, RLS')
    const es = of('GET /heartbeat, ES256 JWT (JWKS), RLS')
    const appReads = [liveness, hs, es].filter((s) => s !== undefined)
    const share = (s: typeof summary[number] | undefined, goal: number, label: string, of: 'reference' | 'ceiling'): string => {
      const anchor = of === 'reference' ? referenceRps : ceilingRps
      return check(`${label} ≥ ${Math.round(goal * 100)}% of the ${of}'s req/s`, (s?.rps ?? 0) / anchor >= goal, format.pct((s?.rps ?? 0) / anchor))
    }
    const worstP99 = Math.max(...appReads.map((s) => s.p99))
    const readRss = Math.max(...appReads.map((s) => s.rssAfter))
    const worstStatements = Math.max(...appReads.map((s) => s.statementsPerRequest))
    out.push('')
    out.push('targets (ratios to the reference and to the ceiling measured in this run; docs/performance.md):')
    out.push(share(liveness, 0.85, 'GET /heartbeat/liveness', 'reference'))
    out.push(share(liveness, 0.75, 'GET /heartbeat/liveness', 'ceiling'))
    out.push(share(hs, 0.75, 'GET /heartbeat, HS256 + RLS', 'reference'))
    out.push(share(hs, 0.65, 'GET /heartbeat, HS256 + RLS', 'ceiling'))
    out.push(check(`p99 at ${CONNECTIONS} connections ≤ 1.5 × the reference's p99 (worst read target)`, worstP99 <= 1.5 * (reference?.p99 ?? 0), `${format.ratio(worstP99 / Math.max(0.001, reference?.p99 ?? 1))} ×`))
    out.push(check('RSS after the read load ≤ 1.3 × the reference process\'s', readRss <= 1.3 * (reference?.rssAfter ?? 0), `${format.ratio(readRss / Math.max(1, reference?.rssAfter ?? 1))} × (${format.mb(readRss)} MB against ${format.mb(reference?.rssAfter ?? 0)} MB)`))
    out.push(check(`database statements per request ≤ 0.1 at ${CONNECTIONS} clients (worst read target)`, worstStatements <= 0.1, format.ratio(worstStatements)))
    if (startup !== undefined) {
      out.push(check('start to ready < 3 s (existing DATA_DIR)', startup.existing < 3000, `${format.int(startup.existing)} ms`))
      out.push(check('start to ready < 3 s (fresh DATA_DIR)', startup.fresh < 3000, `${format.int(startup.fresh)} ms`))
    }
    process.stdout.write('\n' + out.join('\n') + '\n')

    const failures = summary.filter((s) => s.errors > 0 || s.unexpected > 0)
    for (const s of failures) log(`FAILED: ${s.target.name}: ${s.errors} connection errors, ${s.unexpected} responses other than ${s.target.expect}`)
    return failures.length > 0 ? 1 : 0
  } finally {
    await cleanups.run()
  }
}

async function measureOne (tool: LoadTool, threads: number, target: Target, servers: Servers, admin: Sql, seconds: number): Promise<Measurement> {
  const server = servers[target.server]
  if (server === undefined) throw new Error(`no server ${target.server}`)
  const pid = server.child.process.pid
  await resetStatements(admin)
  const rss = sampleRss(pid)
  const cpuBefore = await cpuMicrosOf(pid)
  const result = await runLoad(tool, {
    url: server.url + target.path,
    method: target.method ?? 'GET',
    headers: target.headers ?? {},
    body: target.body,
    connections: target.connections,
    seconds,
    threads
  }, target.expect)
  const cpu = await cpuMicrosOf(pid) - cpuBefore
  const { peak, last } = await rss.stop()
  const count = await countStatements(admin)
  return {
    rps: result.requests / result.seconds,
    p50: result.p50,
    p99: result.p99,
    requests: result.requests,
    errors: result.errors,
    unexpected: result.unexpected,
    rssPeak: peak,
    rssAfter: last,
    cpuPerRequestUs: cpu / Math.max(1, result.requests),
    statements: count.statements,
    transactions: count.transactions
  }
}

// Start to ready on the embedded default: `node dist/server.js` with a fresh DATA_DIR, then again with it kept.
async function startToReady (): Promise<{ fresh: number, existing: number }> {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'eva-bench-start-'))
  // The embedded server may run as another user (postgres, when we are root): it must reach DATA_DIR/pg.
  await chmod(dataDir, 0o755)
  try {
    const once = async (): Promise<number> => {
      const port = await freePort()
      // The harness runs NODE_ENV=production, where the embedded database is an explicit choice.
      const child = await startChild(['dist/server.js'], { PORT: String(port), DATA_DIR: dataDir, LOG_LEVEL: 'warn', EMBEDDED_IN_PRODUCTION: 'true' })
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

main().then((code) => { process.exitCode = code }, (error: unknown) => {
  process.stderr.write(`bench failed: ${error instanceof Error ? error.stack ?? error.message : String(error)}\n`)
  process.exitCode = 1
})
