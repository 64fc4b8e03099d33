// The environment, read once through one TypeBox schema into a frozen Config. A bad value stops the start with one
// line that names the variable and says what it expects.
import { isIP } from 'node:net'
import { compile as compileProxyAddresses } from '@fastify/proxy-addr'
import { Type, type TSchema } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import { parseServiceApiKeys, type ConfiguredApiKey } from './auth/api-keys.js'
import type { JwtSettings } from './auth/jwt.js'
import type { DbSettings, SocketFactory } from './db/client.js'

const Bool = (fallback: boolean, what: string): TSchema =>
  Type.Boolean({ default: fallback, description: `true or false: ${what}` })
const Int = (fallback: number, minimum: number, maximum: number, what: string): TSchema =>
  Type.Integer({ default: fallback, minimum, maximum, description: `a whole number from ${minimum} to ${maximum}: ${what}` })
const Num = (fallback: number, minimum: number, maximum: number, what: string): TSchema =>
  Type.Number({ default: fallback, minimum, maximum, description: `a number from ${minimum} to ${maximum}: ${what}` })
const Text = (what: string, options: { minLength?: number, pattern?: string } = {}): TSchema =>
  Type.Optional(Type.String({ minLength: 1, ...options, description: what }))

/** An origin as browsers send it: scheme, host, optional port; no path, no trailing slash, no wildcard. */
const ORIGIN = 'https?://([A-Za-z0-9.-]+|\\[[0-9A-Fa-f:.]+\\])(:[0-9]{1,5})?'

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const
export const LOG_FORMATS = ['json', 'pretty'] as const

/** Every variable the service reads. Anything else in the environment is ignored. */
export const EnvSchema = Type.Object({
  DATABASE_URL: Text('a postgres:// or postgresql:// URL (unset: an embedded PostgreSQL server under DATA_DIR, with demo data)', { pattern: '^postgres(ql)?://' }),
  HOST: Type.String({ default: '127.0.0.1', minLength: 1, description: 'the address to listen on' }),
  PORT: Int(3000, 0, 65535, 'the port to listen on'),
  JWT_SECRET: Text('at least 32 characters: the HS256 secret (Supabase legacy JWT secret)', { minLength: 32 }),
  JWKS_URL: Text('an http(s) URL of a JSON Web Key Set (Supabase signing keys)', { pattern: '^https?://' }),
  SERVICE_API_KEYS: Text('a comma-separated list of secret API keys (sb_secret_…), each optionally named (name:sb_secret_…), that act as service_role'),
  JWT_AUDIENCE: Text('the required aud claim'),
  JWT_ISSUER: Text('the required iss claim'),
  JWT_CLOCK_TOLERANCE_SECONDS: Int(30, 0, 300, 'the clock skew allowed on exp, nbf and iat'),
  JWT_ROLE_CLAIM: Type.String({ default: 'role', pattern: '^[A-Za-z0-9_$-]+(\\.[A-Za-z0-9_$-]+)*$', description: 'a claim name or dotted path such as app_metadata.role' }),
  LIVENESS_PUBLIC: Bool(true, '/heartbeat/liveness answers without a token'),
  METRICS_PUBLIC: Bool(false, '/metrics answers without a token'),
  EVENTS_INTERVAL_MS: Int(1000, 50, 60000, 'how often /heartbeat/events reads the row while a client is connected (one read for all clients)'),
  EVENTS_KEEPALIVE_MS: Int(15000, 100, 50000, 'how often /heartbeat/events sends a keep-alive comment (below the 60 s idle socket timeout)'),
  EVENTS_MAX_PER_PRINCIPAL: Int(20, 1, 1000000, 'the most /heartbeat/events streams one principal (a token\'s sub, an API key) may hold open at once'),
  EVENTS_MAX_PER_ADDRESS: Int(256, 1, 1000000, 'the most /heartbeat/events streams one client address (IPv6: one /64) may hold open at once'),
  EVENTS_MAX_TOTAL: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000000, description: 'a whole number from 1 to 1000000: the most /heartbeat/events streams open at once (unset: half the open-file limit, at most 10000)' })),
  EVENTS_MAX_LIFETIME_SECONDS: Int(3600, 1, 86400, 'the longest a /heartbeat/events stream stays open (an API key\'s, or a token\'s whose exp is further off)'),
  STALE_GRACE_SECONDS: Num(60, 0, 86400, 'the least grace after next_poll_at before the verdict is stale'),
  STALE_GRACE_FACTOR: Num(3, 0, 100, 'the grace as a multiple of the announced poll interval'),
  DB_POOL_MAX: Int(10, 1, 100, 'the most database connections'),
  DB_STATEMENT_TIMEOUT_MS: Int(5000, 100, 600000, 'how long a database call may take before the answer is 503'),
  DB_PREPARE: Bool(true, 'use prepared statements (false behind a transaction pooler such as Supabase port 6543)'),
  LOG_LEVEL: Type.Union(LOG_LEVELS.map((level) => Type.Literal(level)), { default: 'info', description: `one of ${LOG_LEVELS.join(', ')}` }),
  LOG_REQUESTS: Bool(false, 'log every request (an incoming and a completed line); false: only answers of 400 and above, one line each'),
  LOG_FORMAT: Type.Optional(Type.Union(LOG_FORMATS.map((format) => Type.Literal(format)), { description: 'json or pretty (unset: pretty when standard output is a terminal, json otherwise)' })),
  DATA_DIR: Type.String({ default: '.data', minLength: 1, description: 'where the embedded server and the development secret live' }),
  EMBEDDED_PG_PORT: Int(0, 0, 65535, 'the embedded PostgreSQL server\'s loopback port (0: a free one, picked at each start)'),
  DEMO_SCHEDULER: Bool(true, 'run the demo scheduler (embedded mode only)'),
  DEMO_INTERVAL_SECONDS: Num(5, 0.05, 3600, 'the demo scheduler\'s base poll interval'),
  EMBEDDED_IN_PRODUCTION: Bool(false, 'start the embedded database (demo data) although NODE_ENV=production and DATABASE_URL is unset'),
  AUTH_FAILURE_LIMIT_PER_MINUTE: Int(20, 0, 100000, 'failed authentications (401) one client address may have in a minute before its authenticated requests get 429; 0: no limit'),
  TRUST_PROXY: Text('true, false, a hop count, or a comma-separated list of proxy addresses and CIDRs (or loopback, linklocal, uniquelocal) whose X-Forwarded-For is believed; unset: none'),
  CORS_ORIGINS: Text('a comma-separated list of origins such as https://ops.example.com (scheme, host and port only) that browsers may call the API from; unset: no CORS',
    { pattern: `^${ORIGIN}(\\s*,\\s*${ORIGIN})*$` })
})

