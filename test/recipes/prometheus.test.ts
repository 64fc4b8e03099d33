// deploy/prometheus/ proven with the real tools: promtool checks the rules, runs their unit tests and lints real
// scrapes of /metrics; a real Prometheus server, configured from prometheus.yml, scrapes the running app with a
// bearer token file and probes liveness through a real blackbox_exporter.
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { deleteRow, startTestApp, token, writeRow } from '../helpers/app.js'
import { PROMETHEUS_DIR, prometheusConfig } from '../helpers/prometheus-config.js'
import { findTool, needs, run, startDaemon } from '../helpers/tools.js'
import { eventually } from '../helpers/wait.js'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const BLACKBOX_CONFIG = path.join(ROOT, 'deploy/blackbox/blackbox.yml')

const promtool = findTool('promtool')
const prometheus = findTool('prometheus')
const blackbox = findTool('prometheus-blackbox-exporter', 'blackbox_exporter')
// Without blackbox_exporter the Prometheus test checks the /metrics job only (a failure under CI=true).
const noProbe = needs(blackbox, 'blackbox_exporter', 'prometheus-blackbox-exporter').skip

const { app, db } = await startTestApp(t)
const address = await app.listen({ host: '127.0.0.1', port: 0 })
const authorization = `Bearer ${await token({ role: 'authenticated', sub: 'prometheus' })}`

const work = await mkdtemp(path.join(tmpdir(), 'eva-prometheus-'))
t.teardown(async () => { await rm(work, { recursive: true, force: true }) })

t.test('promtool check rules: alerts.yml', needs(promtool, 'promtool', 'prometheus'), async (t) => {
  const result = run(promtool as string, ['check', 'rules', path.join(PROMETHEUS_DIR, 'alerts.yml')])
  t.equal(result.status, 0, 'exits 0', { output: result.stdout + result.stderr })
  t.match(result.stdout, /SUCCESS: \d+ rules found/)
})

t.test('promtool test rules: alerts.test.yml', needs(promtool, 'promtool', 'prometheus'), async (t) => {
  const result = run(promtool as string, ['test', 'rules', path.join(PROMETHEUS_DIR, 'alerts.test.yml')])
  t.equal(result.status, 0, 'exits 0', { output: result.stdout + result.stderr })
  t.match(result.stdout, /SUCCESS/)
})

t.test('promtool check metrics accepts real scrapes of /metrics', needs(promtool, 'promtool', 'prometheus'), async (t) => {
  const scrapes: Array<[string, () => Promise<void>]> = [
    ['alive', async () => { await writeRow(db.admin) }],
    ['stale, breaker half-open', async () => { await writeRow(db.admin, { lastPollAgo: 400, nextPollIn: -340, circuit_breaker_state: 'HALF_OPEN' }) }],
    ['no row', async () => { await deleteRow(db.admin) }]
  ]
  for (const [label, setup] of scrapes) {
    await setup()
    await app.inject({ url: '/heartbeat/liveness' })
    const res = await fetch(`${address}/metrics`, { headers: { authorization } })
    t.equal(res.status, 200)
    const body = await res.text()
    const result = run(promtool as string, ['check', 'metrics'], body)
    t.equal(result.status, 0, `${label}: exits 0`, { output: result.stdout + result.stderr })
    t.equal((result.stdout + result.stderr).trim(), '', `${label}: no lint findings`)
  }
})

/** prometheus.yml for this test: its token, this app and, when given, this blackbox_exporter. */
async function configForTest (blackbox: string | undefined): Promise<string> {
  return await prometheusConfig({ work, address, token: authorization.slice('Bearer '.length), blackbox })
}

t.test('promtool check config: prometheus.yml', needs(promtool, 'promtool', 'prometheus'), async (t) => {
  const file = await configForTest('127.0.0.1:9115')
  const result = run(promtool as string, ['check', 'config', file])
  t.equal(result.status, 0, 'exits 0', { output: result.stdout + result.stderr })
  t.match(result.stdout, /SUCCESS/)
})

