// `npm run bench -- --watchers 10000`: one app process (default settings, stream caps raised to N) with N concurrent
// /heartbeat/events clients on loopback, as dashboards and status pages hold them open. It measures:
//   - the app's RSS with N clients connected;
//   - database reads of the row per poll interval (pg_stat_statements), which must stay one whatever N is;
//   - for every row change, the share of the N clients that had the event within 1 s of the poll that saw it (the
//     event's liveness.checked_at is the database's now() of that poll; same machine, same clock);
//   - p99 of GET /heartbeat/liveness served beside them by a paced client (wrk, 10 connections).
// The open-file limits are raised by the bench itself: its own with `prlimit --pid`, the app's by starting it under
// `prlimit --nofile` (util-linux); both need the hard limit to allow it (or root). Clients connect from several
// loopback source addresses (127.0.0.2, .3, …), so that no one address runs out of ephemeral ports.
//
//   npm run bench -- --watchers 10000 [--duration 20] [--sources 4] [--write-interval 2]
import { spawnSync } from 'node:child_process'
import { connect, type Socket } from 'node:net'
import { cpus, loadavg, totalmem } from 'node:os'
import { parseArgs } from 'node:util'
import { freePort } from '../src/embedded/local-postgres.js'
import { DemoScheduler } from '../src/embedded/demo-scheduler.js'
import {
  buildDist, check, Cleanups, countStatements, cpuMicrosOf, format, log, resetStatements, rssOf, sampleRss, signingKeys,
  startChild, startDatabase, stopChild, waitFor200
} from './harness.js'
import { availableTool, runLoad } from './load.js'

const EVENTS_INTERVAL_MS = 1000 // the app's default EVENTS_INTERVAL_MS
const DEADLINE_MS = 1000
const RSS_LIMIT = 300 * 1024 * 1024
const LIVENESS_P99_LIMIT_MS = 50

/** Raises this process's open-file limit (soft and hard) to `files`; says what it did. */
function raiseOwnLimit (files: number): void {
  const result = spawnSync('prlimit', ['--pid', String(process.pid), `--nofile=${files}:${files}`], { encoding: 'utf8' })
  if (result.status !== 0) throw new Error(`prlimit --pid ${process.pid} --nofile=${files}:${files} failed (util-linux's prlimit, and a hard limit that allows it, or root): ${result.stderr}`)
  log(`open-file limit raised to ${files} for this process (prlimit --pid) and the app's (prlimit --nofile)`)
}

/** One SSE client on a raw socket: it notes when each event's checked_at arrived, and nothing else. */
class Watcher {
  readonly socket: Socket
  /** checked_at (ISO text) → when it arrived here (ms since the epoch). */
  readonly arrivals = new Map<string, number>()
  status = 0
  closed = false
  private carry = ''

  constructor (port: number, localAddress: string, request: string, onHead: (watcher: Watcher) => void) {
    this.socket = connect({ host: '127.0.0.1', port, localAddress })
    this.socket.setEncoding('latin1')
    this.socket.on('connect', () => { this.socket.write(request) })
    this.socket.on('data', (chunk: string) => {
      const now = Date.now()
      if (this.status === 0) {
        this.status = Number(/^HTTP\/1\.1 (\d{3})/.exec(chunk)?.[1] ?? -1)
        onHead(this)
      }
      this.read(this.carry + chunk, now)
    })
    this.socket.on('close', () => { this.closed = true; if (this.status === 0) { this.status = -1; onHead(this) } })
    this.socket.on('error', () => {})
  }

  private read (text: string, now: number): void {
    const marker = '"checked_at":"'
    let at = text.indexOf(marker)
    let consumed = 0
    while (at !== -1) {
      const end = text.indexOf('"', at + marker.length)
      if (end === -1) break
      const checkedAt = text.slice(at + marker.length, end)
      if (!this.arrivals.has(checkedAt)) this.arrivals.set(checkedAt, now)
      consumed = end + 1
      at = text.indexOf(marker, consumed)
    }
    this.carry = text.slice(Math.max(consumed, text.length - 60))
  }
}

const quantile = (sorted: number[], q: number): number => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? NaN

