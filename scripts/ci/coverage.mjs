// Prints the line coverage (%) of the last `tap` run, from tap's json-summary, over the coverage of the processes
// whose TypeScript c8 can map: tap's test processes (tap's own TypeScript loader) and the built dist/ (tsc's maps).
// Processes started with `node --import tsx` (the servers and CLIs the tests spawn) are moved to .tap/coverage-tsx/
// first: c8 adds up the V8 ranges of every process that loaded a file, whichever loader compiled it, and maps the sum
// through the source map of the process it read last (directory order, random file names): with tsx's processes
// in, the figure depends on that order (77.8% against 97.7% without them, for one run), and a file tsx alone
// compiled counts as one line.
// Usage: node scripts/ci/coverage.mjs [project root]
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs'
import path from 'node:path'

const root = path.resolve(process.argv[2] ?? '.')
const tap = path.join(root, '.tap')

/** Whether a process ran with tsx as its loader (`--import tsx`, `--import=tsx`, `--loader tsx`…). */
function ranTsx (execArgv) {
  return execArgv.some((arg, i) => /^--(import|loader|require)=tsx(\/|$)/.test(arg) ||
    (/^--(import|loader|require)$/.test(arg) && /^tsx(\/|$)/.test(execArgv[i + 1] ?? '')))
}

const aside = path.join(tap, 'coverage-tsx')
rmSync(aside, { recursive: true, force: true })
mkdirSync(aside, { recursive: true })
let left = 0
for (const file of readdirSync(path.join(tap, 'coverage'))) {
  const info = path.join(tap, 'processinfo', file)
  if (!existsSync(info)) continue
  const { execArgv = [] } = JSON.parse(readFileSync(info, 'utf8'))
  if (ranTsx(execArgv)) {
    renameSync(path.join(tap, 'coverage', file), path.join(aside, file))
    left++
  }
}
const report = spawnSync('npx', ['tap', 'report', 'json-summary'], { cwd: root, encoding: 'utf8' })
if (report.status !== 0) {
  process.stderr.write(`tap report json-summary exited ${report.status}: ${report.stdout}${report.stderr}\n`)
  process.exit(1)
}
const summary = JSON.parse(readFileSync(path.join(tap, 'report/coverage-summary.json'), 'utf8'))
process.stderr.write(`coverage: ${left} tsx process(es) left out (.tap/coverage-tsx/)\n`)
console.log(summary.total.lines.pct)
