// Verifies bearer tokens with jose. The accepted algorithms follow from the configured keys: HS256 only with
// JWT_SECRET, ES256/RS256 only from JWKS_URL, never `none`, never HS256 against a public key.
// A token the service cannot check because the signing keys cannot be had is keys_unavailable, never invalid: it may be good.
import { errors, jwtVerify, type CryptoKey, type FlattenedJWSInput, type JWTHeaderParameters, type JWTPayload, type RemoteJWKSet } from 'jose'
import { describe, JWKS_DEFAULTS, JwksUnavailableError, remoteKeySet } from './jwks.js'
import { AuthRejection, invalidCredential, keysUnavailable } from './rejection.js'

export const MAX_TOKEN_BYTES = 8 * 1024

export interface JwtSettings {
  secret: string | undefined
  jwksUrl: string | undefined
  audience: string | undefined
  issuer: string | undefined
  clockToleranceSeconds: number
  roleClaim: string
  // The JWKS timings (defaults in JWKS_DEFAULTS, src/auth/jwks.ts) are not environment variables; tests shorten them.
  /** How long one JWKS fetch may take, in ms (default 2000). */
  jwksTimeoutMs?: number
  /** How long fetched keys are used before the JWKS is fetched again, in ms (default 600000: 10 minutes). */
  jwksCacheMaxAgeMs?: number
  /** After a successful fetch, how long an unknown `kid` is refused without fetching again, in ms (default 30000). */
  jwksCooldownMs?: number
}

export interface VerifiedToken {
  claims: JWTPayload
  header: JWTHeaderParameters
  /** The role claim when it is a string; undefined when the token has none. */
  role: string | undefined
}

/**
 * The one Authorization header of a request, from its raw headers. Node keeps the first of several and drops the rest,
 * so a proxy that reads another one would see a different caller: several are refused instead.
 */
export function singleAuthorization (rawHeaders: readonly string[]): string | undefined {
  let found: string | undefined
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    if (rawHeaders[i]?.toLowerCase() !== 'authorization') continue
    if (found !== undefined) throw invalidCredential('invalid_token', 'Send one Authorization header, not several.')
    found = rawHeaders[i + 1]
  }
  return found
}

/** The token from an Authorization header, or undefined when there is none; a malformed header is refused. */
export function bearerToken (header: string | undefined): string | undefined {
  if (header === undefined || header.trim() === '') return undefined
  const match = /^Bearer +([A-Za-z0-9\-_.~+/]+=*) *$/i.exec(header)
  if (match?.[1] === undefined) {
    throw invalidCredential('invalid_token', 'The Authorization header must be "Bearer" followed by one token.')
  }
  return match[1]
}

/** A dotted path into the claims: `app_metadata.role`. */
export function claimAt (claims: JWTPayload, path: string): unknown {
  let value: unknown = claims
  for (const key of path.split('.')) {
    if (typeof value !== 'object' || value === null || Array.isArray(value) || !Object.hasOwn(value, key)) return undefined
    value = (value as Record<string, unknown>)[key]
  }
  return value
}

type KeyResolver = (header: JWTHeaderParameters, token: FlattenedJWSInput) => Promise<CryptoKey | Uint8Array>

export class TokenVerifier {
  readonly algorithms: string[]
  /** The JWKS as jose holds it (undefined without JWKS_URL): the token cache watches it for key changes. */
  readonly keySet: RemoteJWKSet | undefined
  private readonly resolveKey: KeyResolver

  constructor (private readonly settings: JwtSettings) {
    const secret = settings.secret === undefined ? undefined : new TextEncoder().encode(settings.secret)
    const fromKeySet = settings.jwksUrl === undefined
      ? undefined
      : remoteKeySet(settings.jwksUrl, {
        timeoutMs: settings.jwksTimeoutMs ?? JWKS_DEFAULTS.timeoutMs,
        cacheMaxAgeMs: settings.jwksCacheMaxAgeMs ?? JWKS_DEFAULTS.cacheMaxAgeMs,
        cooldownMs: settings.jwksCooldownMs ?? JWKS_DEFAULTS.cooldownMs
      })
    this.algorithms = [...(secret !== undefined ? ['HS256'] : []), ...(fromKeySet !== undefined ? ['ES256', 'RS256'] : [])]
    this.keySet = fromKeySet?.keySet
    this.resolveKey = async (header, token) => {
      if (header.alg === 'HS256' && secret !== undefined) return secret
      if (header.alg !== 'HS256' && fromKeySet !== undefined) return await fromKeySet(header, token)
      throw new errors.JOSEAlgNotAllowed('"alg" (Algorithm) Header Parameter value not allowed')
    }
  }

