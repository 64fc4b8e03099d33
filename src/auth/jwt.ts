// Verifies bearer tokens with jose. The accepted algorithms follow from the configured keys: HS256 only with
// JWT_SECRET, ES256/RS256 only from JWKS_URL, never `none`, never HS256 against a public key.
import { createRemoteJWKSet, errors, jwtVerify, type RemoteJWKSet, type JWTHeaderParameters, type JWTPayload, type FlattenedJWSInput, type CryptoKey } from 'jose'
import { ProblemError } from '../errors.js'

export const MAX_TOKEN_BYTES = 8 * 1024
const REALM = 'eva-heartbeat-api'

export interface JwtSettings {
  secret: string | undefined
  jwksUrl: string | undefined
  audience: string | undefined
  issuer: string | undefined
  clockToleranceSeconds: number
  roleClaim: string
  /** How long fetched JWKS keys are used before JWKS_URL is fetched again (default 600). */
  jwksCacheSeconds?: number
}

export interface VerifiedToken {
  claims: JWTPayload
  header: JWTHeaderParameters
  /** The role claim when it is a string; undefined when the token has none. */
  role: string | undefined
}

/** A 401 with the challenge RFC 6750 asks for; `description` is omitted when no token was sent at all. */
export function unauthorized (code: string, detail: string, withError = true): ProblemError {
  const challenge = withError
    ? `Bearer realm="${REALM}", error="invalid_token", error_description="${quoteSafe(detail)}"`
    : `Bearer realm="${REALM}"`
  return new ProblemError(401, code, 'Unauthorized', detail, { 'www-authenticate': challenge })
}

export function forbidden (detail: string): ProblemError {
  return new ProblemError(403, 'insufficient_scope', 'Forbidden', detail, {
    'www-authenticate': `Bearer realm="${REALM}", error="insufficient_scope", error_description="${quoteSafe(detail)}"`
  })
}

function quoteSafe (text: string): string {
  return text.replace(/[^\x20-\x21\x23-\x5B\x5D-\x7E]/g, '')
}

/** The token from an Authorization header, or undefined when there is none; a malformed header is a 401. */
export function bearerToken (header: string | undefined): string | undefined {
  if (header === undefined || header.trim() === '') return undefined
  const match = /^Bearer +([A-Za-z0-9\-_.~+/]+=*) *$/i.exec(header)
  if (match?.[1] === undefined) {
    throw unauthorized('invalid_token', 'The Authorization header must be "Bearer" followed by one token.')
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
    const jwksMaxAgeMs = (settings.jwksCacheSeconds ?? 600) * 1000
    const secret = settings.secret === undefined ? undefined : new TextEncoder().encode(settings.secret)
    const jwks = settings.jwksUrl === undefined
      ? undefined
      : createRemoteJWKSet(new URL(settings.jwksUrl), {
        timeoutDuration: 2000,
        cooldownDuration: Math.min(30_000, jwksMaxAgeMs),
        cacheMaxAge: jwksMaxAgeMs
      })
    this.keySet = jwks
    this.algorithms = [...(secret !== undefined ? ['HS256'] : []), ...(jwks !== undefined ? ['ES256', 'RS256'] : [])]
    this.resolveKey = async (header, token) => {
      if (header.alg === 'HS256' && secret !== undefined) return secret
      if (header.alg !== 'HS256' && jwks !== undefined) return await jwks(header, token)
      throw new errors.JOSEAlgNotAllowed(`"alg" (Algorithm) Header Parameter value not allowed`)
    }
  }

  async verify (token: string): Promise<VerifiedToken> {
    if (Buffer.byteLength(token) > MAX_TOKEN_BYTES) {
      throw unauthorized('token_too_large', `The token is larger than ${MAX_TOKEN_BYTES} bytes.`)
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
        throw unauthorized('invalid_token', 'The token was issued in the future (iat).')
      }
      const role = claimAt(payload, this.settings.roleClaim)
      if (role !== undefined && typeof role !== 'string') {
        throw unauthorized('invalid_token', `The ${this.settings.roleClaim} claim must be a string.`)
      }
      return { claims: payload, header: protectedHeader, role }
    } catch (error) {
      throw toProblem(error)
    }
  }
}

function toProblem (error: unknown): ProblemError {
  if (error instanceof ProblemError) return error
  if (error instanceof errors.JWTExpired) return unauthorized('token_expired', 'The token has expired.')
  if (error instanceof errors.JWTClaimValidationFailed) {
    switch (error.claim) {
      case 'nbf': return unauthorized('token_not_yet_valid', 'The token is not valid yet (nbf is in the future).')
      case 'iat': return unauthorized('invalid_token', 'The token was issued in the future (iat).')
      case 'aud': return unauthorized('invalid_audience', 'The token is not meant for this audience (aud).')
      case 'iss': return unauthorized('invalid_issuer', 'The token comes from an issuer this service does not trust (iss).')
      case 'exp': return unauthorized('invalid_token', 'The token must carry a numeric exp claim.')
      default: return unauthorized('invalid_token', `The token's ${error.claim} claim is not valid.`)
    }
  }
  if (error instanceof errors.JWKSTimeout || error instanceof errors.JWKSInvalid ||
      (error instanceof TypeError) || (error instanceof Error && error.name === 'AbortError')) {
    return new ProblemError(503, 'jwks_unavailable', 'Signing keys unavailable',
      'The signing keys (JWKS_URL) could not be fetched, so the token cannot be checked now; try again shortly.', { 'retry-after': '5' })
  }
  if (error instanceof errors.JWSSignatureVerificationFailed) return unauthorized('invalid_token', 'The token signature does not verify.')
  if (error instanceof errors.JOSEAlgNotAllowed) return unauthorized('invalid_token', 'The token is signed with an algorithm this service does not accept.')
  if (error instanceof errors.JWKSNoMatchingKey || error instanceof errors.JWKSMultipleMatchingKeys) {
    return unauthorized('invalid_token', 'No signing key matches the token (kid).')
  }
  if (error instanceof errors.JOSEError) return unauthorized('invalid_token', 'The token is malformed.')
  return unauthorized('invalid_token', 'The token is malformed.')
}