export interface Config {
  /** Unset: the embedded default. */
  databaseUrl: string | undefined
  host: string
  port: number
  /** From the environment, except the JWKS timings (jwksTimeoutMs, …), which are not variables: defaults in src/auth/jwks.ts. */
  jwt: JwtSettings
  livenessPublic: boolean
  metricsPublic: boolean
  events: {
    intervalMs: number
    keepAliveMs: number
    maxPerPrincipal: number
    maxPerAddress: number
    /** Unset: derived from the open-file limit at start (src/events/stream-slots.ts). */
    maxTotal: number | undefined
    maxLifetimeSeconds: number
  }
  grace: { graceSeconds: number, graceFactor: number }
  db: DbSettings
  logLevel: typeof LOG_LEVELS[number]
  /** false: only 4xx and 5xx answers are logged, one line each (src/http/logging.ts). */
  logRequests: boolean
  /** Unset: decided by whether standard output is a terminal (src/http/logging.ts). */
  logFormat: typeof LOG_FORMATS[number] | undefined
  dataDir: string
  /** The embedded server's port; 0: a free one. */
  embeddedPgPort: number
  demo: { enabled: boolean, intervalSeconds: number }
  /** NODE_ENV=production (the image sets it): the embedded database needs embeddedInProduction. */
  production: boolean
  embeddedInProduction: boolean
  /** 0: failed authentication is not limited. */
  authFailureLimitPerMinute: number
  /** Empty: no CORS headers at all. */
  corsOrigins: readonly string[]
  /** Secret API keys (SERVICE_API_KEYS), hashed: never the keys themselves. */
  serviceApiKeys: readonly ConfiguredApiKey[]
  /** Fastify's trustProxy: which peers' X-Forwarded-For gives the client address (request.ip). */
  trustProxy: TrustProxy
}

/** As Fastify takes it: every peer (true), none (false), so many hops, or these addresses and CIDRs. */
export type TrustProxy = boolean | number | readonly string[]

const PROXY_NAMES = new Set(['loopback', 'linklocal', 'uniquelocal'])

function isProxyAddress (entry: string): boolean {
  if (PROXY_NAMES.has(entry)) return true
  const [address = '', prefix, ...rest] = entry.split('/')
  const family = isIP(address)
  if (family === 0 || rest.length > 0) return false
  return prefix === undefined || (/^\d{1,3}$/.test(prefix) && Number(prefix) <= (family === 4 ? 32 : 128))
}

