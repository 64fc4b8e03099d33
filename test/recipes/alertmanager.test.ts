// deploy/alertmanager/alertmanager.yml proven with the real tools: amtool checks it and routes each of the project's
// alerts by its severity; then a real Prometheus, scraping the real app with the project's rules, fires
// EvaSchedulerHeartbeatStale at a real Alertmanager, which delivers it to a webhook receiver run by this test, and
// later delivers its resolution. The rules are deploy/prometheus/alerts.yml with every `for:` cut to 1s (nothing else
// changed), so that the test need not wait out the minute; Alertmanager's waits are cut to 1s the same way.
import { createServer } from 'node:http'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import t from 'tap'
import { parse, stringify } from 'yaml'
import { startTestApp, token, writeRow } from '../helpers/app.js'
import { PROMETHEUS_DIR, prometheusConfig } from '../helpers/prometheus-config.js'
import { ROOT } from '../helpers/server-process.js'
import { findTool, needs, run, startDaemon } from '../helpers/tools.js'
import { eventually } from '../helpers/wait.js'

const CONFIG = path.join(ROOT, 'deploy/alertmanager/alertmanager.yml')
const amtool = findTool('amtool')
const alertmanager = findTool('prometheus-alertmanager', 'alertmanager')
const prometheus = findTool('prometheus')

interface Rule { alert: string, expr: string, for?: string, labels: { severity: string }, annotations: { summary: string } }
interface Rules { groups: Array<{ name: string, rules: Rule[] }> }
interface AlertmanagerConfig {
  route: { receiver: string, group_wait: string, group_interval: string, repeat_interval: string, routes: Array<{ receiver: string, repeat_interval?: string }> }
  inhibit_rules: Array<{ source_matchers: string[], target_matchers: string[] }>
  receivers: Array<{ name: string, webhook_configs: Array<{ url: string }> }>
}
interface Notification { receiver: string, status: string, alerts: Array<{ status: string, labels: Record<string, string>, annotations: Record<string, string> }> }

const rules = parse(await readFile(path.join(PROMETHEUS_DIR, 'alerts.yml'), 'utf8')) as Rules
const alerts = rules.groups.flatMap((group) => group.rules)
const RECEIVER = { page: 'eva-pager', warning: 'eva-chat' } as Record<string, string>

t.test('amtool check-config: alertmanager.yml', needs(amtool, 'amtool', 'prometheus-alertmanager'), async (t) => {
  const result = run(amtool as string, ['check-config', CONFIG])
  t.equal(result.status, 0, 'exits 0', { output: result.stdout + result.stderr })
  t.match(result.stdout, /SUCCESS/)
})

t.test('amtool routes each of the project\'s alerts by its severity', needs(amtool, 'amtool', 'prometheus-alertmanager'), async (t) => {
  t.ok(alerts.length >= 9, `${alerts.length} alerts in alerts.yml`)
  for (const alert of alerts) {
    const expected = RECEIVER[alert.labels.severity]
    t.ok(expected, `${alert.alert}: severity ${alert.labels.severity} has a receiver`)
    const result = run(amtool as string, ['config', 'routes', 'test', `--config.file=${CONFIG}`, `alertname=${alert.alert}`, `severity=${alert.labels.severity}`])
    t.equal(result.stdout.trim(), expected, `${alert.alert} → ${String(expected)}`)
  }
  const config = parse(await readFile(CONFIG, 'utf8')) as AlertmanagerConfig
  const named = config.inhibit_rules.flatMap((rule) => [...rule.source_matchers, ...rule.target_matchers].join(' ').match(/Eva\w+/g) ?? [])
  t.same(named.filter((name) => !alerts.some((alert) => alert.alert === name)), [], 'the inhibit rules name only alerts that exist')
})

