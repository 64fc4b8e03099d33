// test/helpers/tools.ts's needs() and needsForFile(): a test whose real component is missing skips for a developer
// and fails under CI=true, naming the component. Each case is a small tap file run as its own process, as tap runs one.
import { spawnSync } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import path from 'node:path'
import t from 'tap'
import { ROOT } from './helpers/server-process.js'
import { strict } from './helpers/tools.js'

const TOOLS = path.join(ROOT, 'test/helpers/tools.js')
const work = await mkdtemp(path.join(ROOT, '.tap/needs-'))
t.teardown(async () => { await rm(work, { recursive: true, force: true }) })

const FILES = {
  // One test needs a component that is missing (findTool finds nothing), one needs nothing.
  test: `import t from 'tap'
import { findTool, needs } from ${JSON.stringify(TOOLS)}
t.test('through HAProxy', needs(findTool('eva-no-such-haproxy'), 'HAProxy', 'haproxy'), async (t) => { t.pass('ran through HAProxy') })
t.test('plain', async (t) => { t.pass('plain ran') })
`,
  // A file whose every test needs the component.
  file: `import t from 'tap'
import { findTool, needsForFile } from ${JSON.stringify(TOOLS)}
needsForFile(findTool('eva-no-such-haproxy'), 'HAProxy', 'haproxy')
t.pass('ran through HAProxy')
`
}

function runFile (kind: keyof typeof FILES, file: string, ci: string | undefined): { status: number | null, out: string } {
  const env: NodeJS.ProcessEnv = { ...process.env }
  delete env.CI
  delete env.TAP
  if (ci !== undefined) env.CI = ci
  const result = spawnSync(process.execPath, ['--import', 'tsx', file], { cwd: ROOT, env, encoding: 'utf8', timeout: 60_000 })
  return { status: result.status, out: `${kind}, CI=${ci}:\n${result.stdout}${result.stderr}` }
}

for (const kind of ['test', 'file'] as const) {
  t.test(`${kind === 'test' ? 'needs()' : 'needsForFile()'}: a missing component`, async (t) => {
    const file = path.join(work, `fixture-${kind}.ts`)
    await writeFile(file, FILES[kind])
    for (const ci of [undefined, 'false']) {
      const { status, out } = runFile(kind, file, ci)
      t.equal(status, 0, `CI=${ci}: the file passes`, { out })
      t.match(out, /(# SKIP|1\.\.0 #).*HAProxy is not installed \(apt-get install -y haproxy\)/, `CI=${ci}: skipped, naming the package`)
      t.notMatch(out, /not ok/, `CI=${ci}: nothing fails`)
    }
    for (const ci of ['true', '1']) {
      const { status, out } = runFile(kind, file, ci)
      t.not(status, 0, `CI=${ci}: the file fails`, { out })
      t.match(out, /not ok \d+ - HAProxy is not installed \(apt-get install -y haproxy\): CI=true runs every test that needs a real component/, `CI=${ci}: the failure names the component`)
      t.notMatch(out, /ran through HAProxy/, `CI=${ci}: the test that needs it did not run`)
    }
  })
}

t.test('strict(): CI set to anything but empty, 0 or false', async (t) => {
  for (const ci of ['true', 'TRUE', '1', 'yes']) t.equal(strict({ CI: ci }), true, `CI=${ci}`)
  for (const ci of [undefined, '', '0', 'false', 'False']) t.equal(strict(ci === undefined ? {} : { CI: ci }), false, `CI=${ci}`)
})
