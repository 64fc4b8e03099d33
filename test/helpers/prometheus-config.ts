// deploy/prometheus/prometheus.yml as a test runs it: the example's addresses and token path replaced by the test's
// own, scraping and evaluating every second; optionally without the blackbox job, with another rules file, and
// sending alerts to an Alertmanager.
import { copyFile, readFile, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { parse, stringify } from 'yaml'
import { ROOT } from './server-process.js'

export const PROMETHEUS_DIR = path.join(ROOT, 'deploy/prometheus')

interface ScrapeConfig {
  job_name: string
  authorization?: { credentials_file: string }
  static_configs: Array<{ targets: string[] }>
  relabel_configs?: Array<{ target_label?: string, replacement?: string }>
}

export interface TestPrometheus {
  /** A directory of the test's own: the config, the token file and the rules go there. */
  work: string
  /** The API's base URL, `http://127.0.0.1:PORT`. */
  address: string
  token: string
  /** host:port of blackbox_exporter; without it the probe job is left out. */
  blackbox?: string
  /** A rules file to load instead of a copy of deploy/prometheus/alerts.yml. */
  rules?: string
  /** host:port of an Alertmanager to send alerts to. */
  alertmanager?: string
}

/** Writes the config into `work` and gives its path. */
export async function prometheusConfig (options: TestPrometheus): Promise<string> {
  const config = parse(await readFile(path.join(PROMETHEUS_DIR, 'prometheus.yml'), 'utf8')) as {
    global: Record<string, string>
    rule_files: string[]
    scrape_configs: ScrapeConfig[]
    alerting?: unknown
  }
  const tokenFile = path.join(options.work, 'eva-heartbeat-api.token')
  await writeFile(tokenFile, options.token + '\n', { mode: 0o600 })
  if (options.rules === undefined) await copyFile(path.join(PROMETHEUS_DIR, 'alerts.yml'), path.join(options.work, 'alerts.yml'))
  else config.rule_files = [options.rules]
  config.global.scrape_interval = '1s'
  config.global.evaluation_interval = '1s'
  const api = config.scrape_configs.find((job) => job.job_name === 'eva-heartbeat-api')
  const probe = config.scrape_configs.find((job) => job.job_name === 'eva-heartbeat-liveness')
  if (api?.authorization === undefined || probe?.relabel_configs === undefined) throw new Error('prometheus.yml lost a job')
  api.authorization.credentials_file = tokenFile
  api.static_configs = [{ targets: [new URL(options.address).host] }]
  probe.static_configs = [{ targets: [`${options.address}/heartbeat/liveness`] }]
  const toExporter = probe.relabel_configs.find((rule) => rule.target_label === '__address__')
  if (toExporter === undefined) throw new Error('prometheus.yml lost the blackbox relabelling')
  if (options.blackbox === undefined) config.scrape_configs = [api]
  else toExporter.replacement = options.blackbox
  if (options.alertmanager !== undefined) config.alerting = { alertmanagers: [{ static_configs: [{ targets: [options.alertmanager] }] }] }
  const file = path.join(options.work, 'prometheus.yml')
  await writeFile(file, stringify(config))
  return file
}