/** TRUST_PROXY's text as Fastify's trustProxy; undefined when it is none of the forms. */
export function parseTrustProxy (text: string | undefined): TrustProxy | undefined {
  if (text === undefined) return false
  if (/^(true|false)$/i.test(text)) return /^true$/i.test(text)
  if (/^\d+$/.test(text)) return Number(text) <= 100 ? Number(text) : undefined
  const entries = text.split(',').map((entry) => entry.trim())
  return entries.every(isProxyAddress) && compiles(entries) ? entries : undefined
}

/** Fastify compiles the list with @fastify/proxy-addr at start; what it refuses (a /0 prefix) is refused here, by name. */
function compiles (entries: string[]): boolean {
  try {
    compileProxyAddresses(entries)
    return true
  } catch {
    return false
  }
}

/**
 * What buildApp needs: a database to talk to and at least one way to verify tokens; and whether its row is demo data
 * (the embedded database), which every answer made from it then says.
 */
export type AppConfig = Config & {
  databaseUrl: string
  demoData: boolean
  /** How the pool opens its connections: the embedded server's peer check (src/embedded/peer.ts); unset: plainly. */
  databaseSocket?: SocketFactory
}

export class ConfigError extends Error {
  override name = 'ConfigError'
}

type Env = Record<string, string | undefined>
type EnvKey = keyof typeof EnvSchema.properties

/**
 * Text to the schema's type, strictly: decimal numbers and true/false only. TypeBox's own Convert guesses
 * (`1e3` → 1, `0x10` → 16 or 0, `80.5` → 80 for an integer, `true` → 1), and a guess here is a silent misconfiguration.
 * A value that does not convert stays text, and the schema check then names the variable.
 */
function convert (key: EnvKey, text: string): unknown {
  const type: unknown = EnvSchema.properties[key].type
  if (type === 'integer' || type === 'number') return /^[+-]?\d+(\.\d+)?$/.test(text) ? Number(text) : text
  if (type === 'boolean') return /^true$/i.test(text) ? true : /^false$/i.test(text) ? false : text
  return text
}

/** A value as the error message may show it: never a secret, never a URL's user and password. */
function shown (key: string, text: string): string {
  if (key.includes('SECRET') || key.includes('KEYS')) return '…'
  // Only what follows the last @: a password may hold any character (a slash, a quote), so its end cannot be found.
  const at = text.lastIndexOf('@')
  return at === -1 ? text : `${/^"?[a-z][a-z0-9+.-]*:\/\//i.exec(text)?.[0] ?? ''}…@${text.slice(at + 1)}`
}

/**
 * What postgres.js does with a URL (src/index.js parseUrl): the first of several comma-separated hosts, then WHATWG
 * URL. Whatever throws there would throw at the first query; here it stops the start instead.
 */
