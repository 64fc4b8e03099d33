// The embedded default's development JWT secret: generated once, kept in DATA_DIR with owner-only permissions,
// so tokens minted with `npm run token` keep working across restarts.
import { randomBytes } from 'node:crypto'
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises'
import path from 'node:path'

export const DEV_SECRET_FILE = 'jwt-secret'

export async function readDevSecret (dataDir: string): Promise<string | undefined> {
  try {
    return (await readFile(path.join(dataDir, DEV_SECRET_FILE), 'utf8')).trim()
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
  await mkdir(dataDir, { recursive: true })
  // writeFile's mode applies only to a new file: an existing one (a secret too short to keep) is tightened too.
  await writeFile(file, secret + '\n', { mode: 0o600 })
  await chmod(file, 0o600)
  return secret
}
