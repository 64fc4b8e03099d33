// As root, the server runs as `postgres`, which cannot enter a mode-700 checkout: what it needs is staged under
// STAGE_ROOT (root-owned), the cluster as a directory the data directory links to. Paths are checked without
// following links, so nothing planted by another user is trusted or chowned.
import { createHash } from 'node:crypto'
import { execFileSync } from 'node:child_process'
import { constants, existsSync, lstatSync, readdirSync, realpathSync, statSync, type Stats } from 'node:fs'
import { chmod, cp, lstat, mkdir, mkdtemp, open, readFile, readdir, rename, rm, rmdir, symlink } from 'node:fs/promises'
import path from 'node:path'

export const SUPERUSER = 'postgres'
export const STAGE_ROOT = '/var/lib/eva-heartbeat-api'

export interface OsUser { uid: number, gid: number }

/** The user the server runs as: undefined (ourselves) unless we are root; then `postgres`, created when missing. */
export function serverUser (): OsUser | undefined {
  if (process.getuid?.() !== 0) return undefined
  const ids = (): OsUser => ({
    uid: Number(execFileSync('id', ['-u', SUPERUSER]).toString().trim()),
    gid: Number(execFileSync('id', ['-g', SUPERUSER]).toString().trim())
  })
  try {
    return ids()
  } catch {
    execFileSync('useradd', ['--system', '--user-group', '--no-create-home', SUPERUSER])
    return ids()
  }
}

/** Whether `user` holds permission `bit` (1: search/execute, 4: read) on a file, by its mode bits. */
export function permits (file: Pick<Stats, 'mode' | 'uid' | 'gid'>, user: OsUser, bit: number): boolean {
  const shift = file.uid === user.uid ? 6 : file.gid === user.gid ? 3 : 0
  return ((file.mode >> shift) & bit) === bit
}

/**
 * The first directory on the way to `target` (its parents: the target itself is ours to chown) that `user` cannot
 * enter, with its mode, or undefined when the way is open. Only the part of the path that exists is walked, after
 * resolving symbolic links.
 */
export function blockingDirectory (target: string, user: OsUser): { dir: string, mode: string } | undefined {
  let existing = path.dirname(path.resolve(target))
  while (!existsSync(existing)) existing = path.dirname(existing)
  const dirs = [realpathSync(existing)]
  for (let dir = path.dirname(dirs[0] ?? '/'); dir !== dirs[dirs.length - 1]; dir = path.dirname(dir)) dirs.push(dir)
  for (const dir of dirs.reverse()) {
    const stats = statSync(dir)
    if (!permits(stats, user, 1)) return { dir, mode: (stats.mode & 0o7777).toString(8) }
  }
  return undefined
}

/** One line that names the directory in the way and the ways out. */
export class UnreachableError extends Error {
  constructor (what: string, blocker: { dir: string, mode: string }, reason: string) {
    super(`the ${SUPERUSER} OS user, which runs the server for root, cannot enter ${blocker.dir} (mode ${blocker.mode}) ` +
      `to reach ${what}, ${reason}; fix: clone (or set DATA_DIR) under a directory it can enter, such as /srv or ` +
      '/opt, or run as a user other than root, or set DATABASE_URL')
    this.name = 'UnreachableError'
  }
}

/** The binary directory the server can run from: binDir itself, or a copy of its installation under `root`. */
export async function reachableBinDir (binDir: string, user: OsUser, root = STAGE_ROOT): Promise<string> {
  const blocker = blockingDirectory(path.join(binDir, 'postgres'), user)
  if (blocker === undefined) return binDir
  // The installation around bin/: the server finds lib/ and share/ relative to its own binary.
  const source = path.dirname(realpathSync(binDir))
  const postgres = path.join(source, path.basename(binDir), 'postgres')
  try {
    const version = execFileSync(postgres, ['--version']).toString().trim().split(' ').pop() ?? 'unknown'
    const digest = createHash('sha256').update(await readFile(postgres)).digest('hex').slice(0, 12)
    const staged = path.join(root, `postgres-${version}-${digest}`)
    if (!existsSync(staged)) await copyInstallation(source, staged)
    // The server's user runs what is there: only root may have put it there.
    for (const dir of [root, staged, path.join(staged, path.basename(binDir))]) checkTrustedDirectory(dir)
    stillBlocked(staged, user)
    return path.join(staged, path.basename(binDir))
  } catch (error) {
    if (error instanceof UnsafePathError) throw error
    throw new UnreachableError(`the PostgreSQL binaries in ${source}`, blocker, `and copying them to ${root} failed: ${messageOf(error)}`)
  }
}