export function parsesAsPostgresUrl (text: string): boolean {
  if (!/^postgres(ql)?:\/\//.test(text)) return false
  try {
    let host = text.slice(text.indexOf('://') + 3).split(/[?/]/)[0] ?? ''
    host = decodeURIComponent(host.slice(host.indexOf('@') + 1))
    const url = new URL(text.replace(host, host.split(',')[0] ?? ''))
    decodeURIComponent(url.username)
    decodeURIComponent(url.password)
    return true
  } catch {
    return false
  }
}

/**
 * Unset DATABASE_URL means the embedded database and its demo data. Under NODE_ENV=production that is refused unless
 * EMBEDDED_IN_PRODUCTION=true says so: a deploy that lost its DATABASE_URL must not serve a green verdict from a demo.
 */
export function embeddedRefusal (config: Pick<Config, 'databaseUrl' | 'production' | 'embeddedInProduction'>): string | undefined {
  if (config.databaseUrl !== undefined || !config.production || config.embeddedInProduction) return undefined
  return 'DATABASE_URL is not set and NODE_ENV=production: set DATABASE_URL to the scheduler\'s database, ' +
    'or EMBEDDED_IN_PRODUCTION=true to run the embedded database with demo data'
}

export function loadConfig (env: Env = process.env): Readonly<Config> {
  const keys = Object.keys(EnvSchema.properties) as EnvKey[]
  const raw: Record<string, string> = {}
  const converted: Record<string, unknown> = {}
  // Except DATABASE_URL: set but blank is a templating slip, and taking it as unset would start the demo.
  if (env.DATABASE_URL !== undefined && env.DATABASE_URL.trim() === '') {
    throw new ConfigError('DATABASE_URL is set but blank: set it to a postgres:// or postgresql:// URL, or unset it for the embedded database with demo data')
  }
  for (const key of keys) {
    const value = env[key]
    // An empty variable counts as unset, as in most shells' `VAR= cmd`.
    if (value !== undefined && value.trim() !== '') {
      raw[key] = value.trim()
      converted[key] = convert(key, value.trim())
    }
  }
  const input: unknown = Value.Default(EnvSchema, converted)
  const error = Value.Errors(EnvSchema, input).First()
  if (error !== undefined) {
    const key = error.path.split('/')[1] ?? ''
    const schema = EnvSchema.properties[key as EnvKey] as TSchema | undefined
    const text = raw[key]
    const given = text === undefined ? '' : ` (got ${JSON.stringify(shown(key, text))})`
    throw new ConfigError(`${key} must be ${String(schema?.description ?? error.message)}${given}`)
  }
  const v = input as Record<string, unknown>
  const str = (key: string): string | undefined => v[key] as string | undefined
  const databaseUrl = str('DATABASE_URL')
  if (databaseUrl !== undefined && !parsesAsPostgresUrl(databaseUrl)) {
    throw new ConfigError(`DATABASE_URL must be a postgres:// or postgresql:// URL that parses (got ${JSON.stringify(shown('DATABASE_URL', databaseUrl))})`)
  }
  const num = (key: string): number => v[key] as number
  const bool = (key: string): boolean => v[key] as boolean
  const config: Config = {
    databaseUrl,
    host: str('HOST') as string,
    port: num('PORT'),
    jwt: {
      secret: str('JWT_SECRET'),
      jwksUrl: str('JWKS_URL'),
      audience: str('JWT_AUDIENCE'),
      issuer: str('JWT_ISSUER'),
      clockToleranceSeconds: num('JWT_CLOCK_TOLERANCE_SECONDS'),
      roleClaim: str('JWT_ROLE_CLAIM') as string
    },
    livenessPublic: bool('LIVENESS_PUBLIC'),
    metricsPublic: bool('METRICS_PUBLIC'),
    events: {
      intervalMs: num('EVENTS_INTERVAL_MS'),
      keepAliveMs: num('EVENTS_KEEPALIVE_MS'),
      maxPerPrincipal: num('EVENTS_MAX_PER_PRINCIPAL'),
      maxPerAddress: num('EVENTS_MAX_PER_ADDRESS'),
      maxTotal: v.EVENTS_MAX_TOTAL as number | undefined,
      maxLifetimeSeconds: num('EVENTS_MAX_LIFETIME_SECONDS')
    },
    grace: { graceSeconds: num('STALE_GRACE_SECONDS'), graceFactor: num('STALE_GRACE_FACTOR') },
    db: { poolMax: num('DB_POOL_MAX'), statementTimeoutMs: num('DB_STATEMENT_TIMEOUT_MS'), prepare: bool('DB_PREPARE') },
    logLevel: v.LOG_LEVEL as Config['logLevel'],
    logRequests: bool('LOG_REQUESTS'),
    logFormat: v.LOG_FORMAT as Config['logFormat'],
    dataDir: str('DATA_DIR') as string,
    embeddedPgPort: num('EMBEDDED_PG_PORT'),
    demo: { enabled: bool('DEMO_SCHEDULER'), intervalSeconds: num('DEMO_INTERVAL_SECONDS') },
    production: env.NODE_ENV === 'production',
    embeddedInProduction: bool('EMBEDDED_IN_PRODUCTION'),
    authFailureLimitPerMinute: num('AUTH_FAILURE_LIMIT_PER_MINUTE'),
    // Browsers send the scheme and host in lower case; a list written otherwise must still match.
    corsOrigins: str('CORS_ORIGINS')?.split(',').map((origin) => origin.trim().toLowerCase()) ?? [],
    trustProxy: false,
    serviceApiKeys: []
  }
  const apiKeys = str('SERVICE_API_KEYS')
  if (apiKeys !== undefined) {
    const parsed = parseServiceApiKeys(apiKeys)
    if (typeof parsed === 'string') throw new ConfigError(`SERVICE_API_KEYS must be ${String(EnvSchema.properties.SERVICE_API_KEYS.description)}: ${parsed}`)
    config.serviceApiKeys = parsed
  }
  const trustProxy = parseTrustProxy(str('TRUST_PROXY'))
  if (trustProxy === undefined) {
    throw new ConfigError(`TRUST_PROXY must be ${String(EnvSchema.properties.TRUST_PROXY.description)} (got ${JSON.stringify(raw.TRUST_PROXY)})`)
  }
  config.trustProxy = trustProxy
  if (config.databaseUrl !== undefined && config.jwt.secret === undefined && config.jwt.jwksUrl === undefined && config.serviceApiKeys.length === 0) {
    throw new ConfigError('JWT_SECRET or JWKS_URL must be set when DATABASE_URL is set (or at least SERVICE_API_KEYS): without a key no caller can be authenticated')
  }
  return deepFreeze(config)
}

function deepFreeze<T extends object> (value: T): Readonly<T> {
  for (const inner of Object.values(value)) {
    if (typeof inner === 'object' && inner !== null) deepFreeze(inner as object)
  }
  return Object.freeze(value)
}
