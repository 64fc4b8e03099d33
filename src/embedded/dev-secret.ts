// The embedded default's development JWT secret: generated once, kept in DATA_DIR with owner-only permissions,
// so tokens minted with `npm run token` keep working across restarts. A secret file that is a link, not a regular
// file, or another user's is refused: whoever planted it could mint tokens the API would accept.
import { randomBytes } from 'node:crypto'
import { mkdir, rm, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { readSmallFile } from './local-postgres.js'

export const DEV_SECRET_FILE = 'jwt-secret'

export async function readDevSecret (dataDir: string): Promise<string | undefined> {
  try {
    return (await readSmallFile(path.join(dataDir, DEV_SECRET_FILE), { ownOnly: true })).trim()
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw error
  }
}

export async function loadOrCreateDevSecret (dataDir: string): Promise<string> {
  const file = path.join(dataDir, DEV_SECRET_FILE)
  const existing = await readDevSecret(dataDir)
  if (existing !== undefined && existing.length >= 32) return existing
  const secret = randomBytes(48).toString('base64url')
  await mkdir(dataDir, { recursive: true, mode: 0o700 })
  // A secret too short to keep is replaced by a new file: 'wx' never writes through a file someone put in its place.
  if (existing !== undefined) await rm(file, { force: true })
  await writeFile(file, secret + '\n', { flag: 'wx', mode: 0o600 })
  return secret
}