/** A path the start refuses to use, in one line: what it is and why. */
export class UnsafePathError extends Error {
  override name = 'UnsafePathError'
}

const ownUid = (): number => process.getuid?.() ?? -1

/**
 * A directory the start trusts (the cluster's parent, the staging directories) must be writable by no one but its
 * owner, and owned by us or root: anyone else could swap what is inside between our check and its use.
 */
export function checkTrustedDirectory (dir: string): void {
  const stats = statSync(dir)
  if (!stats.isDirectory()) throw new UnsafePathError(`${dir} is not a directory`)
  if (stats.uid !== 0 && stats.uid !== ownUid()) {
    throw new UnsafePathError(`${dir} belongs to uid ${stats.uid}, not to this user or root: not trusting what is inside it`)
  }
  // Sticky or not: in a directory every user may write, another user can plant what we have not made yet.
  if ((stats.mode & 0o002) !== 0) {
    throw new UnsafePathError(`${dir} is writable by every user (mode ${(stats.mode & 0o7777).toString(8)}): not trusting what is inside it`)
  }
}

/**
 * What `dataDir` is, checked without following it: a directory of ours or of the server's user; a symbolic link we
 * made, to such a directory (as root: only into `root`/data, where staging puts clusters); or nothing yet.
 * Anything else (a link someone else planted, a link elsewhere, a file) is refused in one line.
 */
export function checkClusterPath (dataDir: string, user: OsUser | undefined, root = STAGE_ROOT): 'missing' | 'directory' | { link: string } {
  const owners = new Set([ownUid(), ...(user === undefined ? [] : [user.uid])])
  const link = lstatOrUndefined(dataDir)
  if (link === undefined) return 'missing'
  if (link.isDirectory()) {
    if (!owners.has(link.uid)) throw new UnsafePathError(`${dataDir} belongs to uid ${link.uid}, not to this user or the server's: not using it as the cluster`)
    return 'directory'
  }
  if (!link.isSymbolicLink()) throw new UnsafePathError(`${dataDir} is not a directory: not using it as the cluster`)
  let target: string
  try {
    target = realpathSync(dataDir)
  } catch {
    throw new UnsafePathError(`${dataDir} is a symbolic link that leads nowhere: remove it`)
  }
  const stagedData = path.join(root, 'data')
  if (link.uid !== ownUid()) {
    throw new UnsafePathError(`${dataDir} is a symbolic link made by uid ${link.uid}, not by this user: not following it (remove it)`)
  }
  if (user !== undefined && path.dirname(target) !== stagedData) {
    throw new UnsafePathError(`${dataDir} is a symbolic link to ${target}, which is not a cluster staged in ${stagedData}: not following it (remove it)`)
  }
  const stats = statSync(target)
  if (!stats.isDirectory() || !owners.has(stats.uid)) {
    throw new UnsafePathError(`${dataDir} links to ${target}, which is not a directory of this user or the server's: not following it (remove it)`)
  }
  return { link: target }
}

/**
 * Makes `dir` (a directory, never a link: it is opened with O_NOFOLLOW) owner-only and, as root, the server's:
 * a chown that followed a planted link would hand the link's target to the server's user.
 */
export async function ownDirectory (dir: string, user: OsUser | undefined): Promise<void> {
  const handle = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW).catch((error: NodeJS.ErrnoException) => {
    throw error.code === 'ELOOP' || error.code === 'ENOTDIR' ? new UnsafePathError(`${dir} is not a directory: not using it as the cluster`) : error
  })
  try {
    const stats = await handle.stat()
    const owners = new Set([ownUid(), ...(user === undefined ? [] : [user.uid])])
    if (!owners.has(stats.uid)) throw new UnsafePathError(`${dir} belongs to uid ${stats.uid}, not to this user or the server's: not using it as the cluster`)
    if (user !== undefined && stats.uid !== user.uid) await handle.chown(user.uid, user.gid)
    await handle.chmod(0o700)
  } finally {
    await handle.close()
  }
}

