// Who a request acts as, once its credential is verified: the role and claims the database sees, and the names logs
// and stream caps use. Built here from a verified token or a configured API key; never holds the credential itself.
import type { JWTHeaderParameters, JWTPayload } from 'jose'
import type { DbIdentity } from '../db/heartbeat.js'
import type { ApiRole } from '../domain/policies.js'
import type { ConfiguredApiKey } from './api-keys.js'

export interface Principal extends DbIdentity {
  role: ApiRole
  /** Who, for logs: `sub`, else the role with the key's `jti`/`kid`; `apikey:<name or fingerprint>`. Never the credential. */
  subject: string
  /** When the credential stops being valid, in ms since the epoch (exp plus the clock tolerance); undefined: never. */
  expiresAt?: number
  /**
   * Whom open event streams count against (EVENTS_MAX_PER_PRINCIPAL): `sub:<sub>`, `apikey:<name>`, or for a token
   * without `sub` its role (`role:<role>`): every such token of a role is one principal, since a fresh jti costs nothing.
   */
  owner: string
}

/**
 * Anonymous callers of public routes (liveness, and metrics when public) are served by the service reading as
 * `authenticated`, the least role a policy lets read; what such routes answer is limited by their schemas.
 */
export const SERVICE_READER: Principal = Object.freeze({
  role: 'authenticated',
  claims: Object.freeze({ role: 'authenticated', sub: 'eva-heartbeat-api' }),
  subject: 'eva-heartbeat-api',
  owner: 'sub:eva-heartbeat-api'
})

/** The principal of a verified token whose role may act; `clockToleranceSeconds` extends its expiry as jose does. */
export function tokenPrincipal (claims: JWTPayload, header: JWTHeaderParameters, role: ApiRole, clockToleranceSeconds: number): Principal {
  const sub = typeof claims.sub === 'string' && claims.sub !== '' ? claims.sub : undefined
  const subject = sub ?? [role, claims.jti ?? header.kid].filter((part) => part !== undefined).join(':')
  const expiresAt = typeof claims.exp === 'number' ? (claims.exp + clockToleranceSeconds) * 1000 : undefined
  return { role, claims, subject, expiresAt, owner: sub !== undefined ? `sub:${sub}` : `role:${role}` }
}

/** A secret API key acts as service_role; the database sees claims naming the key (never the key itself). */
export function apiKeyPrincipal (key: ConfiguredApiKey): Principal {
  return {
    role: 'service_role',
    claims: { role: 'service_role', api_key: { id: key.id, fingerprint: key.fingerprint } },
    subject: `apikey:${key.id}`,
    owner: `apikey:${key.id}`
  }
}
