// The development JWT secret is trusted only when it is ours: a file another user planted (or a link, or not a regular
// file) would let them mint tokens the embedded default accepts. And a DATA_DIR every user may write is refused, sticky or not.
import { chmod, chown, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import t from 'tap'
import { checkTrustedDirectory, UnsafePathError } from '../../src/embedded/os-user.js'
import { DEV_SECRET_FILE, loadOrCreateDevSecret, readDevSecret } from '../../src/embedded/dev-secret.js'

const rootOnly = process.getuid?.() !== 0 && 'only root can give a file to another user'

t.test('a secret of ours is read, kept, and made 0600; none yet: one is made', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'eva-secret-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  t.equal(await readDevSecret(dir), undefined)
  const made = await loadOrCreateDevSecret(dir)
  t.match(made, /^[\w-]{64}$/)
  t.equal(await loadOrCreateDevSecret(dir), made, 'kept across starts')
  t.equal((await readFile(path.join(dir, DEV_SECRET_FILE), 'utf8')).trim(), made)
})

t.test('a secret file another user planted is refused, and so is a link', { skip: rootOnly }, async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'eva-secret-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  const file = path.join(dir, DEV_SECRET_FILE)
  await writeFile(file, 'x'.repeat(42) + '\n', { mode: 0o600 })
  await chown(file, 65534, 65534)
  await t.rejects(readDevSecret(dir), UnsafePathError)
  await t.rejects(loadOrCreateDevSecret(dir), /belongs to uid 65534/, 'the start refuses it too')
  await rm(file)
  const elsewhere = path.join(dir, 'elsewhere')
  await writeFile(elsewhere, 'y'.repeat(42))
  await symlink(elsewhere, file)
  await t.rejects(readDevSecret(dir), /symbolic link/)
})

t.test('a directory every user may write is not trusted, sticky or not', async (t) => {
  const parent = await mkdtemp(path.join(tmpdir(), 'eva-sticky-'))
  t.teardown(async () => { await rm(parent, { recursive: true, force: true }) })
  for (const mode of [0o1777, 0o777]) {
    const dir = path.join(parent, mode.toString(8))
    await mkdir(dir)
    await chmod(dir, mode)
    t.throws(() => { checkTrustedDirectory(dir) }, /writable by every user/, mode.toString(8))
  }
})
