// Where a CPU profile's time went: `node --cpu-prof` output (a .cpuprofile), summed by self time per function and per
// origin (our src/, each package, Node's own internals, the garbage collector, idle). For the per-request budget
// in docs/performance.md:
//
//   npm run bench -- --smoke --skip-startup --skip-writes --only liveness --app-node-args="--cpu-prof --cpu-prof-dir=/tmp/prof"
//   node --import tsx bench/profile-summary.ts /tmp/prof/CPU.*.cpuprofile [--top 40] [--skip SECONDS] [--requests N]
import { readFile } from 'node:fs/promises'
import { parseArgs } from 'node:util'

interface ProfileNode { id: number, callFrame: { functionName: string, url: string, lineNumber: number }, children?: number[] }
interface Profile { nodes: ProfileNode[], samples: number[], timeDeltas: number[], startTime: number, endTime: number }

/** Where a function comes from: a package, our code, Node itself, or V8's pseudo-frames. */
export function originOf (url: string, functionName: string): string {
  if (url === '') return functionName.startsWith('(') ? functionName : '(native)'
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url)
  if (pkg?.[1] !== undefined) return pkg[1]
  if (url.startsWith('node:')) return 'node internals'
  const ours = /\/(?:dist|src)\/(.+)$/.exec(url)
  if (ours?.[1] !== undefined) return `ours: ${ours[1].replace(/\.js$/, '.ts')}`
  return url
}

const { values: args, positionals } = parseArgs({ options: { top: { type: 'string', default: '30' }, skip: { type: 'string', default: '0' }, requests: { type: 'string' } }, allowPositionals: true })
/** Samples in the first `--skip` seconds (the start: loading modules, compiling schemas) are left out. */
const skipMicros = Number(args.skip) * 1e6
for (const file of positionals) {
  const profile = JSON.parse(await readFile(file, 'utf8')) as Profile
  const byId = new Map(profile.nodes.map((node) => [node.id, node]))
  const self = new Map<number, number>()
  let at = 0
  profile.samples.forEach((id, i) => {
    at += profile.timeDeltas[i] ?? 0
    if (at >= skipMicros) self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0))
  })
  const total = [...self.values()].reduce((a, b) => a + b, 0)
  const idle = [...self.entries()].filter(([id]) => byId.get(id)?.callFrame.functionName === '(idle)').reduce((a, [, t]) => a + t, 0)
  const busy = total - idle
  const functions = new Map<string, number>()
  const origins = new Map<string, number>()
  for (const [id, time] of self) {
    const node = byId.get(id)
    if (node === undefined || node.callFrame.functionName === '(idle)') continue
    const { functionName, url, lineNumber } = node.callFrame
    const origin = originOf(url, functionName)
    const name = `${functionName === '' ? '(anonymous)' : functionName}  [${origin}${url === '' ? '' : `:${lineNumber + 1}`}]`
    functions.set(name, (functions.get(name) ?? 0) + time)
    origins.set(origin, (origins.get(origin) ?? 0) + time)
  }
  // With --requests (answered while the profile ran, after --skip): each line also in CPU microseconds per request.
  const requests = args.requests === undefined ? undefined : Number(args.requests)
  const pct = (t: number): string => `${(100 * t / busy).toFixed(1).padStart(5)}%` + (requests === undefined ? '' : `  ${(t / requests).toFixed(2).padStart(6)} µs/req`)
  process.stdout.write(`${file}: ${(total / 1e6).toFixed(1)} s sampled after the first ${args.skip} s, ${(busy / 1e6).toFixed(1)} s busy (shares below are of busy time)\n\nby origin:\n`)
  for (const [origin, time] of [...origins].sort((a, b) => b[1] - a[1]).slice(0, 25)) process.stdout.write(`  ${pct(time)}  ${origin}\n`)
  process.stdout.write('\nby function (self time):\n')
  for (const [name, time] of [...functions].sort((a, b) => b[1] - a[1]).slice(0, Number(args.top))) process.stdout.write(`  ${pct(time)}  ${name}\n`)
  process.stdout.write('\n')
}
