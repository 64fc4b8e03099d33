// The link check CI runs (scripts/check-links.ts): the repository's README and docs/ have no broken relative link or
// #anchor, and the check does catch each kind of broken link, run as CI runs it, on pages written for the test.
import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import t from 'tap'
import { anchorsOf, checkFiles, defaultFiles, slug } from '../../scripts/check-links.js'
import { ROOT } from '../helpers/server-process.js'

// A page another branch is writing (the scheduler's facts): links to it may point nowhere until it lands, and no
// longer: once it exists, links and anchors into it are checked like any other.
const PENDING = [path.join(ROOT, 'docs/scheduler.md')]

function run (args: string[]): Promise<{ code: number, stdout: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', 'scripts/check-links.ts', ...args], { cwd: ROOT }, (error, stdout) => {
      resolve({ code: error === null ? 0 : Number(error.code), stdout })
    })
  })
}

t.test('README.md, CONTRIBUTING.md and docs/*.md: every relative link and anchor resolves', async (t) => {
  const files = defaultFiles(ROOT)
  t.ok(files.includes(path.join(ROOT, 'docs/operations.md')), 'docs/ pages are checked')
  t.ok(files.includes(path.join(ROOT, 'CONTRIBUTING.md')), 'CONTRIBUTING.md is checked')
  const broken = checkFiles(files, PENDING)
  t.same(broken.map((link) => `${path.relative(ROOT, link.file)}:${link.line}: ${link.target}: ${link.reason}`), [])
  for (const page of PENDING) if (!existsSync(page)) t.comment(`${path.relative(ROOT, page)} is not there yet: links to it are allowed until it is`)
})

t.test('GitHub heading slugs', async (t) => {
  t.equal(slug('`PATCH /heartbeat`'), 'patch-heartbeat')
  t.equal(slug('Prometheus: scrape configuration and alert rules'), 'prometheus-scrape-configuration-and-alert-rules')
  t.equal(slug('Dependencies, and why each is there'), 'dependencies-and-why-each-is-there')
  t.equal(slug('When JWKS_URL fails'), 'when-jwks_url-fails')
  t.equal(slug('`/livez` and `/readyz`'), 'livez-and-readyz')
  t.same([...anchorsOf('# A\n## A\n```\n# not a heading\n```\n## A\n<a id="here"></a>')], ['a', 'a-1', 'a-2', 'here'])
})

t.test('the check fails on each kind of broken link, and only on those', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'eva-links-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  await mkdir(path.join(dir, 'sub'))
  await writeFile(path.join(dir, 'sub', 'other.md'), '# Other page\n\n## Second: part two\n')
  await writeFile(path.join(dir, 'sub', 'data.json'), '{}\n')
  await writeFile(path.join(dir, 'page.md'), [
    '# Page',
    '## Local heading',
    'Good: [other](sub/other.md), [a heading](sub/other.md#second-part-two), [here](#local-heading), [a folder](sub),',
    '[a site](https://example.com/missing.md), [mail](mailto:ops@example.com), [with a title](sub/other.md "Other").',
    'Broken: [missing file](sub/missing.md), [missing heading](sub/other.md#no-such-heading), [missing here](#nowhere),',
    '[anchor into JSON](sub/data.json#x).',
    'Ignored: `[in code](nowhere.md)`',
    '```md',
    '[in a fence](nowhere-either.md)',
    '```',
    ''
  ].join('\n'))
  const { code, stdout } = await run([path.join(dir, 'page.md')])
  t.equal(code, 1, 'exit 1')
  const lines = stdout.trim().split('\n')
  t.same(lines.slice(0, -1).map((line) => line.replace(/^.*page\.md:/, '')), [
    '5: sub/missing.md: no such file',
    '5: sub/other.md#no-such-heading: no heading #no-such-heading',
    '5: #nowhere: no heading #nowhere',
    '6: sub/data.json#x: an anchor into a file that is not Markdown'
  ], 'one line per broken link, naming the line, the target and why')
  t.equal(lines.at(-1), '1 files, 11 links, 4 broken')

  await writeFile(path.join(dir, 'good.md'), '# Good\n\n[other](sub/other.md#other-page), [self](#good)\n')
  const good = await run([path.join(dir, 'good.md')])
  t.equal(good.code, 0, 'a page with only good links passes')
  t.equal(good.stdout.trim(), '1 files, 2 links, 0 broken')

  const pending = await run([path.join(dir, 'page.md'), '--pending', path.join(dir, 'sub', 'missing.md')])
  t.equal(pending.code, 1, 'the other broken links still fail')
  t.notMatch(pending.stdout, 'sub/missing.md: no such file', 'a missing page named --pending passes')
  t.match(pending.stdout, /sub\/missing\.md: not there yet \(--pending\): links to it pass/)
  t.match(pending.stdout, '1 files, 11 links, 3 broken')
})
