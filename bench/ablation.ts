// What each optimisation buys: builds copies of the current src/ with the optimisations taken away one by one, then
// runs the bench with them measured in the same run, interleaved with the real app (`--compare`).
//
//   node --import tsx bench/ablation.ts [any bench options, e.g. --rounds 3 --duration 5]
//
// The copies, from nothing to everything (the app itself is the last step: + reads shared by the callers that arrived
// before they started):
//   0-none       a role-switched transaction per request (sql.begin: four round trips), jose on every request
//   1-cache      + the verified-token cache
//
// With `--set defaults`, what the cheaper defaults buy, from without them to the app (cumulative):
//   d0-before       LOG_REQUESTS=true (Fastify's two lines per request), @fastify/helmet per request, prom-client's
//                   Counter and Histogram per request
//   d1-quiet-logs   + successful requests not logged (the default, LOG_REQUESTS unset)
//   d2-headers-once + security headers worked out once, set by one hook
//   (the app)       + request metrics as plain numbers, rendered at scrape
import { spawn, spawnSync } from 'node:child_process'
import { cp, mkdir, readFile, rm, symlink, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const VARIANTS = path.join(ROOT, 'dist/bench/variants')

interface Edit { file: string, from: string | RegExp, to: string }

const noCache: Edit = { file: 'plugins/auth.ts', from: 'await tokens.verify(token)', to: 'await verifier.verify(token)' }
const noSharing: Edit = { file: 'db/store.ts', from: /await this\.reads\.run\([^\n]*?async \(\) => await this\.readAs\(who\)\)/, to: 'await this.readAs(who)' }

const variants: Record<string, Edit[]> = {
  '0-none': [noCache, noSharing],
  '1-cache': [noSharing]
}

/** @fastify/helmet registered per request (same options), in place of the precomputed headers. */
const helmetPerRequest: Edit = {
  file: 'plugins/security-headers.ts',
  from: / {2}const headers = helmetHeaders\(\)\n {2}app\.addHook\('onRequest'[\s\S]*?\n {2}\}\)\n/,
  to: "  await app.register((await import('@fastify/helmet')).default, HELMET_OPTIONS as never)\n"
}
/** prom-client's own Counter and Histogram, observed on every request, in place of RequestMetrics. */
const promClientPerRequest: Edit = {
  file: 'plugins/metrics.ts',
  from: '  private readonly requests = new RequestMetrics(this.registry)',
  to: `  private readonly requests = (() => {
    const names = ['method', 'route', 'status']
    const counter = new Counter({ name: 'http_requests_total', help: 'requests', labelNames: names, registers: [this.registry] })
    const histogram = new Histogram({ name: 'http_request_duration_seconds', help: 'latency', labelNames: names, buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers: [this.registry] })
    void RequestMetrics
    return {
      observe: (method: string, route: string, status: number, seconds: number | undefined) => {
        const labels = { method, route, status: String(status) }
        counter.inc(labels)
        if (seconds !== undefined) histogram.observe(labels, seconds)
      }
    }
  })()`
}
const promClientImport: Edit = { file: 'plugins/metrics.ts', from: 'Counter, Gauge, Registry', to: 'Counter, Gauge, Histogram, Registry' }

const defaultsVariants: Record<string, { edits: Edit[], env: Record<string, string> }> = {
  'd0-before': { edits: [helmetPerRequest, promClientPerRequest, promClientImport], env: { LOG_REQUESTS: 'true' } },
  'd1-quiet-logs': { edits: [helmetPerRequest, promClientPerRequest, promClientImport], env: {} },
  'd2-headers-once': { edits: [promClientPerRequest, promClientImport], env: {} }
}

async function build (name: string, edits: Edit[]): Promise<string> {
  const dir = path.join(VARIANTS, name)
  await rm(dir, { recursive: true, force: true })
  await mkdir(dir, { recursive: true })
  await cp(path.join(ROOT, 'src'), path.join(dir, 'src'), { recursive: true })
  await cp(path.join(ROOT, 'package.json'), path.join(dir, 'package.json'))
  await symlink(path.join(ROOT, 'node_modules'), path.join(dir, 'node_modules'))
  await symlink(path.join(ROOT, 'db'), path.join(dir, 'db'))
  await symlink(path.join(ROOT, 'public'), path.join(dir, 'public'))
  for (const edit of edits) {
    const file = path.join(dir, 'src', edit.file)
    const text = await readFile(file, 'utf8')
    const found = typeof edit.from === 'string' ? text.includes(edit.from) : edit.from.test(text)
    if (!found) throw new Error(`${name}: ${edit.file} no longer has ${String(edit.from)}: update bench/ablation.ts`)
    await writeFile(file, text.replace(edit.from, edit.to))
  }
  await writeFile(path.join(dir, 'tsconfig.json'), JSON.stringify({
    extends: path.join(ROOT, 'tsconfig.json'),
    compilerOptions: { noEmit: false, rootDir: 'src', outDir: 'dist', declaration: false, sourceMap: false, allowUnreachableCode: true },
    include: ['src']
  }))
  const tsc = spawnSync(process.execPath, [path.join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', path.join(dir, 'tsconfig.json')], { stdio: 'inherit' })
  if (tsc.status !== 0) throw new Error(`${name}: the build failed`)
  return dir
}

const setIndex = process.argv.indexOf('--set')
const set = setIndex === -1 ? 'read-path' : process.argv[setIndex + 1]
const passed = setIndex === -1 ? process.argv.slice(2) : process.argv.slice(2).filter((_, i) => i !== setIndex - 2 && i !== setIndex - 1)
const compared: Array<{ name: string, dir: string, env: Record<string, string> }> = []
if (set === 'defaults') {
  for (const [name, { edits, env }] of Object.entries(defaultsVariants)) {
    process.stderr.write(`building the ${name} variant…\n`)
    compared.push({ name, dir: await build(name, edits), env })
  }
} else if (set === 'read-path') {
  for (const [name, edits] of Object.entries(variants)) {
    process.stderr.write(`building the ${name} variant…\n`)
    compared.push({ name, dir: await build(name, edits), env: {} })
  }
} else {
  throw new Error(`--set must be read-path or defaults (got ${String(set)})`)
}
const bench = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'bench/run.ts'), '--skip-startup', ...passed, '--compare-json', JSON.stringify(compared)], { stdio: 'inherit' })
bench.on('exit', (code) => { process.exitCode = code ?? 1 })
