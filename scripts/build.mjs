// Compiles src/ to dist/ when TypeScript is installed (a development install: `npm install`, `npm ci`) and dist/ is
// older than a source: `npm start` then costs no compile when nothing changed. A production install (`npm ci
// --omit=dev`) has no TypeScript: it keeps the dist/ built before it. Plain JavaScript, so that it runs there too.
// `--required` (npm start's prestart): without TypeScript, dist/ must already be built. `--force`: compile anyway.
import { spawnSync } from 'node:child_process'
import { existsSync, readdirSync, statSync, utimesSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import path from 'node:path'

const root = fileURLToPath(new URL('..', import.meta.url))
const stamp = path.join(root, 'dist', '.built')

/** The newest modification time among the compiler's inputs: src/ and the tsconfig files. */
function newestInput () {
  let newest = 0
  const visit = (file) => {
    const stats = statSync(file)
    if (stats.isDirectory()) for (const entry of readdirSync(file)) visit(path.join(file, entry))
    else newest = Math.max(newest, stats.mtimeMs)
  }
  for (const input of ['src', 'tsconfig.json', 'tsconfig.build.json', 'package-lock.json']) {
    if (existsSync(path.join(root, input))) visit(path.join(root, input))
  }
  return newest
}

const require = createRequire(import.meta.url)
let tsc
try {
  tsc = require.resolve('typescript/bin/tsc')
} catch {
  if (existsSync(path.join(root, 'dist', 'server.js'))) process.exit(0)
  const required = process.argv.includes('--required')
  process.stderr.write(`eva-heartbeat-api: dist/ is not built and TypeScript is not installed (a production install): ${required ? '' : 'nothing to run yet; '}build first with the dev dependencies (npm ci && npm run build), then npm ci --omit=dev (docs/operations.md)\n`)
  process.exit(required ? 1 : 0)
}
const fresh = existsSync(stamp) && statSync(stamp).mtimeMs >= newestInput()
if (fresh && !process.argv.includes('--force')) process.exit(0)
const started = Date.now()
const result = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { stdio: 'inherit', cwd: root })
if (result.status === 0) {
  // Stamped with the compile's start: a source saved while it ran is newer, so the next start compiles again.
  writeFileSync(stamp, '')
  utimesSync(stamp, started / 1000, started / 1000)
}
process.exit(result.status ?? 1)
