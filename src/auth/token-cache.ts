// Verified tokens, remembered (a signature check costs tens of µs; monitors resend the same token): a bounded LRU
// of tokens jose accepted, `exp` checked at every use, JWKS-signed ones dropped once jose's key set is stale or
// changes, so a key removed from the JWKS stops working exactly when it would without this cache.
import { LRUCache } from 'lru-cache'
import type { TokenVerifier, VerifiedToken } from './jwt.js'

/** The most tokens remembered (each at most 8 KiB, so at most a few MB). */
export const TOKEN_CACHE_MAX = 1000

interface Entry {
  verified: VerifiedToken
  exp: number
  /** Signed by a key from the JWKS (so it depends on that key set staying the same). */
  fromKeySet: boolean
}

export interface TokenCacheOptions {
  clockToleranceSeconds: number
  max?: number
}

export class TokenCache {
  private readonly entries: LRUCache<string, Entry>
  private readonly tolerance: number
  /** The JWKS as last seen (JSON text), to notice a change. */
  private keySetSeen: string | undefined

  constructor (private readonly verifier: TokenVerifier, options: TokenCacheOptions) {
    this.entries = new LRUCache<string, Entry>({ max: options.max ?? TOKEN_CACHE_MAX })
    this.tolerance = options.clockToleranceSeconds
  }

  get size (): number {
    return this.entries.size
  }

  /** The token as verified before, when it can be used without checking its signature again; else undefined. */
  peek (token: string): VerifiedToken | undefined {
    const entry = this.entries.get(token)
    if (entry === undefined) return undefined
    const expired = this.expired(entry)
    const keysStale = entry.fromKeySet && this.verifier.keySet?.fresh !== true
    if (!expired && !keysStale) return entry.verified
    this.entries.delete(token)
    return undefined
  }

  /**
   * Whether the token was verified before and has not expired, whatever the age of the key set; changes nothing.
   * For the failed-authentication limit only: a known token is not a guess, and verify() still refuses it if its key
   * was removed. peek() would drop a JWKS token once the key set is stale, locking its holder out behind the limit.
   */
  known (token: string): boolean {
    const entry = this.entries.peek(token)
    return entry !== undefined && !this.expired(entry)
  }

  // jose's own rule: expired when exp <= now - tolerance, now in whole seconds.
  private expired (entry: Entry): boolean {
    return entry.exp <= Math.floor(Date.now() / 1000) - this.tolerance
  }

  /** As TokenVerifier.verify; refusals are thrown as they are and never remembered. */
  async verify (token: string): Promise<VerifiedToken> {
    const cached = this.peek(token)
    if (cached !== undefined) return cached
    try {
      const verified = await this.verifier.verify(token)
      // A token verified while the key set changed under it is not remembered: its next use checks it again.
      const keysChanged = this.noticeKeyChange()
      const exp = verified.claims.exp
      if (typeof exp === 'number' && !keysChanged) this.entries.set(token, { verified, exp, fromKeySet: verified.header.alg !== 'HS256' })
      return verified
    } catch (error) {
      // A refusal may follow a fetch of a new key set (a key was removed): the other tokens must not outlive it.
      this.noticeKeyChange()
      throw error
    }
  }

  /** Forgets the JWKS-verified tokens when the key set differs from the one seen before; true when it did. */
  private noticeKeyChange (): boolean {
    const current = this.verifier.keySet?.jwks()
    if (current === undefined) return false
    const text = JSON.stringify(current)
    const changed = this.keySetSeen !== undefined && text !== this.keySetSeen
    if (changed) {
      for (const [token, entry] of this.entries.entries()) if (entry.fromKeySet) this.entries.delete(token)
    }
    this.keySetSeen = text
    return changed
  }
}
