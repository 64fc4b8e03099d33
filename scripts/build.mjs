// Compiles src/ to dist/ when TypeScript is installed (a development install: `npm install`, `npm ci`). A
// production install (`npm ci --omit=dev`) has no TypeScript: it keeps the dist/ built before it. Plain JavaScript,
// so that it runs there too. `--required` (npm start's prestart): without TypeScript, dist/ must already be built.
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
let tsc
try {
  tsc = require.resolve('typescript/bin/tsc')
} catch {
  if (existsSync(new URL('../dist/server.js', import.meta.url))) process.exit(0)
  const required = process.argv.includes('--required')
  process.stderr.write(`eva-heartbeat-api: dist/ is not built and TypeScript is not installed (a production install): ${required ? '' : 'nothing to run yet; '}build first with the dev dependencies (npm ci && npm run build), then npm ci --omit=dev (docs/operations.md)\n`)
  process.exit(required ? 1 : 0)
}
const result = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { stdio: 'inherit' })
process.exit(result.status ?? 1)
