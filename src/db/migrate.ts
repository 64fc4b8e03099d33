// Applies db/migrations/*.sql in name order. Every file is idempotent, so this simply runs them all, each in its
// own transaction, under an advisory lock so that two starting processes do not race.
import { readdir, readFile } from 'node:fs/promises'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Sql } from 'postgres'

export const MIGRATIONS_DIR = fileURLToPath(new URL('../../db/migrations/', import.meta.url))
const LOCK_KEY = 4_210_977_301

export async function migrate (sql: Sql, dir: string = MIGRATIONS_DIR): Promise<string[]> {
  const files = (await readdir(dir)).filter((name) => name.endsWith('.sql')).sort()
  for (const file of files) {
    const text = await readFile(path.join(dir, file), 'utf8')
    await sql.begin(async (tx) => {
      await tx`select pg_advisory_xact_lock(${LOCK_KEY})`
      await tx.unsafe(text)
    })
  }
  return files
}
