// The Gatus and Uptime Kuma recipes (deploy/gatus/config.yaml, deploy/uptime-kuma/monitors.json) judged against
// the real endpoint's answers. Neither tool ships as a Debian or npm package, so their checks are evaluated here the
// way each tool evaluates them: Gatus conditions ([STATUS], [RESPONSE_TIME], [BODY] with pat(), [BODY].field with
// any()), and Uptime Kuma's accepted status codes, keyword and JSON query (JSONata, the library Kuma itself uses).
import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import jsonata from 'jsonata'
import t from 'tap'
import { parse } from 'yaml'
import { deleteRow, startTestApp, writeRow, type RowShape } from '../helpers/app.js'

const MONITORING = fileURLToPath(new URL('../../docs/monitoring.md', import.meta.url))
const GATUS = fileURLToPath(new URL('../../deploy/gatus/config.yaml', import.meta.url))
const KUMA = fileURLToPath(new URL('../../deploy/uptime-kuma/monitors.json', import.meta.url))
const EXAMPLE_BASE = 'http://127.0.0.1:3000'

interface Answer { status: number, body: string, ms: number }

async function get (url: string, headers: Record<string, string> = {}): Promise<Answer> {
  const started = performance.now()
  const res = await fetch(url, { headers })
  const body = await res.text()
  return { status: res.status, body, ms: performance.now() - started }
}

// ---- Gatus ----------------------------------------------------------------------------------------------------

function gatusValue (placeholder: string, answer: Answer): string {
  if (placeholder === '[STATUS]') return String(answer.status)
  if (placeholder === '[RESPONSE_TIME]') return String(Math.round(answer.ms))
  if (placeholder === '[BODY]') return answer.body
  const field = /^\[BODY\]\.([a-z_]+(?:\.[a-z_]+)*)$/.exec(placeholder)
  if (field === null) throw new Error(`this test does not know the placeholder ${placeholder}`)
  let value: unknown = JSON.parse(answer.body)
  for (const key of (field[1] as string).split('.')) value = (value as Record<string, unknown> | null)?.[key]
  return value === undefined ? '' : String(value)
}

function gatusMatches (actual: string, expected: string): boolean {
  const pat = /^pat\((.*)\)$/s.exec(expected)
  if (pat !== null) {
    const pattern = (pat[1] as string).split('*').map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')
    return new RegExp(`^${pattern}$`, 's').test(actual)
  }
  const any = /^any\((.*)\)$/.exec(expected)
  if (any !== null) return (any[1] as string).split(',').map((value) => value.trim()).includes(actual)
  return actual === expected
}

function gatusCondition (condition: string, answer: Answer): boolean {
  const match = /^(\[[A-Z_]+\](?:\.[a-z_.]+)?) (==|!=|<|>) (.+)$/s.exec(condition)
  if (match === null) throw new Error(`this test does not know the condition ${condition}`)
  const [, placeholder, operator, expected] = match as unknown as [string, string, string, string]
  const actual = gatusValue(placeholder, answer)
  switch (operator) {
    case '==': return gatusMatches(actual, expected)
    case '!=': return !gatusMatches(actual, expected)
    case '<': return Number(actual) < Number(expected)
    default: return Number(actual) > Number(expected)
  }
}

interface GatusEndpoint { name: string, url: string, headers?: Record<string, string>, conditions: string[] }

// ---- Uptime Kuma ----------------------------------------------------------------------------------------------

interface KumaMonitor {
  name: string
  type: 'http' | 'keyword' | 'json-query'
  url: string
  accepted_statuscodes: string[]
  keyword?: string
  invertKeyword?: boolean
  jsonPath?: string
  expectedValue?: string
}

function kumaStatusAccepted (status: number, accepted: string[]): boolean {
  return accepted.some((range) => {
    const [low, high] = range.split('-').map(Number) as [number, number | undefined]
    return status >= low && status <= (high ?? low)
  })
}

async function kumaUp (monitor: KumaMonitor, answer: Answer): Promise<boolean> {
  if (!kumaStatusAccepted(answer.status, monitor.accepted_statuscodes)) return false
  if (monitor.type === 'keyword') return answer.body.includes(monitor.keyword ?? '') !== (monitor.invertKeyword ?? false)
  if (monitor.type === 'json-query') {
    const result: unknown = await jsonata(monitor.jsonPath ?? '').evaluate(JSON.parse(answer.body))
    return String(result) === monitor.expectedValue
  }
  return true
}

// ---- the endpoint's real answers ------------------------------------------------------------------------------

const { app, db } = await startTestApp(t)
const base = await app.listen({ host: '127.0.0.1', port: 0 })

