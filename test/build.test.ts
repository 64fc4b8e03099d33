// `npm start` compiles only what is out of date (scripts/build.mjs): run in a copy of the checkout, so the suite's
// own dist/ is never rewritten under other tests.
import { spawnSync } from 'node:child_process'
import { statSync, utimesSync } from 'node:fs'
import { cp, mkdtemp, rm, symlink } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import t from 'tap'
import { ROOT } from './helpers/server-process.js'

t.test('the build runs tsc when dist/ is missing or older than a source, and not otherwise', async (t) => {
  const copy = await mkdtemp(path.join(tmpdir(), 'eva-build-'))
  t.teardown(async () => await rm(copy, { recursive: true, force: true }))
  for (const entry of ['src', 'scripts', 'tsconfig.json', 'tsconfig.build.json', 'package.json']) {
    await cp(path.join(ROOT, entry), path.join(copy, entry), { recursive: true })
  }
  await symlink(path.join(ROOT, 'node_modules'), path.join(copy, 'node_modules'))
  const build = (): number => spawnSync(process.execPath, ['scripts/build.mjs', '--required'], { cwd: copy, stdio: 'inherit' }).status ?? -1
  const built = (): number => statSync(path.join(copy, 'dist', 'server.js')).mtimeMs

  t.equal(build(), 0, 'first build')
  const first = built()
  t.equal(build(), 0, 'second build')
  t.equal(built(), first, 'nothing changed: dist/ is not rewritten')

  const later = new Date(Date.now() + 60_000)
  utimesSync(path.join(copy, 'src', 'config.ts'), later, later)
  t.equal(build(), 0, 'build after a source changed')
  t.not(built(), first, 'a newer source: compiled again')
})