export async function runWatchers (): Promise<number> {
  const { values: args } = parseArgs({
    options: {
      watchers: { type: 'string', default: '10000' },
      duration: { type: 'string', default: '20' },
      sources: { type: 'string' },
      'write-interval': { type: 'string', default: '2' }
    },
    strict: false
  })
  const count = Number(args.watchers)
  const seconds = Number(args.duration)
  const writeInterval = Number(args['write-interval'])
  const sources = args.sources !== undefined ? Number(args.sources) : Math.max(1, Math.ceil(count / 2500))
  if (!Number.isInteger(count) || count < 1) throw new Error('--watchers must be a whole number of clients')
  const loadAtStart = loadavg()
  const files = count + 4096
  raiseOwnLimit(files)

  const cleanups = new Cleanups()
  process.once('SIGINT', () => { void cleanups.run().then(() => process.exit(130)) })
  try {
    buildDist()
    const db = await startDatabase(cleanups)
    const writer = new DemoScheduler(db.admin, { intervalSeconds: writeInterval, onError: (error) => log(`row writer: ${String(error)}`) })
    writer.start()
    cleanups.add(async () => { await writer.stop() })
    const keys = await signingKeys(cleanups)
    const port = await freePort()
    // One token from a few addresses: the stream caps are raised to the client count, or they would refuse the bench.
    const caps = { EVENTS_MAX_PER_PRINCIPAL: String(count), EVENTS_MAX_PER_ADDRESS: String(count), EVENTS_MAX_TOTAL: String(count) }
    const app = await startChild(['dist/server.js'], { PORT: String(port), DATABASE_URL: db.apiUrl, JWT_SECRET: keys.secret, JWKS_URL: keys.jwksUrl, ...caps }, { openFiles: files })
    cleanups.add(async () => { await stopChild(app) })
    await waitFor200(`http://127.0.0.1:${port}/readyz`, app)
    const pid = app.process.pid
    const idleRss = await rssOf(pid)

    const token = await keys.hs256('authenticated')
    const request = `GET /heartbeat/events HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAuthorization: Bearer ${token}\r\nAccept: text/event-stream\r\n\r\n`
    const watchers: Watcher[] = []
    const connectStarted = performance.now()
    const BATCH = 250
    for (let i = 0; i < count; i += BATCH) {
      const batch = Math.min(BATCH, count - i)
      await new Promise<void>((resolve) => {
        let answered = 0
        const onHead = (): void => { if (++answered === batch) resolve() }
        for (let j = 0; j < batch; j++) watchers.push(new Watcher(port, `127.0.0.${2 + ((i + j) % sources)}`, request, onHead))
      })
    }
    const connectSeconds = (performance.now() - connectStarted) / 1000
    const refused = watchers.filter((w) => w.status !== 200)
    log(`${count - refused.length} of ${count} clients connected (200) in ${connectSeconds.toFixed(1)} s from ${sources} source address(es)` +
      (refused.length > 0 ? `; not 200: ${[...new Set(refused.map((w) => w.status))].join(', ')}` : ''))
    // Let the arrivals of the connect phase (the current event, sent at subscribe) settle.
    await new Promise((resolve) => setTimeout(resolve, 2000))

    /** The app's own view, from its /metrics: event-loop delay since the last scrape, and time in GC by kind. */
    const scrape = async (): Promise<{ lagP99: number, lagMax: number, gc: Record<string, { count: number, sum: number }> }> => {
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`, { headers: { authorization: `Bearer ${token}` } })).text()
      const value = (name: string): number => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN)
      const gc: Record<string, { count: number, sum: number }> = {}
      for (const m of text.matchAll(/^nodejs_gc_duration_seconds_(sum|count)\{kind="(\w+)"\} (\S+)$/gm)) {
        const entry = gc[m[2] ?? ''] ??= { count: 0, sum: 0 }
        entry[m[1] === 'sum' ? 'sum' : 'count'] = Number(m[3])
      }
      return { lagP99: value('nodejs_eventloop_lag_p99_seconds'), lagMax: value('nodejs_eventloop_lag_max_seconds'), gc }
    }
    const gcDuring = (before: Awaited<ReturnType<typeof scrape>>, after: Awaited<ReturnType<typeof scrape>>): string =>
      Object.entries(after.gc).map(([kind, a]) => `${kind} ${a.count - (before.gc[kind]?.count ?? 0)}× ${Math.round(1000 * (a.sum - (before.gc[kind]?.sum ?? 0)))} ms`).join(', ')

    // Phase 1: the clients alone. Reads of the row, RSS, CPU, and how fast each change reached the clients.
    const phase = async (label: string, beside?: () => Promise<{ p50: number, p99: number, requests: number, errors: number, unexpected: number }>) => {
      const appBefore = await scrape()
      await resetStatements(db.admin)
      const windowStart = Date.now()
      const rss = sampleRss(pid)
      const cpuBefore = await cpuMicrosOf(pid)
      const startedAt = Date.now()
      const liveness = beside !== undefined ? await beside() : await new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), seconds * 1000))
      const endedAt = Date.now()
      // Events polled in this window, given time to arrive.
      await new Promise((resolve) => setTimeout(resolve, 1500))
      const cpu = await cpuMicrosOf(pid) - cpuBefore
      const memory = await rss.stop()
      const reads = await countStatements(db.admin)
      const appAfter = await scrape()
      const intervals = (Date.now() - windowStart) / EVENTS_INTERVAL_MS
      const events = new Map<string, number[]>()
      for (const watcher of watchers) {
        for (const [checkedAt, arrived] of watcher.arrivals) {
          const polled = Date.parse(checkedAt)
          if (polled < startedAt || polled > endedAt) continue
          let delays = events.get(checkedAt)
          if (delays === undefined) events.set(checkedAt, delays = [])
          delays.push(arrived - polled)
        }
      }
      const open = watchers.filter((w) => w.status === 200 && !w.closed).length
      const shares = [...events.values()].map((delays) => delays.filter((d) => d <= DEADLINE_MS).length / open)
      const all = [...events.values()].flat().sort((a, b) => a - b)
      return { label, lag: `${format.ms(appAfter.lagP99 * 1000)} / ${format.ms(appAfter.lagMax * 1000)}`, gc: gcDuring(appBefore, appAfter), liveness, intervals, cpuShare: cpu / ((endedAt - startedAt + 1500) * 1000), memory, readsPerInterval: reads.rowReads / intervals, reads, events: events.size, open, worstShare: Math.min(...shares), p50: quantile(all, 0.5), p99: quantile(all, 0.99), max: all.at(-1) ?? NaN }
    }
    log(`phase 1: ${count} clients, ${seconds} s`)
    const alone = await phase('clients alone')
    const tool = availableTool()
    log(`phase 2: the same, with GET /heartbeat/liveness beside them (${tool}, 10 connections, each pausing 20 ms between requests)`)
    const beside = await phase('with liveness load', async () => await runLoad(tool, { url: `http://127.0.0.1:${port}/heartbeat/liveness`, method: 'GET', headers: {}, connections: 10, seconds, threads: 1, delayMs: 20 }, 200))

    for (const w of watchers) w.socket.destroy()

    const out: string[] = []
    out.push(`eva-heartbeat-api bench --watchers ${count}: one app process (default settings, EVENTS_INTERVAL_MS ${EVENTS_INTERVAL_MS}), the row written every ${writeInterval} s, ${seconds} s per phase`)
    out.push(`machine: ${cpus().length} × ${cpus()[0]?.model ?? 'unknown CPU'}, ${format.mb(totalmem())} MB RAM, Node ${process.version}; load average ${loadAtStart.map((n) => n.toFixed(1)).join(' ')} before, ${loadavg().map((n) => n.toFixed(1)).join(' ')} after`)
    out.push(`open-file limit raised to ${files} (this process: prlimit --pid; the app: prlimit --nofile); clients from ${sources} loopback source address(es), connected in ${connectSeconds.toFixed(1)} s; RSS ${format.mb(idleRss)} MB before they connected`)
    out.push('')
    out.push('| phase | clients open | RSS MB peak/after | app CPU | row reads per interval | changes seen | worst share within 1 s | delay p50 / p99 / max ms | liveness p50 / p99 ms | app event-loop delay p99 / max ms | app GC |')
    out.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|')
    for (const p of [alone, beside]) {
      out.push(`| ${p.label} | ${format.int(p.open)} | ${format.mb(p.memory.peak)}/${format.mb(p.memory.last)} | ${format.pct(p.cpuShare)} | ${p.readsPerInterval.toFixed(2)} | ${p.events} | ${format.pct(p.worstShare)} | ${p.p50} / ${p.p99} / ${p.max} | ` +
        `${p.liveness !== undefined ? `${format.ms(p.liveness.p50)} / ${format.ms(p.liveness.p99)} (${format.int(p.liveness.requests)} requests, ${p.liveness.errors + p.liveness.unexpected} failed)` : '–'} | ${p.lag} | ${p.gc} |`)
    }
    const peakRss = Math.max(alone.memory.peak, beside.memory.peak)
    out.push('')
    out.push('targets (issue 12):')
    out.push(check(`RSS at ${format.int(count)} clients ≤ 300 MB`, peakRss <= RSS_LIMIT, `${format.mb(peakRss)} MB (peak)`))
    // The poller reads, then waits a whole interval: at most one read per interval, plus one for the window's edges.
    out.push(check('database reads of the row per interval stay one (clients alone)', alone.reads.rowReads <= Math.ceil(alone.intervals) + 1 && alone.reads.rowReads > 0,
      `${alone.reads.rowReads} reads in ${alone.intervals.toFixed(1)} intervals (${alone.readsPerInterval.toFixed(2)} per interval; with the liveness load beside, ${beside.readsPerInterval.toFixed(2)}: the liveness requests' own shared reads)`))
    const worst = Math.min(alone.worstShare, beside.worstShare)
    out.push(check('each row change reaches 99% of the clients within 1 s of the poll that saw it', worst >= 0.99 && alone.events > 0, `worst change ${format.pct(worst)} of ${format.int(alone.open)} clients`))
    const p99 = beside.liveness?.p99 ?? Infinity
    out.push(check(`GET /heartbeat/liveness p99 beside them ≤ ${LIVENESS_P99_LIMIT_MS} ms`, p99 <= LIVENESS_P99_LIMIT_MS, `${format.ms(p99)} ms`))
    process.stdout.write('\n' + out.join('\n') + '\n')
    const failed = refused.length > 0 || (beside.liveness?.errors ?? 0) > 0 || (beside.liveness?.unexpected ?? 0) > 0
    return failed ? 1 : 0
  } finally {
    await cleanups.run()
  }
}