const STATES: Array<{ label: string, row: RowShape | 'none' }> = [
  { label: 'alive', row: {} },
  { label: 'late', row: { lastPollAgo: 70, nextPollIn: -10 } },
  { label: 'paused', row: { status: 'stopping', paused_reason: 'deploy' } },
  { label: 'stale', row: { lastPollAgo: 400, nextPollIn: -340 } },
  { label: 'missing', row: 'none' }
]

/** For each monitor, up (true) or down in: alive, late, paused, stale, missing. */
const GATUS_EXPECTED: Record<string, boolean[]> = {
  'scheduler-liveness': [true, true, true, false, false],
  'scheduler-healthy-keyword': [true, false, false, false, false],
  'scheduler-verdict-json': [true, true, true, false, false],
  'scheduler-liveness-strict': [true, false, false, false, false]
}
const KUMA_EXPECTED: Record<string, boolean[]> = {
  'EVA scheduler (status code)': [true, true, true, false, false],
  'EVA scheduler healthy (keyword)': [true, false, false, false, false],
  'EVA scheduler (JSON query)': [true, true, true, false, false]
}

const gatus = (parse(await readFile(GATUS, 'utf8')) as { endpoints: GatusEndpoint[] }).endpoints
const kuma = (JSON.parse(await readFile(KUMA, 'utf8')) as { monitors: KumaMonitor[] }).monitors

t.test('every recipe has an expectation', async (t) => {
  t.same(gatus.map((endpoint) => endpoint.name).sort(), Object.keys(GATUS_EXPECTED).sort())
  t.same(kuma.map((monitor) => monitor.name).sort(), Object.keys(KUMA_EXPECTED).sort())
  for (const url of [...gatus.map((e) => e.url), ...kuma.map((m) => m.url)]) t.ok(url.startsWith(`${EXAMPLE_BASE}/heartbeat/liveness`), url)
})

t.test('docs/monitoring.md shows the recipes as the files have them', async (t) => {
  const page = await readFile(MONITORING, 'utf8')
  const gatusBlock = /\*\*Gatus\*\*[\s\S]*?```yaml\n([\s\S]*?)```/.exec(page)?.[1]
  t.ok(gatusBlock, 'a Gatus block')
  const shown = (parse(gatusBlock ?? '') as { endpoints: GatusEndpoint[] }).endpoints
  t.same(shown.map(({ name, url, conditions }) => ({ name, url, conditions })), gatus.map(({ name, url, conditions }) => ({ name, url, conditions })))
  for (const monitor of kuma) {
    if (monitor.keyword !== undefined) t.ok(page.includes(`keyword \`${monitor.keyword}\``), `docs keyword ${monitor.keyword}`)
    if (monitor.jsonPath !== undefined) t.ok(page.includes(`JSON query \`${monitor.jsonPath}\`, expected value \`${String(monitor.expectedValue)}\``), 'docs JSON query')
  }
})

for (const [i, state] of STATES.entries()) {
  t.test(`the monitors when the scheduler is ${state.label}`, async (t) => {
    if (state.row === 'none') await deleteRow(db.admin)
    else await writeRow(db.admin, state.row)
    for (const endpoint of gatus) {
      const answer = await get(endpoint.url.replace(EXAMPLE_BASE, base), endpoint.headers)
      const up = endpoint.conditions.every((condition) => gatusCondition(condition, answer))
      t.equal(up, GATUS_EXPECTED[endpoint.name]?.[i], `Gatus ${endpoint.name}: ${up ? 'up' : 'down'} (HTTP ${answer.status})`)
    }
    for (const monitor of kuma) {
      const answer = await get(monitor.url.replace(EXAMPLE_BASE, base))
      const up = await kumaUp(monitor, answer)
      t.equal(up, KUMA_EXPECTED[monitor.name]?.[i], `Uptime Kuma ${monitor.name}: ${up ? 'up' : 'down'} (HTTP ${answer.status})`)
    }
  })
}

t.test('the JSON the recipes rely on is what the endpoint sends', async (t) => {
  await writeRow(db.admin)
  const body = (await get(`${base}/heartbeat/liveness`)).body
  t.match(body, /^\{"status":"pass","state":"alive",/, 'compact JSON, status then state: what the keyword and regex checks expect')
  await writeRow(db.admin, { lastPollAgo: 400, nextPollIn: -340 })
  const stale = await get(`${base}/heartbeat/liveness`)
  t.equal(stale.status, 503)
  t.match(stale.body, /^\{"status":"fail","state":"stale",/)
  t.notMatch(stale.body, /pass/, 'the word pass never appears in a failing body, so a keyword check on it is safe')
})