  async verify (token: string): Promise<VerifiedToken> {
    if (Buffer.byteLength(token) > MAX_TOKEN_BYTES) {
      throw invalidCredential('token_too_large', `The token is larger than ${MAX_TOKEN_BYTES} bytes.`)
    }
    try {
      const { payload, protectedHeader } = await jwtVerify(token, this.resolveKey, {
        algorithms: this.algorithms,
        audience: this.settings.audience,
        issuer: this.settings.issuer,
        clockTolerance: this.settings.clockToleranceSeconds,
        requiredClaims: ['exp']
      })
      // jose checks iat only together with maxTokenAge; the contract checks it whenever it is present.
      const now = Math.floor(Date.now() / 1000)
      if (typeof payload.iat === 'number' && payload.iat > now + this.settings.clockToleranceSeconds) {
        throw invalidCredential('invalid_token', 'The token was issued in the future (iat).')
      }
      checkRegisteredClaimTypes(payload)
      const role = claimAt(payload, this.settings.roleClaim)
      if (role !== undefined && typeof role !== 'string') {
        throw invalidCredential('invalid_token', `The ${this.settings.roleClaim} claim must be a string.`)
      }
      return { claims: payload, header: protectedHeader, role }
    } catch (error) {
      throw toRejection(error)
    }
  }
}

/**
 * RFC 7519 §4.1: iss, sub and jti are strings, aud a string or an array of strings. jose checks their types only when
 * it is asked to match them; a token whose claims have the wrong types is malformed, whether or not they are matched.
 */
function checkRegisteredClaimTypes (claims: JWTPayload): void {
  for (const name of ['iss', 'sub', 'jti'] as const) {
    if (claims[name] !== undefined && typeof claims[name] !== 'string') {
      throw invalidCredential('invalid_token', `The token's ${name} claim must be a string.`)
    }
  }
  const { aud } = claims
  if (aud !== undefined && typeof aud !== 'string' && !(Array.isArray(aud) && aud.every((item) => typeof item === 'string'))) {
    throw invalidCredential('invalid_token', 'The token\'s aud claim must be a string or an array of strings.')
  }
}

function claimRejection (error: InstanceType<typeof errors.JWTClaimValidationFailed>): AuthRejection {
  // `invalid`: the claim has the wrong type, whatever it says; `missing` and `check_failed`: it says the wrong thing.
  if (error.reason === 'invalid') return invalidCredential('invalid_token', `The token's ${error.claim} claim must be a number.`)
  switch (error.claim) {
    case 'nbf': return invalidCredential('token_not_yet_valid', 'The token is not valid yet (nbf is in the future).')
    case 'iat': return invalidCredential('invalid_token', 'The token was issued in the future (iat).')
    case 'aud': return invalidCredential('invalid_audience', 'The token is not meant for this audience (aud).')
    case 'iss': return invalidCredential('invalid_issuer', 'The token comes from an issuer this service does not trust (iss).')
    case 'exp': return invalidCredential('invalid_token', 'The token must carry a numeric exp claim.')
    default: return invalidCredential('invalid_token', `The token's ${error.claim} claim is not valid.`)
  }
}

function toRejection (error: unknown): AuthRejection {
  if (error instanceof AuthRejection) return error
  if (error instanceof JwksUnavailableError) return keysUnavailable(describe(error))
  if (error instanceof errors.JWTExpired) return invalidCredential('token_expired', 'The token has expired.')
  if (error instanceof errors.JWTClaimValidationFailed) return claimRejection(error)
  if (error instanceof errors.JWSSignatureVerificationFailed) return invalidCredential('invalid_token', 'The token signature does not verify.')
  if (error instanceof errors.JOSEAlgNotAllowed) return invalidCredential('invalid_token', 'The token is signed with an algorithm this service does not accept.')
  if (error instanceof errors.JWKSNoMatchingKey || error instanceof errors.JWKSMultipleMatchingKeys) {
    return invalidCredential('invalid_token', 'No signing key matches the token (kid).')
  }
  // Everything else jose can say about a token (and anything unforeseen) is about the token: it is not usable.
  return invalidCredential('invalid_token', 'The token is malformed.')
}