/** A webhook receiver on loopback: what Alertmanager posts to /RECEIVER-NAME. */
async function webhookReceiver (t: { teardown: (fn: () => unknown) => void }): Promise<{ base: string, received: Array<{ path: string, body: Notification }> }> {
  const received: Array<{ path: string, body: Notification }> = []
  const server = createServer((req, res) => {
    let body = ''
    req.setEncoding('utf8').on('data', (chunk: string) => { body += chunk }).on('end', () => {
      received.push({ path: req.url ?? '', body: JSON.parse(body) as Notification })
      res.writeHead(200).end()
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => { await new Promise((resolve) => server.close(resolve)) })
  return { base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, received }
}

const bothTools = { ...needs(alertmanager, 'prometheus-alertmanager', 'prometheus-alertmanager'), ...needs(prometheus, 'prometheus', 'prometheus') }

t.test('a real Prometheus with the project\'s rules fires EvaSchedulerHeartbeatStale at a real Alertmanager, which delivers it', bothTools,
  async (t) => {
    const work = await mkdtemp(path.join(tmpdir(), 'eva-alertmanager-'))
    t.teardown(async () => { await rm(work, { recursive: true, force: true }) })
    const { app, db } = await startTestApp(t)
    const address = await app.listen({ host: '127.0.0.1', port: 0 })
    // The scheduler died 400 s ago: stale from the first scrape.
    await writeRow(db.admin, { lastPollAgo: 400, nextPollIn: -340 })

    const receiver = await webhookReceiver(t)
    const config = parse(await readFile(CONFIG, 'utf8')) as AlertmanagerConfig
    Object.assign(config.route, { group_wait: '1s', group_interval: '1s', repeat_interval: '1h' })
    for (const route of config.route.routes) if (route.repeat_interval !== undefined) route.repeat_interval = '1h'
    for (const { name, webhook_configs: hooks } of config.receivers) for (const hook of hooks) hook.url = `${receiver.base}/${name}`
    await writeFile(path.join(work, 'alertmanager.yml'), stringify(config))
    const manager = await startDaemon(t, alertmanager as string, (port) => [
      `--config.file=${path.join(work, 'alertmanager.yml')}`, `--storage.path=${path.join(work, 'am')}`,
      `--web.listen-address=127.0.0.1:${port}`, '--cluster.listen-address='
    ], '/-/ready')

    for (const group of rules.groups) for (const rule of group.rules) if (rule.for !== undefined) rule.for = '1s'
    await writeFile(path.join(work, 'alerts-fast.yml'), stringify(rules))
    const prometheusYml = await prometheusConfig({
      work, address, token: await token({ role: 'authenticated', sub: 'prometheus' }), rules: path.join(work, 'alerts-fast.yml'), alertmanager: new URL(manager.base).host
    })
    await startDaemon(t, prometheus as string, (port) => [
      `--config.file=${prometheusYml}`, `--storage.tsdb.path=${path.join(work, 'data')}`, `--web.listen-address=127.0.0.1:${port}`
    ], '/-/ready')

    const firing = (): Notification | undefined => receiver.received.find(({ body }) => body.status === 'firing')?.body
    await eventually(() => firing() !== undefined, 60_000, 'a firing notification')
    const notification = firing() as Notification
    const stale = alerts.find((alert) => alert.alert === 'EvaSchedulerHeartbeatStale')
    t.equal(receiver.received[0]?.path, '/eva-pager', 'posted to the pager\'s webhook')
    t.equal(notification.receiver, 'eva-pager')
    t.same(notification.alerts.map((alert) => alert.labels.alertname), ['EvaSchedulerHeartbeatStale'], 'the stale alert, alone')
    t.match(notification.alerts[0], {
      status: 'firing',
      labels: { alertname: 'EvaSchedulerHeartbeatStale', severity: 'page', job: 'eva-heartbeat-api', state: 'stale' },
      annotations: { summary: stale?.annotations.summary }
    })
    t.match(notification.alerts[0]?.annotations.description, /^No heartbeat since \d{4}-\d\d-\d\d /, 'the description\'s query ran')

    // The scheduler is back: the resolution is delivered too.
    await writeRow(db.admin, { lastPollAgo: 1, nextPollIn: 60 })
    await eventually(() => receiver.received.some(({ body }) => body.status === 'resolved'), 60_000, 'a resolved notification')
    const resolved = receiver.received.find(({ body }) => body.status === 'resolved')
    t.equal(resolved?.path, '/eva-pager')
    t.same(resolved?.body.alerts.map((alert) => [alert.labels.alertname, alert.status]), [['EvaSchedulerHeartbeatStale', 'resolved']])
    t.same([...new Set(receiver.received.flatMap(({ body }) => body.alerts.map((alert) => alert.labels.alertname)))], ['EvaSchedulerHeartbeatStale'], 'no other alert was delivered')
  })
