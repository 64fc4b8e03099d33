// Signing keys from JWKS_URL, through jose's remote key set, with every way the key set can fail told apart from every
// way a token can: a token the service cannot check because the keys cannot be had is not a bad token.
import {
  createRemoteJWKSet, customFetch, errors,
  type CryptoKey, type FetchImplementation, type FlattenedJWSInput, type JWTHeaderParameters, type RemoteJWKSet
} from 'jose'

export interface JwksTimings {
  /** How long one JWKS fetch may take, in ms. */
  timeoutMs: number
  /** How long fetched keys are used before the JWKS is fetched again, in ms. */
  cacheMaxAgeMs: number
  /** After a successful fetch, how long an unknown `kid` (or an unusable key) is refused without fetching again, in ms. */
  cooldownMs: number
}

export const JWKS_DEFAULTS: Readonly<JwksTimings> = Object.freeze({ timeoutMs: 2000, cacheMaxAgeMs: 10 * 60_000, cooldownMs: 30_000 })

/**
 * How often an open event stream's JWKS token is checked again: a cache hit while jose's copy of the set is fresh, a
 * fetch once it is stale. A key removed from the set ends its streams at most cacheMaxAge + this after its removal.
 */
export const streamRecheckMs = (cacheMaxAgeMs: number): number => Math.min(cacheMaxAgeMs, 30_000)

/** The signing keys could not be fetched or used: the key set's fault (or the network's), never the token's. */
export class JwksUnavailableError extends Error {
  override name = 'JwksUnavailableError'
}

/** The set was fetched, but the key it publishes for this token cannot be used (malformed, private, too weak). */
class UnusableKeyError extends JwksUnavailableError {
  override name = 'UnusableKeyError'
}

/** The message of an error and of its causes, for the log: `fetch failed: connect ECONNREFUSED 127.0.0.1:9`. */
export function describe (error: unknown): string {
  if (!(error instanceof Error)) return String(error)
  const cause = error.cause === undefined ? '' : describe(error.cause)
  return cause === '' || error.message.endsWith(cause) ? error.message : `${error.message}: ${cause}`
}

function isKeySet (value: unknown): boolean {
  const isObject = (item: unknown): boolean => typeof item === 'object' && item !== null && !Array.isArray(item)
  return isObject(value) && Array.isArray((value as { keys?: unknown }).keys) &&
    ((value as { keys: unknown[] }).keys).every(isObject)
}

/**
 * jose's fetch, made strict: every way the JWKS endpoint can fail (refused, timed out, not 200, not JSON, not a key
 * set) becomes a JwksUnavailableError. jose itself reports a non-200 answer or a body that is not JSON as a plain
 * JOSEError, which would read as a bad token.
 */
const keySetFetcher = (timeoutMs: number): FetchImplementation => async (url, init) => {
  const failed = (what: string) => (cause: unknown): never => {
    throw new JwksUnavailableError(init.signal.aborted ? `JWKS_URL did not answer within ${timeoutMs} ms` : what, { cause })
  }
  const response = await fetch(url, init).catch(failed('JWKS_URL could not be reached'))
  if (response.status !== 200) {
    await response.body?.cancel().catch(() => undefined)
    const redirect = response.status >= 300 && response.status < 400 ? ' (redirects are not followed: set JWKS_URL to the final URL)' : ''
    throw new JwksUnavailableError(`JWKS_URL answered HTTP ${response.status}${redirect}`)
  }
  const text = await response.text().catch(failed('the JWKS response could not be read'))
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (cause) {
    throw new JwksUnavailableError('the JWKS response is not JSON', { cause })
  }
  if (!isKeySet(json)) throw new JwksUnavailableError('the JWKS response is not a key set ({"keys": [objects]})')
  return new Response(text, { status: 200, headers: { 'content-type': 'application/json' } })
}

export type KeySetResolver = ((header: JWTHeaderParameters, token: FlattenedJWSInput) => Promise<CryptoKey>) & {
  /** jose's key set itself (freshness, the current keys): the token cache watches it for key changes. */
  keySet: RemoteJWKSet
}

/**
 * The key for a token from the JWKS at `url`. jose caches the set for `cacheMaxAgeMs`, refetches it when a token names
 * an unknown kid (at most once per `cooldownMs`), and never caches a failed fetch. Errors: JWKSNoMatchingKey and
 * JWKSMultipleMatchingKeys are the token's fault; JwksUnavailableError is the key set's.
 */
export function remoteKeySet (url: string, timings: JwksTimings): KeySetResolver {
  const jwks = createRemoteJWKSet(new URL(url), {
    timeoutDuration: timings.timeoutMs,
    cooldownDuration: timings.cooldownMs,
    cacheMaxAge: timings.cacheMaxAgeMs,
    [customFetch]: keySetFetcher(timings.timeoutMs)
  })

  async function usableKey (header: JWTHeaderParameters, token: FlattenedJWSInput): Promise<CryptoKey> {
    let key: CryptoKey
    try {
      key = await jwks(header, token)
    } catch (error) {
      if (error instanceof errors.JWKSNoMatchingKey || error instanceof errors.JWKSMultipleMatchingKeys) throw error
      if (error instanceof JwksUnavailableError) throw error
      // The set was fetched and is a key set (keySetFetcher checked), so this is the key the token's kid picked.
      throw new UnusableKeyError(`the JWKS key ${header.kid ?? '(no kid)'} cannot be used: ${describe(error)}`, { cause: error })
    }
    // jose refuses RSA keys under 2048 bits only after this, with a TypeError that would read as a bad token.
    const { modulusLength } = key.algorithm as { modulusLength?: unknown }
    if (typeof modulusLength === 'number' && modulusLength < 2048) {
      throw new UnusableKeyError(`the JWKS key ${header.kid ?? '(no kid)'} is an RSA key of ${modulusLength} bits; at least 2048 are required`)
    }
    return key
  }

  return Object.assign(async (header: JWTHeaderParameters, token: FlattenedJWSInput) => {
    try {
      return await usableKey(header, token)
    } catch (error) {
      if (!(error instanceof UnusableKeyError) || jwks.coolingDown) throw error
    }
    // jose keeps a set with an unusable key for the whole cache age; fetch it again now (at most once per cooldown,
    // as jose does for an unknown kid), so a corrected JWKS is picked up as quickly as a rotated one.
    await jwks.reload()
    return await usableKey(header, token)
  }, { keySet: jwks })
}