/**
 * The cluster directory the server can use: dataDir itself, or a directory under `root` that dataDir becomes a
 * symbolic link to (created empty, owned by `user`). A cluster already in dataDir that it cannot reach is an error.
 * Whatever dataDir is, it is checked first (checkClusterPath); its parent is created if missing, and must be trusted.
 */
export async function reachableDataDir (dataDir: string, user: OsUser | undefined, root = STAGE_ROOT): Promise<string> {
  const kind = checkClusterPath(dataDir, user, root)
  await mkdir(path.dirname(dataDir), { recursive: true })
  checkTrustedDirectory(path.dirname(dataDir))
  if (typeof kind === 'object') {
    if (user !== undefined) {
      checkTrustedDirectory(root)
      checkTrustedDirectory(path.join(root, 'data'))
      const behind = blockingDirectory(kind.link, user)
      if (behind !== undefined) throw new UnreachableError(`the cluster ${kind.link}`, behind, `and ${dataDir} links to it`)
    }
    return kind.link
  }
  const blocker = user === undefined ? undefined : blockingDirectory(dataDir, user)
  if (blocker === undefined || user === undefined) return kind === 'missing' ? dataDir : realpathSync(dataDir)
  if (kind === 'directory') {
    if (readdirSync(dataDir).length > 0) {
      throw new UnreachableError(`the cluster ${dataDir}`, blocker, 'and it is not empty, so it is not moved')
    }
    await rmdir(dataDir) // left empty by a start that failed: replaced by the link
  }
  const staged = path.join(root, 'data', `${path.resolve(dataDir).slice(1).replace(/[^\w.-]+/g, '-').slice(-60)}-${hashOf(path.resolve(dataDir))}`)
  try {
    await mkdirOpen(path.dirname(staged))
    checkTrustedDirectory(root)
    checkTrustedDirectory(path.dirname(staged))
    await mkdir(staged, { recursive: true, mode: 0o700 })
    await ownDirectory(staged, user)
    stillBlocked(staged, user)
    await symlink(staged, dataDir)
  } catch (error) {
    if (error instanceof UnsafePathError) throw error
    throw new UnreachableError(`the cluster ${dataDir}`, blocker, `and staging it in ${root} failed: ${messageOf(error)}`)
  }
  return staged
}

/** The staging directory itself is out of reach (a parent made owner-only by hand, say). */
function stillBlocked (staged: string, user: OsUser): void {
  const blocker = blockingDirectory(path.join(staged, 'inside'), user)
  if (blocker !== undefined) throw new Error(`${blocker.dir} is mode ${blocker.mode}`)
}

/** Copies into a temporary sibling then renames: a start running at the same time never sees half a copy. */
async function copyInstallation (source: string, staged: string): Promise<void> {
  await mkdirOpen(path.dirname(staged))
  const temporary = await mkdtemp(`${staged}.tmp-`)
  try {
    // verbatimSymlinks: the libraries' relative links (libpq.so -> libpq.so.5) stay relative, inside the copy.
    await cp(source, temporary, { recursive: true, verbatimSymlinks: true })
    await openUp(temporary)
    await rename(temporary, staged).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOTEMPTY' && error.code !== 'EEXIST') throw error
    })
  } finally {
    await rm(temporary, { recursive: true, force: true })
  }
}

/** Readable (and searchable, or runnable where the owner may run it) by everyone, whatever the umask was. */
async function openUp (dir: string): Promise<void> {
  await chmod(dir, 0o755)
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const file = path.join(dir, entry.name)
    if (entry.isDirectory()) await openUp(file)
    else if (entry.isFile()) await chmod(file, ((await lstat(file)).mode & 0o100) !== 0 ? 0o755 : 0o644)
  }
}

/** A directory every user can enter, whatever the umask is. */
async function mkdirOpen (dir: string): Promise<void> {
  const parent = path.dirname(dir)
  if (!existsSync(parent)) await mkdirOpen(parent)
  if (!existsSync(dir)) {
    await mkdir(dir).catch((error: NodeJS.ErrnoException) => { if (error.code !== 'EEXIST') throw error })
    await chmod(dir, 0o755)
  }
}

function lstatOrUndefined (file: string): Stats | undefined {
  try {
    return lstatSync(file)
  } catch {
    return undefined
  }
}

const hashOf = (text: string): string => createHash('sha256').update(text).digest('hex').slice(0, 8)
const messageOf = (error: unknown): string => error instanceof Error ? error.message : String(error)