// The shipped file, not the test's rewrite: its token file exists only on a real host, so a copy beside alerts.yml
// differs from it only in that path, pointed at a file of the test's. --syntax-only checks the file as it is.
t.test('promtool check config: deploy/prometheus/prometheus.yml as shipped', needs(promtool, 'promtool', 'prometheus'), async (t) => {
  const shipped = path.join(PROMETHEUS_DIR, 'prometheus.yml')
  const syntax = run(promtool as string, ['check', 'config', '--syntax-only', shipped])
  t.equal(syntax.status, 0, '--syntax-only: exits 0', { output: syntax.stdout + syntax.stderr })
  const text = await readFile(shipped, 'utf8')
  const tokenPath = '/etc/prometheus/eva-heartbeat-api.token'
  t.equal(text.split(tokenPath).length, 2, 'it names the token file once')
  const dir = await mkdtemp(path.join(work, 'shipped-'))
  const tokenFile = path.join(dir, 'eva-heartbeat-api.token')
  await writeFile(tokenFile, 'a-token\n', { mode: 0o600 })
  await copyFile(path.join(PROMETHEUS_DIR, 'alerts.yml'), path.join(dir, 'alerts.yml'))
  const copy = path.join(dir, 'prometheus.yml')
  await writeFile(copy, text.replace(tokenPath, tokenFile))
  const full = run(promtool as string, ['check', 'config', copy])
  t.equal(full.status, 0, 'the copy: exits 0, rules loaded', { output: full.stdout + full.stderr })
  t.match(full.stdout, /SUCCESS: .*prometheus\.yml is valid/)
  t.match(full.stdout, /SUCCESS: \d+ rules found/)
})

interface QueryAnswer { status: string, data: { result: Array<{ metric: Record<string, string>, value: [number, string] }> } }
interface RangeAnswer { status: string, error?: string, data: { result: Array<{ metric: Record<string, string>, values: Array<[number, string]> }> } }

interface Dashboard {
  title: string
  templating: { list: Array<{ name: string, type: string, query: string }> }
  panels: Array<{ id: number, type: string, title: string, datasource: { uid: string }, gridPos: { x: number, y: number, w: number, h: number }, targets: Array<{ refId: string, expr: string, datasource: { uid: string } }> }>
}

const readDashboard = async (): Promise<Dashboard> => JSON.parse(await readFile(path.join(ROOT, 'deploy/grafana/eva-heartbeat.json'), 'utf8')) as Dashboard

t.test('deploy/grafana/eva-heartbeat.json: the panels the monitoring page promises, laid out on the grid', async (t) => {
  const dashboard = await readDashboard()
  t.same(dashboard.templating.list.map(({ name, type, query }) => ({ name, type, query })), [{ name: 'datasource', type: 'datasource', query: 'prometheus' }], 'one Prometheus data source, chosen on import')
  const titles = dashboard.panels.map((panel) => panel.title)
  for (const title of ['Verdict', 'Seconds since the last poll, against the grace', 'Polls, dispatches and errors per minute',
    'API requests per second by route and status', 'API latency p95 by route', 'Database up']) t.ok(titles.includes(title), title)
  t.equal(new Set(dashboard.panels.map((panel) => panel.id)).size, dashboard.panels.length, 'panel ids are unique')
  const cells = new Set<string>()
  for (const panel of dashboard.panels) {
    const { x, y, w, h } = panel.gridPos
    t.ok(x >= 0 && w > 0 && x + w <= 24 && h > 0, `${panel.title} fits the 24 columns`)
    for (let i = x; i < x + w; i++) for (let j = y; j < y + h; j++) cells.add(`${i},${j}`)
    t.ok(panel.targets.length > 0, `${panel.title} has a query`)
    // eslint-disable-next-line no-template-curly-in-string -- Grafana's variable, not a template
    t.same([panel.datasource.uid, ...panel.targets.map((target) => target.datasource.uid)].filter((uid) => uid !== '${datasource}'), [], `${panel.title} uses the chosen data source`)
  }
  t.equal(cells.size, dashboard.panels.reduce((sum, { gridPos: { w, h } }) => sum + w * h, 0), 'no two panels overlap')
})

