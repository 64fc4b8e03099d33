// Load and soak (`npm run soak -- --minutes 10 --connections 50`; `--smoke` for 30 s): reliability under sustained
// load, not a benchmark. It starts a real PostgreSQL server (the embedded binaries, or PG_BIN's) in a temp dir, the
// demo scheduler writing the row, and the app as `npm start` runs it (built, a child process, NODE_ENV=production,
// LOG_LEVEL=warn); then drives a mix of reads with autocannon, and at a low rate pauses/resumes and bad tokens on the
// side. It samples the child's RSS (every 10 s, /proc/<pid>/status) and its event-loop delay (measured inside the
// child by perf_hooks.monitorEventLoopDelay, reported over IPC), and finally SIGTERMs the child and expects exit 0.
//
// Exit 1 when any request failed (a 5xx, a status not expected for its request, a socket error or timeout), the child
// did not shut down cleanly, or — not in --smoke mode — after the warm-up the RSS floor (each minute's lowest sample)
// spread over 10 % or event-loop delay p99 over 100 ms. The raw RSS spread (highest over lowest sample) is printed
// too: under load it includes garbage the next collection returns.
import { spawn, spawnSync } from 'node:child_process'
import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import autocannon from 'autocannon'
import { SignJWT } from 'jose'
import { startEmbeddedDatabase } from '../src/embedded/database.js'
import { freePort } from '../src/embedded/local-postgres.js'
import { DemoScheduler } from '../src/embedded/demo-scheduler.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const SECRET = 'soak-secret-for-eva-heartbeat-api-0123456789'
const RSS_SAMPLE_MS = 10_000
const LAG_P99_LIMIT_MS = 100
const RSS_SPREAD_LIMIT = 0.10

const { values: args } = parseArgs({
  options: {
    minutes: { type: 'string', default: '10' },
    connections: { type: 'string', default: '50' },
    /** Requests per second over all connections; 0: as fast as the app answers. */
    rate: { type: 'string', default: '0' },
    'warmup-seconds': { type: 'string', default: '60' },
    smoke: { type: 'boolean', default: false }
  }
})
const smoke = args.smoke === true
const durationS = smoke ? 30 : Math.round(Number(args.minutes) * 60)
const connections = Number(args.connections)
const rate = Number(args.rate)
const warmupS = smoke ? 10 : Number(args['warmup-seconds'])
if (![durationS, connections, rate, warmupS].every((n) => Number.isFinite(n) && n >= 0) || durationS <= warmupS || connections < 1) {
  process.stderr.write('usage: npm run soak -- [--minutes N] [--connections N] [--rate REQ_PER_S] [--warmup-seconds N] [--smoke]\n')
  process.exit(2)
}

const log = (line: string): void => { process.stdout.write(`[soak ${new Date().toISOString().slice(11, 19)}] ${line}\n`) }

async function sign (role: string, secret = SECRET): Promise<string> {
  return await new SignJWT({ role, sub: `soak-${role}` })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setExpirationTime(Math.floor(Date.now() / 1000) + durationS + 3600)
    .sign(new TextEncoder().encode(secret))
}

/** Runs in the child before the app (`--import data:…`): the event loop's delay, per second and since the last 'reset'. */
const PROBE = `
import { monitorEventLoopDelay } from 'node:perf_hooks'
const windowed = monitorEventLoopDelay({ resolution: 10 }); windowed.enable()
const total = monitorEventLoopDelay({ resolution: 10 }); total.enable()
const ms = (ns) => ns / 1e6
process.on('message', (m) => { if (m === 'reset') total.reset() })
process.channel?.unref()
setInterval(() => {
  process.send?.({ p99: ms(windowed.percentile(99)), max: ms(windowed.max), totalP99: ms(total.percentile(99)), totalMax: ms(total.max) })
  windowed.reset()
}, 1000).unref()
`

interface LagReport { p99: number, max: number, totalP99: number, totalMax: number }

/** Tally of answers per kind of request; `unexpected` holds the first few for the report. */
class Tally {
  readonly byKind = new Map<string, Map<number, number>>()
  failures = 0
  fiveXx = 0
  readonly unexpected: string[] = []

