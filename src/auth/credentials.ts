// Which credential a request carries: a JWT, a secret API key, a publishable key, or nothing (Supabase's `apikey`
// header and Bearer conventions). Ambiguity is refused (two apikey headers, a secret key beside another Bearer):
// a proxy in front could read it one way and we another.
import { API_KEY_PREFIX, PUBLISHABLE_KEY_PREFIX, SECRET_KEY_PREFIX } from './api-keys.js'
import { bearerToken, singleAuthorization } from './jwt.js'
import { invalidCredential } from './rejection.js'

export type Credential =
  | { kind: 'jwt', token: string }
  /** Any `sb_` key but a publishable one: matched against SERVICE_API_KEYS (a wrong prefix simply never matches). */
  | { kind: 'api_key', key: string }
  /** A publishable key grants what role anon may do. */
  | { kind: 'publishable' }
  | { kind: 'none' }

/** The one `apikey` header, its surrounding blanks dropped as HTTP drops them; undefined when absent or empty. */
function singleApiKey (rawHeaders: readonly string[]): string | undefined {
  let found: string | undefined
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    if (rawHeaders[i]?.toLowerCase() !== 'apikey') continue
    if (found !== undefined) throw invalidCredential('invalid_token', 'Send one apikey header, not several.')
    found = rawHeaders[i + 1] ?? ''
  }
  const value = found?.replace(/^[ \t]+|[ \t]+$/g, '')
  return value === '' ? undefined : value
}

const classify = (value: string): Credential => {
  if (value.startsWith(PUBLISHABLE_KEY_PREFIX)) return { kind: 'publishable' }
  if (value.startsWith(API_KEY_PREFIX)) return { kind: 'api_key', key: value }
  return { kind: 'jwt', token: value }
}

/** The request's credential; a malformed or ambiguous one is refused (an invalid_credential thrown). */
export function readCredential (rawHeaders: readonly string[]): Credential {
  const bearer = bearerToken(singleAuthorization(rawHeaders))
  const apikey = singleApiKey(rawHeaders)
  if (apikey?.startsWith(SECRET_KEY_PREFIX) === true) {
    if (bearer !== undefined && bearer !== apikey) {
      throw invalidCredential('invalid_token', 'The apikey header and the Authorization header carry different credentials; send one.')
    }
    return { kind: 'api_key', key: apikey }
  }
  if (bearer !== undefined) return classify(bearer)
  // An apikey that is not a secret key names the client application (Supabase's publishable or legacy anon key).
  if (apikey?.startsWith(PUBLISHABLE_KEY_PREFIX) === true) return { kind: 'publishable' }
  if (apikey?.startsWith(API_KEY_PREFIX) === true) return { kind: 'api_key', key: apikey }
  return { kind: 'none' }
}