t.test('a real Prometheus scrapes the app with the token file, probes liveness via blackbox_exporter, loads the rules',
  needs(prometheus, 'prometheus', 'prometheus'), async (t) => {
    await writeRow(db.admin, { lastPollAgo: 1, nextPollIn: 300, error_count: 3 })
    const exporter = blackbox === undefined
      ? undefined
      : await startDaemon(t, blackbox, (port) => [`--config.file=${BLACKBOX_CONFIG}`, `--web.listen-address=127.0.0.1:${port}`])
    if (noProbe !== undefined) t.comment(`${noProbe}: only the /metrics job is checked`)
    const config = await configForTest(exporter === undefined ? undefined : new URL(exporter.base).host)
    const server = await startDaemon(t, prometheus as string, (port) => [
      `--config.file=${config}`, `--storage.tsdb.path=${path.join(work, 'data')}`, `--web.listen-address=127.0.0.1:${port}`
    ], '/-/ready')

    const query = async (expr: string): Promise<string | undefined> => {
      const res = await fetch(`${server.base}/api/v1/query?query=${encodeURIComponent(expr)}`)
      if (res.status !== 200) return undefined
      const answer = await res.json() as QueryAnswer
      return answer.data.result[0]?.value[1]
    }
    const expectValue = async (expr: string, expected: string): Promise<void> => {
      await eventually(async () => await query(expr) === expected, 30_000, `${expr} == ${expected}`)
      t.equal(await query(expr), expected, expr)
    }

    await expectValue('up{job="eva-heartbeat-api"}', '1')
    await expectValue('scheduler_heartbeat_up{job="eva-heartbeat-api"}', '1')
    await expectValue('scheduler_heartbeat_state{job="eva-heartbeat-api",state="alive"}', '1')
    await expectValue('scheduler_errors_total{job="eva-heartbeat-api"}', '3')
    await expectValue('eva_heartbeat_api_database_up{job="eva-heartbeat-api"}', '1')
    if (exporter !== undefined) await expectValue('probe_success{job="eva-heartbeat-liveness"}', '1')

    const rules = await (await fetch(`${server.base}/api/v1/rules`)).json() as { data: { groups: Array<{ rules: Array<{ name: string, health: string, lastError?: string }> }> } }
    const loaded = rules.data.groups.flatMap((group) => group.rules)
    t.ok(loaded.length >= 9, `${loaded.length} rules loaded`)
    await eventually(async () => {
      const now = await (await fetch(`${server.base}/api/v1/rules`)).json() as typeof rules
      return now.data.groups.flatMap((group) => group.rules).every((rule) => rule.health === 'ok')
    }, 30_000, 'every rule evaluated')
    const after = await (await fetch(`${server.base}/api/v1/rules`)).json() as typeof rules
    t.same(after.data.groups.flatMap((group) => group.rules).filter((rule) => rule.health !== 'ok'), [], 'every rule evaluates without error')

    // The operations page's dashboard queries: each one is valid PromQL and finds its series in a real scrape.
    const monitoring = await readFile(path.join(ROOT, 'docs/monitoring.md'), 'utf8')
    const block = /```promql\n([\s\S]*?)```/.exec(monitoring)?.[1]
    t.ok(block, 'docs/monitoring.md has a promql block')
    const queries = (block ?? '').split('\n').filter((line) => line.trim() !== '' && !line.startsWith('#'))
    t.ok(queries.length >= 10, `${queries.length} dashboard queries`)
    for (const expr of queries) {
      const res = await fetch(`${server.base}/api/v1/query?query=${encodeURIComponent(expr)}`)
      const answer = await res.json() as QueryAnswer & { error?: string }
      t.equal(answer.status, 'success', `${expr} ${answer.error ?? ''}`)
    }
    for (const expr of ['scheduler_heartbeat_state == 1', 'scheduler_info', 'scheduler_heartbeat_checked_timestamp_seconds - scheduler_last_poll_timestamp_seconds']) {
      t.ok((await query(expr)) !== undefined, `${expr} has a value`)
    }

    // deploy/grafana/eva-heartbeat.json: each panel's query is one of the documented ones, and Prometheus answers it as
    // Grafana asks (a range query) with data. The counters move first, so that the rates are rates.
    await writeRow(db.admin, { lastPollAgo: 1, nextPollIn: 300, poll_count: 9, dispatch_count: 5, error_count: 4 })
    await expectValue('scheduler_polls_total{job="eva-heartbeat-api"}', '9')
    const dashboard = await readDashboard()
    for (const panel of dashboard.panels) {
      for (const target of panel.targets) {
        t.ok(queries.includes(target.expr), `${panel.title}: ${target.expr} is on docs/monitoring.md`)
        let answer: RangeAnswer | undefined
        await eventually(async () => {
          const end = Date.now() / 1000
          const res = await fetch(`${server.base}/api/v1/query_range?query=${encodeURIComponent(target.expr)}&start=${end - 120}&end=${end}&step=1`)
          answer = await res.json() as RangeAnswer
          return answer.status !== 'success' || answer.data.result.length > 0
        }, 30_000, `${target.expr} returns data`).catch(() => {})
        t.equal(answer?.status, 'success', `${panel.title}: ${target.expr} is valid ${answer?.error ?? ''}`)
        t.ok((answer?.data.result.length ?? 0) > 0, `${panel.title}: ${target.expr} returns data`)
      }
    }

    // The scheduler dies: the verdict turns stale, and Prometheus sees it on the next scrape.
    await writeRow(db.admin, { lastPollAgo: 400, nextPollIn: -340, error_count: 3 })
    await expectValue('scheduler_heartbeat_state{job="eva-heartbeat-api",state="stale"}', '1')
    await expectValue('scheduler_heartbeat_up{job="eva-heartbeat-api"}', '0')
    if (exporter !== undefined) await expectValue('probe_success{job="eva-heartbeat-liveness"}', '0')
  })
