// deploy/blackbox/blackbox.yml proven with the real prometheus-blackbox-exporter, probing the running app's
// /heartbeat/liveness for rows written in a real database.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { freePort } from '../../src/embedded/local-postgres.js'
import { deleteRow, startTestApp, token, writeRow, type RowShape } from '../helpers/app.js'
import { parseSamples, valueOf } from '../helpers/prometheus.js'
import { findTool, needs, run, startDaemon } from '../helpers/tools.js'

const CONFIG = fileURLToPath(new URL('../../deploy/blackbox/blackbox.yml', import.meta.url))
const EXAMPLE_TOKEN_FILE = '/etc/blackbox_exporter/eva-heartbeat-api.token'
const blackbox = findTool('prometheus-blackbox-exporter', 'blackbox_exporter')

t.test('blackbox_exporter against /heartbeat/liveness', needs(blackbox, 'blackbox_exporter', 'prometheus-blackbox-exporter'), async (t) => {
  const exporterPath = blackbox as string
  const work = await mkdtemp(path.join(tmpdir(), 'eva-blackbox-'))
  t.teardown(async () => { await rm(work, { recursive: true, force: true }) })

  // The example's token path, swapped for a file this test writes: the one edit an operator makes too.
  const tokenFile = path.join(work, 'token')
  await writeFile(tokenFile, await token({ role: 'authenticated', sub: 'blackbox' }), { mode: 0o600 })
  const example = await readFile(CONFIG, 'utf8')
  t.ok(example.includes(EXAMPLE_TOKEN_FILE), 'the token module reads a credentials file')
  const config = path.join(work, 'blackbox.yml')
  await writeFile(config, example.replace(EXAMPLE_TOKEN_FILE, tokenFile))

  const check = run(exporterPath, ['--config.check', `--config.file=${CONFIG}`])
  t.equal(check.status, 0, '--config.check accepts the file as shipped', { output: check.stderr })

  const exporter = await startDaemon(t, exporterPath, (port) => [`--config.file=${config}`, `--web.listen-address=127.0.0.1:${port}`])
  const { app, db } = await startTestApp(t)
  const address = await app.listen({ host: '127.0.0.1', port: 0 })
  const { app: privateApp } = await startTestApp(t, { db, env: { LIVENESS_PUBLIC: 'false' } })
  const privateAddress = await privateApp.listen({ host: '127.0.0.1', port: 0 })

  async function probe (module: string, target: string): Promise<{ success: number | undefined, status: number | undefined }> {
    const res = await fetch(`${exporter.base}/probe?module=${module}&target=${encodeURIComponent(target)}`)
    t.equal(res.status, 200, `the exporter answered for ${module}`)
    const samples = parseSamples(await res.text())
    return { success: valueOf(samples, 'probe_success'), status: valueOf(samples, 'probe_http_status_code') }
  }

  const MODULES = ['eva_heartbeat_liveness', 'eva_heartbeat_liveness_body', 'eva_heartbeat_liveness_pass_only'] as const
  const cases: Array<{ label: string, row: RowShape | 'none', http: number, expected: [number, number, number] }> = [
    { label: 'alive', row: {}, http: 200, expected: [1, 1, 1] },
    { label: 'late (warn)', row: { lastPollAgo: 70, nextPollIn: -10 }, http: 200, expected: [1, 1, 0] },
    { label: 'paused (warn)', row: { status: 'stopping', paused_reason: 'deploy' }, http: 200, expected: [1, 1, 0] },
    { label: 'stale', row: { lastPollAgo: 400, nextPollIn: -340 }, http: 503, expected: [0, 0, 0] },
    { label: 'stopped', row: { status: 'stopped' }, http: 503, expected: [0, 0, 0] },
    { label: 'missing', row: 'none', http: 503, expected: [0, 0, 0] }
  ]
  const target = `${address}/heartbeat/liveness`
  for (const c of cases) {
    if (c.row === 'none') await deleteRow(db.admin)
    else await writeRow(db.admin, c.row)
    for (const [i, module] of MODULES.entries()) {
      const { success, status } = await probe(module, target)
      t.equal(success, c.expected[i], `${c.label}: ${module} probe_success ${String(c.expected[i])}`)
      t.equal(status, c.http, `${c.label}: ${module} saw HTTP ${c.http}`)
    }
  }

  await writeRow(db.admin, { lastPollAgo: 70, nextPollIn: -10 })
  t.equal((await probe('eva_heartbeat_liveness', `${target}?strict=true`)).success, 0, 'late with ?strict=true in the target: 0')

  await writeRow(db.admin)
  const privateTarget = `${privateAddress}/heartbeat/liveness`
  const refused = await probe('eva_heartbeat_liveness', privateTarget)
  t.same(refused, { success: 0, status: 401 }, 'LIVENESS_PUBLIC=false: no token, 401, probe fails')
  t.same(await probe('eva_heartbeat_liveness_token', privateTarget), { success: 1, status: 200 }, 'the token module passes')

  const nobody = `http://127.0.0.1:${await freePort()}/heartbeat/liveness`
  t.equal((await probe('eva_heartbeat_liveness', nobody)).success, 0, 'the API not answering: 0')
})