  record (kind: string, status: number, expected: readonly number[], detail = ''): void {
    const counts = this.byKind.get(kind) ?? new Map<number, number>()
    counts.set(status, (counts.get(status) ?? 0) + 1)
    this.byKind.set(kind, counts)
    if (status >= 500) this.fiveXx++
    if (!expected.includes(status)) {
      this.failures++
      if (this.unexpected.length < 10) this.unexpected.push(`${kind} → ${status} ${detail.slice(0, 200)}`)
    }
  }

  total (): number {
    let sum = 0
    for (const counts of this.byKind.values()) for (const n of counts.values()) sum += n
    return sum
  }
}

function percentile (values: number[], p: number): number {
  if (values.length === 0) return NaN
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN
}

async function rssKiB (pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  return Number(/^VmRSS:\s+(\d+)\s+kB$/m.exec(status)?.[1] ?? NaN)
}

const mib = (kib: number): string => `${(kib / 1024).toFixed(1)} MiB`

async function main (): Promise<number> {
  log(`${smoke ? 'smoke, ' : ''}${durationS} s at ${connections} connections${rate > 0 ? `, ${rate} req/s` : ', unthrottled'}; warm-up ${warmupS} s`)
  const build = spawnSync('npm', ['run', 'build', '--silent'], { cwd: ROOT, stdio: 'inherit' })
  if (build.status !== 0) throw new Error('npm run build failed')

  const dataDir = await mkdtemp(path.join(tmpdir(), 'eva-soak-'))
  await chmod(dataDir, 0o755) // as root, the server's user must reach the cluster inside (its password file sits beside it)
  const db = await startEmbeddedDatabase({ dataDir: path.join(dataDir, 'pg'), binDir: process.env.PG_BIN })
  const scheduler = new DemoScheduler(db.admin, { intervalSeconds: 2, onError: (error) => { log(`demo scheduler: ${String(error)}`) } })
  scheduler.start()
  const port = await freePort()
  const base = `http://127.0.0.1:${port}`
  const tally = new Tally()
  const lag: LagReport[] = []
  const rss: Array<{ atS: number, kib: number }> = []
  const livezMs: Array<{ atS: number, ms: number }> = []
  let childOutput = ''

  const child = spawn(process.execPath, ['--import', `data:text/javascript,${encodeURIComponent(PROBE)}`, 'dist/server.js'], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    env: {
      PATH: process.env.PATH,
      NODE_ENV: 'production',
      LOG_LEVEL: 'warn',
      HOST: '127.0.0.1',
      PORT: String(port),
      DATABASE_URL: db.apiUrl,
      JWT_SECRET: SECRET
    }
  })
  const exited = new Promise<number | null>((resolve) => { child.on('exit', (code) => { resolve(code) }) })
  const keep = (chunk: Buffer): void => { childOutput = (childOutput + chunk.toString()).slice(-20_000) }
  child.stdout?.on('data', keep)
  child.stderr?.on('data', keep)
  child.on('message', (message: LagReport) => { lag.push(message) })

  const timers: NodeJS.Timeout[] = []
  try {
    const deadline = Date.now() + 120_000
    while (!(await fetch(`${base}/livez`).then((r) => r.ok, () => false))) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`the app did not start:\n${childOutput}`)
      await new Promise((resolve) => setTimeout(resolve, 200))
    }
    const pid = child.pid ?? 0
    log(`app pid ${pid} on ${base}, RSS ${mib(await rssKiB(pid))}`)

    const reader = `Bearer ${await sign('authenticated')}`
    const admin = `Bearer ${await sign('service_role')}`
    const forged = `Bearer ${await sign('service_role', `${SECRET}-not-it`)}`
    const startedAt = Date.now()
    const atS = (): number => Math.round((Date.now() - startedAt) / 1000)

    timers.push(setInterval(() => { void rssKiB(pid).then((kib) => { rss.push({ atS: atS(), kib }) }, () => {}) }, RSS_SAMPLE_MS))
    timers.push(setTimeout(() => { child.send('reset') }, warmupS * 1000))
    // The event loop as a client sees it: a /livez probe each second beside the load (includes queueing).
    timers.push(setInterval(() => {
      const sent = performance.now()
      void fetch(`${base}/livez`).then(async (response) => {
        await response.arrayBuffer()
        tally.record('GET /livez (probe)', response.status, [200])
        livezMs.push({ atS: atS(), ms: performance.now() - sent })
      }, (error: unknown) => { tally.record('GET /livez (probe)', 0, [200], String(error)) })
    }, 1000))
    // Operators on the side: a pause or a resume every 10 s, a forged token every 5 s (12 a minute: below the
    // failed-authentication limit, so each must be a 401, never a 429).
    let pausing = true
    timers.push(setInterval(() => {
      const body = pausing ? { status: 'stopping', paused_reason: 'soak test' } : { status: 'running', paused_reason: null }
      pausing = !pausing
      void fetch(`${base}/heartbeat`, { method: 'PATCH', headers: { authorization: admin, 'content-type': 'application/json' }, body: JSON.stringify(body) })
        .then(async (response) => { tally.record('PATCH /heartbeat', response.status, [200], await response.text()) },
          (error: unknown) => { tally.record('PATCH /heartbeat', 0, [200], String(error)) })
    }, 10_000))
    timers.push(setInterval(() => {
      void fetch(`${base}/heartbeat`, { headers: { authorization: forged } })
        .then(async (response) => { tally.record('GET /heartbeat (forged token)', response.status, [401], await response.text()) },
          (error: unknown) => { tally.record('GET /heartbeat (forged token)', 0, [401], String(error)) })
    }, 5000))
    timers.push(setInterval(() => {
      const last = rss.at(-1)
      const lastLag = lag.at(-1)
      log(`${atS()} s: ${tally.total()} answers, ${tally.failures} failed; RSS ${last === undefined ? '?' : mib(last.kib)}; loop delay p99 ${lastLag?.p99.toFixed(1) ?? '?'} ms`)
    }, 60_000))

    const kinds: Array<{ kind: string, path: string, headers?: Record<string, string>, expected: number[] }> = [
      { kind: 'GET /heartbeat/liveness (public)', path: '/heartbeat/liveness', expected: [200] },
      { kind: 'GET /heartbeat', path: '/heartbeat', headers: { authorization: reader }, expected: [200] },
      { kind: 'GET /heartbeat/liveness (public)', path: '/heartbeat/liveness', expected: [200] },
      { kind: 'GET /heartbeat', path: '/heartbeat', headers: { authorization: reader }, expected: [200] },
      { kind: 'GET /metrics', path: '/metrics', headers: { authorization: reader }, expected: [200] }
    ]
    const result = await autocannon({
      url: base,
      connections,
      duration: durationS,
      ...(rate > 0 ? { overallRate: rate } : {}),
      timeout: 10,
      requests: kinds.map(({ kind, path, headers, expected }) => ({
        method: 'GET' as const,
        path,
        headers: headers ?? {},
        onResponse: (status: number, body: string) => { tally.record(kind, status, expected, body) }
      }))
    })
    for (const timer of timers) clearInterval(timer)
    rss.push({ atS: atS(), kib: await rssKiB(pid) })
    // Let the last side requests and the last lag report arrive.
    await new Promise((resolve) => setTimeout(resolve, 1500))

    child.kill('SIGTERM')
    const code = await Promise.race([exited, new Promise<'timeout'>((resolve) => setTimeout(() => { resolve('timeout') }, 15_000))])

    // The report.
    const problems: string[] = []
    const socketErrors = result.errors + result.timeouts
    const out: string[] = ['', `=== soak: ${durationS} s, ${connections} connections, ${result.requests.average.toFixed(0)} req/s on average`]
    out.push(`requests answered: ${tally.total()} (autocannon ${result.requests.total}, side loops ${tally.total() - result.requests.total})`)
    for (const [kind, counts] of tally.byKind) {
      out.push(`  ${kind}: ${[...counts].sort(([a], [b]) => a - b).map(([status, n]) => `${status}×${n}`).join(', ')}`)
    }
    out.push(`errors (unexpected status): ${tally.failures}; 5xx: ${tally.fiveXx}; socket errors: ${result.errors}, timeouts: ${result.timeouts}`)
    for (const line of tally.unexpected) out.push(`  ${line}`)
    out.push(`latency (autocannon): p50 ${result.latency.p50} ms, p99 ${result.latency.p99} ms, max ${result.latency.max} ms`)
    if (tally.failures > 0) problems.push(`${tally.failures} requests answered with an unexpected status`)
    if (tally.fiveXx > 0) problems.push(`${tally.fiveXx} answers were 5xx`)
    if (socketErrors > 0) problems.push(`${socketErrors} socket errors or timeouts`)

    const kibs = rss.map((s) => s.kib)
    const settled = rss.filter((s) => s.atS >= warmupS).map((s) => s.kib)
    const spread = settled.length > 0 ? (Math.max(...settled) - Math.min(...settled)) / Math.min(...settled) : NaN
    out.push(`RSS (${rss.length} samples, every ${RSS_SAMPLE_MS / 1000} s): first ${mib(kibs[0] ?? NaN)}, min ${mib(Math.min(...kibs))}, max ${mib(Math.max(...kibs))}, last ${mib(kibs.at(-1) ?? NaN)}`)
    out.push(`RSS after the ${warmupS} s warm-up (${settled.length} samples): min ${mib(Math.min(...settled))}, max ${mib(Math.max(...settled))}, spread ${(spread * 100).toFixed(1)} %`)
    out.push(`RSS samples (MiB): ${rss.map((s) => (s.kib / 1024).toFixed(0)).join(' ')}`)
    // A peak that garbage collection takes back is not growth; a leak raises the floor. The floor of each minute
    // after the warm-up (its lowest sample) must stay within the limit.
    const byMinute = new Map<number, number[]>()
    for (const sample of rss.filter((s) => s.atS >= warmupS)) {
      const minute = Math.floor((sample.atS - warmupS) / 60)
      byMinute.set(minute, [...(byMinute.get(minute) ?? []), sample.kib])
    }
    const floors = [...byMinute.values()].filter((samples) => samples.length >= 3).map((samples) => Math.min(...samples))
    const floorSpread = floors.length > 0 ? (Math.max(...floors) - Math.min(...floors)) / Math.min(...floors) : NaN
    out.push(`RSS floor of each minute after the warm-up (MiB): ${floors.map((kib) => (kib / 1024).toFixed(1)).join(' ')}; spread ${(floorSpread * 100).toFixed(1)} %`)
    const final = lag.at(-1)
    const perSecond = lag.map((l) => l.p99)
    out.push(`event-loop delay after the warm-up: p99 ${final?.totalP99.toFixed(1) ?? '?'} ms, max ${final?.totalMax.toFixed(1) ?? '?'} ms` +
      ` (per-second p99: median ${percentile(perSecond, 50).toFixed(1)} ms, worst ${Math.max(...perSecond).toFixed(1)} ms)`)
    const probes = livezMs.filter((s) => s.atS >= warmupS).map((s) => s.ms)
    out.push(`/livez probe beside the load, after the warm-up (${probes.length}): p50 ${percentile(probes, 50).toFixed(1)} ms, p99 ${percentile(probes, 99).toFixed(1)} ms, max ${Math.max(...probes).toFixed(1)} ms`)
    out.push(`shutdown: SIGTERM → ${code === 'timeout' ? 'still running after 15 s' : `exit ${String(code)}`}`)
    if (code !== 0) problems.push(`the app did not exit 0 after SIGTERM (${String(code)})`)
    if (!smoke) {
      if (!(floorSpread <= RSS_SPREAD_LIMIT)) problems.push(`RSS floor spread ${(floorSpread * 100).toFixed(1)} % after the warm-up (limit ${RSS_SPREAD_LIMIT * 100} %)`)
      if (final === undefined || !(final.totalP99 <= LAG_P99_LIMIT_MS)) problems.push(`event-loop delay p99 ${final?.totalP99.toFixed(1) ?? '?'} ms (limit ${LAG_P99_LIMIT_MS} ms)`)
    }
    if (childOutput.trim() !== '') out.push(`the app's output (LOG_LEVEL=warn), last lines:\n${childOutput.trim().split('\n').slice(-10).join('\n')}`)
    out.push(problems.length === 0 ? 'PASS' : `FAIL: ${problems.join('; ')}`)
    process.stdout.write(out.join('\n') + '\n')
    return problems.length === 0 ? 0 : 1
  } finally {
    for (const timer of timers) clearInterval(timer)
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    await scheduler.stop().catch(() => {})
    await db.stop()
    await rm(dataDir, { recursive: true, force: true })
  }
}

process.exitCode = await main()
