// Why a credential was not accepted, as auth/ says it: the HTTP layer (src/http/problems.ts, authProblem) turns each
// kind into its status and challenge, so nothing here knows of HTTP.

/**
 * - `missing_credential`: nothing was sent (not an attempt: never counted against the address);
 * - `invalid_credential`: what was sent does not verify or is malformed;
 * - `forbidden`: a genuine credential whose role may not do this;
 * - `keys_unavailable`: the signing keys cannot be had, so the token cannot be checked now (it may be good).
 */
export type AuthRejectionKind = 'missing_credential' | 'invalid_credential' | 'forbidden' | 'keys_unavailable'

/** The stable codes an invalid credential is refused with. */
export type InvalidCredentialCode =
  | 'invalid_token' | 'token_too_large' | 'token_expired' | 'token_not_yet_valid' | 'invalid_audience' | 'invalid_issuer'
  | 'api_keys_not_configured' | 'invalid_api_key'

export type AuthRejectionCode = InvalidCredentialCode | 'missing_token' | 'insufficient_scope' | 'jwks_unavailable'

export class AuthRejection extends Error {
  override name = 'AuthRejection'
  constructor (
    readonly kind: AuthRejectionKind,
    readonly code: AuthRejectionCode,
    /** One sentence for the caller; never the credential. */
    readonly detail: string,
    /** For the operator's log only (why the keys are unavailable), never the answer. */
    readonly reason?: string
  ) {
    super(detail)
  }
}

const MISSING = 'This endpoint needs a bearer token (Authorization: Bearer <JWT>) or a secret API key (apikey: sb_secret_…).'

export const missingCredential = (): AuthRejection => new AuthRejection('missing_credential', 'missing_token', MISSING)

export const invalidCredential = (code: InvalidCredentialCode, detail: string): AuthRejection =>
  new AuthRejection('invalid_credential', code, detail)

export const forbidden = (detail: string): AuthRejection => new AuthRejection('forbidden', 'insufficient_scope', detail)

export const keysUnavailable = (reason: string): AuthRejection =>
  new AuthRejection('keys_unavailable', 'jwks_unavailable',
    'The signing keys (JWKS_URL) could not be fetched or used, so the token cannot be checked now; try again shortly.', reason)
