// How long an event stream's credential holds. A JWKS token is checked again while its stream is open, so a removed
// key ends the stream; keys that cannot be fetched end nothing (the token may be good).
import type { Principal } from '../auth/principal.js'
import { AuthRejection } from '../auth/rejection.js'
import type { StreamEnd } from '../domain/events.js'
import type { StreamLease } from './hub.js'

/** Why a recheck's refusal ends the stream; undefined for anything that does not say the credential is bad. */
function streamEndOf (error: unknown): StreamEnd | undefined {
  if (!(error instanceof AuthRejection) || error.kind !== 'invalid_credential') return undefined
  return error.code === 'token_expired'
    ? { reason: 'token_expired', detail: error.detail }
    : { reason: 'key_removed', detail: `${error.detail} The signing key was removed from the JWKS; reconnect with a fresh token.` }
}

/** The lease of a stream opened by `principal`; `recheckCredential` throws once the credential no longer holds. */
export function streamLease (principal: Principal, recheckCredential?: () => Promise<void>): StreamLease {
  const recheck = recheckCredential === undefined
    ? undefined
    : async (): Promise<StreamEnd | undefined> => {
      try {
        await recheckCredential()
        return undefined
      } catch (error) {
        return streamEndOf(error)
      }
    }
  return { expiresAt: principal.expiresAt, recheck }
}
