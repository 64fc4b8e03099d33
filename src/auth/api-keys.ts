// Secret API keys (Supabase's `sb_secret_…`, which are not JWTs) for ops scripts, configured in SERVICE_API_KEYS. Only
// each key's SHA-256 digest is kept; a presented key is hashed and compared with every configured digest in constant
// time, so the work (and the time) does not depend on which key, if any, it matches, nor on how much of it is right.
import { createHash, timingSafeEqual } from 'node:crypto'

export const SECRET_KEY_PREFIX = 'sb_secret_'
export const PUBLISHABLE_KEY_PREFIX = 'sb_publishable_'
/** Every Supabase API key starts so; a bearer credential that does is a key, not a JWT. */
export const API_KEY_PREFIX = 'sb_'

/** A configured key as the service keeps it: its name, a short fingerprint for logs, and its digest (hex). */
export interface ConfiguredApiKey {
  /** The name given in SERVICE_API_KEYS (`name:key`), else the fingerprint. */
  id: string
  /** `sha256:` and the first 12 hex digits of the key's SHA-256: names the key in logs without revealing it. */
  fingerprint: string
  sha256: string
}

const digestOf = (key: string): Buffer => createHash('sha256').update(key, 'utf8').digest()
export const fingerprintOf = (key: string): string => `sha256:${digestOf(key).toString('hex').slice(0, 12)}`

const KEY = /^sb_secret_[A-Za-z0-9_-]{16,}$/
const NAME = /^[A-Za-z0-9_.-]{1,64}$/

/** SERVICE_API_KEYS (`[name:]sb_secret_…` entries, comma-separated) parsed; a string says what is wrong (never the key). */
export function parseServiceApiKeys (text: string): ConfiguredApiKey[] | string {
  const keys: ConfiguredApiKey[] = []
  for (const [index, entry] of text.split(',').map((part) => part.trim()).entries()) {
    const colon = entry.indexOf(':')
    // `ops: sb_secret_…` is how people write a pair: the spaces around the colon are not part of either.
    const name = colon === -1 ? undefined : entry.slice(0, colon).trim()
    const key = colon === -1 ? entry : entry.slice(colon + 1).trim()
    const which = `entry ${index + 1}`
    if (name !== undefined && !NAME.test(name)) return `${which}: a name is 1 to 64 letters, digits, _ . or - before the colon`
    if (key.startsWith(PUBLISHABLE_KEY_PREFIX)) return `${which} is a publishable key (sb_publishable_…), which grants nothing: use a secret key`
    if (!KEY.test(key)) return `${which} is not a secret key (sb_secret_ and at least 16 more letters, digits, _ or -)`
    const fingerprint = fingerprintOf(key)
    const sha256 = digestOf(key).toString('hex')
    const id = name ?? fingerprint
    if (keys.some((other) => other.sha256 === sha256)) return `${which} repeats a key`
    if (keys.some((other) => other.id === id)) return `${which} repeats the name ${id}`
    keys.push({ id, fingerprint, sha256 })
  }
  return keys
}

export type Compare = (a: Buffer, b: Buffer) => boolean

export class ApiKeySet {
  private readonly digests: ReadonlyArray<{ key: ConfiguredApiKey, digest: Buffer }>

  /** `compare` is crypto.timingSafeEqual; the attack suite passes it wrapped, to see the work done. */
  constructor (keys: readonly ConfiguredApiKey[], private readonly compare: Compare = timingSafeEqual) {
    this.digests = keys.map((key) => ({ key, digest: Buffer.from(key.sha256, 'hex') }))
  }

  get size (): number {
    return this.digests.length
  }

  /** The configured key `presented` is, or undefined; every configured digest is compared whatever the outcome. */
  match (presented: string): ConfiguredApiKey | undefined {
    const digest = digestOf(presented)
    let found: ConfiguredApiKey | undefined
    for (const { key, digest: configured } of this.digests) {
      const equal = this.compare(digest, configured)
      if (equal && found === undefined) found = key
    }
    return found
  }
}
