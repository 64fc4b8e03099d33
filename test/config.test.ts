import t from 'tap'
import { ConfigError, embeddedRefusal, loadConfig, parsesAsPostgresUrl, type Config } from '../src/config.js'

const SECRET = 'config-test-secret-0123456789-abcdefghij'
const DATABASE_URL = 'postgres://authenticator@127.0.0.1:5432/postgres'

/** The ConfigError loadConfig throws for this environment; fails the test when it throws nothing or something else. */
function configError (env: Record<string, string | undefined>): ConfigError {
  try {
    loadConfig(env)
  } catch (error) {
    if (error instanceof ConfigError) return error
    throw error
  }
  throw new Error(`expected a ConfigError for ${JSON.stringify(Object.keys(env))}`)
}

t.test('defaults', async (t) => {
  const config = loadConfig({})
  t.same(config, {
    databaseUrl: undefined,
    host: '127.0.0.1',
    port: 3000,
    jwt: {
      secret: undefined,
      jwksUrl: undefined,
      audience: undefined,
      issuer: undefined,
      clockToleranceSeconds: 30,
      roleClaim: 'role'
    },
    livenessPublic: true,
    metricsPublic: false,
    grace: { graceSeconds: 60, graceFactor: 3 },
    db: { poolMax: 10, statementTimeoutMs: 5000, prepare: true },
    logLevel: 'info',
    logRequests: false,
    logFormat: undefined,
    dataDir: '.data',
    embeddedPgPort: 0,
    demo: { enabled: true, intervalSeconds: 5 },
    production: false,
    embeddedInProduction: false,
    events: { intervalMs: 1000, keepAliveMs: 15000, maxPerPrincipal: 20, maxPerAddress: 256, maxTotal: undefined, maxLifetimeSeconds: 3600 },
    authFailureLimitPerMinute: 20,
    corsOrigins: [],
    trustProxy: false,
    serviceApiKeys: []
  } satisfies Config)
})

t.test('variables it does not know are ignored', async (t) => {
  t.same(loadConfig({ PATH: '/usr/bin', HOME: '/root', PORT_NUMBER: 'abc' }), loadConfig({}))
})

t.test('conversions from text', async (t) => {
  const config = loadConfig({
    DATABASE_URL,
    HOST: '0.0.0.0',
    PORT: '8080',
    JWT_SECRET: SECRET,
    JWKS_URL: 'https://project.supabase.co/auth/v1/.well-known/jwks.json',
    JWT_AUDIENCE: 'authenticated',
    JWT_ISSUER: 'https://project.supabase.co/auth/v1',
    JWT_CLOCK_TOLERANCE_SECONDS: '0',
    JWT_ROLE_CLAIM: 'app_metadata.role',
    LIVENESS_PUBLIC: 'false',
    METRICS_PUBLIC: 'true',
    STALE_GRACE_SECONDS: '12.5',
    STALE_GRACE_FACTOR: '0',
    DB_POOL_MAX: '4',
    DB_STATEMENT_TIMEOUT_MS: '2000',
    DB_PREPARE: 'FALSE',
    LOG_LEVEL: 'debug',
    LOG_FORMAT: 'pretty',
    LOG_REQUESTS: 'true',
    DATA_DIR: '/var/lib/eva',
    EMBEDDED_PG_PORT: '54329',
    DEMO_SCHEDULER: 'False',
    DEMO_INTERVAL_SECONDS: '0.5',
    EMBEDDED_IN_PRODUCTION: 'true',
    NODE_ENV: 'production',
    AUTH_FAILURE_LIMIT_PER_MINUTE: '0',
    EVENTS_MAX_PER_PRINCIPAL: '5',
    EVENTS_MAX_PER_ADDRESS: '50',
    EVENTS_MAX_TOTAL: '400',
    EVENTS_MAX_LIFETIME_SECONDS: '600',
    CORS_ORIGINS: 'https://ops.example.com, http://Grafana.Example.com:3000,http://[::1]:8080',
    TRUST_PROXY: '10.0.0.0/8, 127.0.0.1,::1,loopback'
  })
  t.same(config, {
    databaseUrl: DATABASE_URL,
    host: '0.0.0.0',
    port: 8080,
    jwt: {
      secret: SECRET,
      jwksUrl: 'https://project.supabase.co/auth/v1/.well-known/jwks.json',
      audience: 'authenticated',
      issuer: 'https://project.supabase.co/auth/v1',
      clockToleranceSeconds: 0,
      roleClaim: 'app_metadata.role'
    },
    livenessPublic: false,
    metricsPublic: true,
    grace: { graceSeconds: 12.5, graceFactor: 0 },
    db: { poolMax: 4, statementTimeoutMs: 2000, prepare: false },
    logLevel: 'debug',
    logRequests: true,
    logFormat: 'pretty',
    dataDir: '/var/lib/eva',
    embeddedPgPort: 54329,
    demo: { enabled: false, intervalSeconds: 0.5 },
    production: true,
    embeddedInProduction: true,
    events: { intervalMs: 1000, keepAliveMs: 15000, maxPerPrincipal: 5, maxPerAddress: 50, maxTotal: 400, maxLifetimeSeconds: 600 },
    authFailureLimitPerMinute: 0,
    corsOrigins: ['https://ops.example.com', 'http://grafana.example.com:3000', 'http://[::1]:8080'],
    trustProxy: ['10.0.0.0/8', '127.0.0.1', '::1', 'loopback'],
    serviceApiKeys: []
  } satisfies Config)
  t.equal(typeof config.port, 'number')
  t.equal(typeof config.livenessPublic, 'boolean')
  t.equal(loadConfig({ PORT: ' 8080 ' }).port, 8080, 'surrounding blanks are trimmed')
  t.equal(loadConfig({ LIVENESS_PUBLIC: 'TRUE' }).livenessPublic, true, 'true/false in any case')
})

t.test('each bad value: one line that names the variable and what it expects', async (t) => {
  const cases: Array<[string, string, RegExp]> = [
    ['PORT', 'abc', /whole number from 0 to 65535/],
    ['PORT', '70000', /whole number from 0 to 65535/],
    ['PORT', '-1', /whole number from 0 to 65535/],
    ['PORT', '80.5', /whole number/],
    ['PORT', '1e3', /whole number/],
    ['PORT', '0x10', /whole number/],
    ['PORT', 'true', /whole number/],
    ['EMBEDDED_PG_PORT', '65536', /EMBEDDED_PG_PORT must be a whole number from 0 to 65535: the embedded PostgreSQL/],
    ['EMBEDDED_PG_PORT', 'x', /whole number/],
    ['LIVENESS_PUBLIC', 'yes', /true or false/],
    ['LIVENESS_PUBLIC', '1', /true or false/],
    ['METRICS_PUBLIC', 'on', /true or false/],
    ['DB_PREPARE', 'no', /true or false/],
    ['DATABASE_URL', 'mysql://x', /postgres:\/\/ or postgresql:\/\//],
    ['JWKS_URL', 'ftp://keys.example/jwks.json', /http\(s\) URL/],
    ['JWT_ROLE_CLAIM', 'a..b', /claim name or dotted path/],
    ['JWT_ROLE_CLAIM', '.role', /claim name or dotted path/],
    ['JWT_CLOCK_TOLERANCE_SECONDS', '301', /whole number from 0 to 300/],
    ['LOG_LEVEL', 'loud', /fatal, error, warn, info, debug, trace, silent/],
    ['LOG_FORMAT', 'text', /json or pretty/],
    ['STALE_GRACE_FACTOR', '-1', /number from 0 to 100/],
    ['STALE_GRACE_SECONDS', 'soon', /number from 0 to 86400/],
    ['DB_POOL_MAX', '0', /whole number from 1 to 100/],
    ['DB_STATEMENT_TIMEOUT_MS', '5s', /whole number from 100 to 600000/],
    ['DEMO_INTERVAL_SECONDS', '0', /number from 0.05 to 3600/],
    ['EMBEDDED_IN_PRODUCTION', 'yes', /true or false/],
    ['AUTH_FAILURE_LIMIT_PER_MINUTE', '-1', /whole number from 0 to 100000/],
    ['EVENTS_MAX_PER_PRINCIPAL', '0', /whole number from 1 to 1000000/],
    ['EVENTS_MAX_PER_ADDRESS', 'many', /whole number from 1 to 1000000/],
    ['EVENTS_MAX_TOTAL', '0', /whole number from 1 to 1000000/],
    ['EVENTS_MAX_TOTAL', '1e3', /whole number from 1 to 1000000/],
    ['EVENTS_MAX_LIFETIME_SECONDS', '0', /whole number from 1 to 86400/],
    ['AUTH_FAILURE_LIMIT_PER_MINUTE', 'off', /whole number from 0 to 100000/],
    ['CORS_ORIGINS', '*', /comma-separated list of origins/],
    ['CORS_ORIGINS', 'https://ops.example.com/', /scheme, host and port only/],
    ['CORS_ORIGINS', 'https://ops.example.com/app', /scheme, host and port only/],
    ['CORS_ORIGINS', 'ops.example.com', /comma-separated list of origins/],
    ['CORS_ORIGINS', 'https://a.example.com,,https://b.example.com', /comma-separated list of origins/],
    ['CORS_ORIGINS', 'https://*.example.com', /comma-separated list of origins/],
    ['CORS_ORIGINS', 'null', /comma-separated list of origins/],
    ['TRUST_PROXY', 'yes', /a hop count, or a comma-separated list of proxy addresses and CIDRs/],
    ['TRUST_PROXY', '10.0.0.0/33', /proxy addresses and CIDRs/],
    ['TRUST_PROXY', '127.0.0.1,,::1', /proxy addresses and CIDRs/],
    ['TRUST_PROXY', 'proxy.internal', /proxy addresses and CIDRs/],
    ['TRUST_PROXY', '1.5', /proxy addresses and CIDRs/],
    // @fastify/proxy-addr refuses a zero prefix; without this check the start failed with "invalid range on address".
    ['TRUST_PROXY', '0.0.0.0/0', /proxy addresses and CIDRs/],
    ['TRUST_PROXY', '::/0', /proxy addresses and CIDRs/],
    ['TRUST_PROXY', '10.0.0.1, ::/0', /proxy addresses and CIDRs/],
    ['TRUST_PROXY', '101', /proxy addresses and CIDRs/]
  ]
  for (const [name, value, expects] of cases) {
    const error = configError({ [name]: value })
    t.equal(error.name, 'ConfigError')
    t.ok(error.message.startsWith(`${name} must be `), `${name}=${value}: ${error.message}`)
    t.match(error.message, expects, `${name}=${value} says what it expects`)
    t.match(error.message, `(got "${value}")`, `${name}=${value} shows what it got`)
    t.notMatch(error.message, /[\r\n]/, `${name}=${value}: one line`)
  }
})

t.test('TRUST_PROXY takes Fastify\'s trustProxy meanings', async (t) => {
  t.equal(loadConfig({}).trustProxy, false, 'unset: no proxy is trusted, request.ip is the TCP peer')
  t.equal(loadConfig({ TRUST_PROXY: 'TRUE' }).trustProxy, true)
  t.equal(loadConfig({ TRUST_PROXY: 'false' }).trustProxy, false)
  t.equal(loadConfig({ TRUST_PROXY: '2' }).trustProxy, 2, 'a hop count')
  t.same(loadConfig({ TRUST_PROXY: ' 192.168.0.0/16 , fd00::/8,10.1.2.3 ' }).trustProxy, ['192.168.0.0/16', 'fd00::/8', '10.1.2.3'])
})

t.test('SERVICE_API_KEYS: secret keys, optionally named, kept as digests; a bad entry is named, never shown', async (t) => {
  const named = 'sb_secret_Ops0123456789abcdefXYZ'
  const unnamed = 'sb_secret_Other-0123456789_abcdef'
  const keys = loadConfig({ SERVICE_API_KEYS: ` ops:${named} , ${unnamed}` }).serviceApiKeys
  t.equal(keys.length, 2)
  t.equal(keys[0]?.id, 'ops')
  t.match(keys[0]?.fingerprint, /^sha256:[0-9a-f]{12}$/)
  t.equal(keys[1]?.id, keys[1]?.fingerprint, 'an unnamed key is named by its fingerprint')
  t.notMatch(JSON.stringify(keys), /sb_secret_/, 'the config holds no key, only digests')
  t.equal(loadConfig({ DATABASE_URL, SERVICE_API_KEYS: named }).serviceApiKeys.length, 1, 'keys alone are a way to authenticate')
  // Spaces around the colon belong to neither the name nor the key.
  const spaced = loadConfig({ SERVICE_API_KEYS: `ops: ${named}, ci :  ${unnamed}` }).serviceApiKeys
  t.same(spaced.map((key) => key.id), ['ops', 'ci'], '`ops: key` and `ci : key` name ops and ci')
  t.equal(spaced[0]?.sha256, keys[0]?.sha256, 'the key after `ops: ` is the key itself, without the space')
  const cases: Array<[string, RegExp]> = [
    ['sb_publishable_0123456789abcdefXYZ', /entry 1 is a publishable key/],
    ['sb_secret_short', /entry 1 is not a secret key/],
    [`${named},${named}`, /entry 2 repeats a key/],
    [`a:${named},a:${unnamed}`, /entry 2 repeats the name a/],
    [`bad name:${named}`, /entry 1: a name is/],
    [`${named},`, /entry 2 is not a secret key/],
    ['eyJhbGciOiJIUzI1NiJ9.e30.sig', /entry 1 is not a secret key/]
  ]
  for (const [value, expects] of cases) {
    const error = configError({ SERVICE_API_KEYS: value })
    t.ok(error.message.startsWith('SERVICE_API_KEYS must be '), error.message)
    t.match(error.message, expects)
    t.notMatch(error.message, /sb_secret_[A-Za-z0-9]|sb_publishable_0/, 'no key in the message')
  }
})

t.test('a short JWT_SECRET is refused without showing it', async (t) => {
  const secret = 'too-short-secret-xyz'
  const error = configError({ JWT_SECRET: secret })
  t.ok(error.message.startsWith('JWT_SECRET must be at least 32 characters'), error.message)
  t.notMatch(error.message, secret)
  t.notMatch(error.message, 'too-short')
  t.notMatch(error.message, /[\r\n]/)
})

t.test('a bad DATABASE_URL is shown without its password', async (t) => {
  const error = configError({ DATABASE_URL: 'mysql://admin:hunter2-password@db.example:3306/app', JWT_SECRET: SECRET })
  t.ok(error.message.startsWith('DATABASE_URL must be '), error.message)
  t.notMatch(error.message, 'hunter2')
  t.notMatch(error.message, 'admin:')
  t.match(error.message, 'db.example', 'the rest of the URL still helps')
  // Shapes a templating slip makes: quoted, no scheme, a scheme without its colon, a slash in the password.
  for (const url of ['"postgres://app:S3cretPW@db.example:5432/postgres"', 'app:S3cretPW@db.example/db', 'postgres//app:S3cretPW@db.example/db', 'mysql://app:S3c/retPW@db.example/db']) {
    const refused = configError({ DATABASE_URL: url, JWT_SECRET: SECRET })
    t.notMatch(refused.message, /S3c/, url)
    t.match(refused.message, '…@db.example', url)
  }
})

t.test('a value with a line break still gives one line', async (t) => {
  const error = configError({ LOG_LEVEL: 'info\nwarn' })
  t.ok(error.message.startsWith('LOG_LEVEL must be '))
  t.notMatch(error.message, /[\r\n]/)
})

t.test('DATABASE_URL needs a way to verify tokens', async (t) => {
  const error = configError({ DATABASE_URL })
  t.match(error.message, /^JWT_SECRET or JWKS_URL must be set/)
  t.notMatch(error.message, /[\r\n]/)
  t.equal(loadConfig({ DATABASE_URL, JWT_SECRET: SECRET }).jwt.secret, SECRET)
  t.equal(loadConfig({ DATABASE_URL, JWKS_URL: 'http://127.0.0.1:9999/jwks.json' }).jwt.jwksUrl, 'http://127.0.0.1:9999/jwks.json')
  t.equal(loadConfig({}).databaseUrl, undefined, 'the embedded default needs neither (it makes its own secret)')
})

t.test('empty strings count as unset', async (t) => {
  const config = loadConfig({
    PORT: '',
    HOST: '',
    LIVENESS_PUBLIC: '',
    JWT_ROLE_CLAIM: '  ',
    LOG_LEVEL: '',
    JWT_AUDIENCE: ''
  })
  t.equal(config.port, 3000)
  t.equal(config.host, '127.0.0.1')
  t.equal(config.livenessPublic, true)
  t.equal(config.jwt.roleClaim, 'role')
  t.equal(config.logLevel, 'info')
  t.equal(config.jwt.audience, undefined)
  const error = configError({ DATABASE_URL, JWT_SECRET: '', JWKS_URL: '' })
  t.match(error.message, /^JWT_SECRET or JWKS_URL must be set/, 'an empty secret is no secret')
})

t.test('the config is frozen, deeply', async (t) => {
  const config = loadConfig({ DATABASE_URL, JWT_SECRET: SECRET })
  t.ok(Object.isFrozen(config))
  for (const part of [config.jwt, config.grace, config.db, config.demo]) t.ok(Object.isFrozen(part))
  t.throws(() => { (config as { port: number }).port = 1 }, TypeError, 'ESM is strict: assigning throws')
  t.throws(() => { (config.jwt as { secret: string | undefined }).secret = 'x' }, TypeError)
  t.throws(() => { (config.grace as { graceSeconds: number }).graceSeconds = 0 }, TypeError)
  t.equal(config.port, 3000)
  t.equal(config.jwt.secret, SECRET)
  t.equal(config.grace.graceSeconds, 60)
  t.not(loadConfig({}), loadConfig({}), 'each call builds its own object')
})

t.test('DATABASE_URL set but blank is refused, not taken for unset (which would start the demo)', async (t) => {
  for (const blank of ['', '  ', '\t', ' \n ']) {
    const error = configError({ DATABASE_URL: blank, JWT_SECRET: SECRET })
    t.equal(error.message, 'DATABASE_URL is set but blank: set it to a postgres:// or postgresql:// URL, or unset it for the embedded database with demo data', JSON.stringify(blank))
  }
  t.equal(loadConfig({}).databaseUrl, undefined, 'unset is still the embedded default')
})

t.test('a DATABASE_URL that postgres.js cannot parse is refused at start, without its password', async (t) => {
  const cases: Array<[string, string]> = [
    ['postgres://[bad', 'postgres://[bad'],
    ['postgres://db.example:99999/app', 'postgres://db.example:99999/app'],
    ['postgresql://admin:p%zz@db.example/app', 'postgresql://…@db.example/app'],
    ['postgres://admin:pa/ss@[bad/app', 'postgres://…@[bad/app']
  ]
  for (const [url, got] of cases) {
    t.notOk(parsesAsPostgresUrl(url), url)
    const error = configError({ DATABASE_URL: url, JWT_SECRET: SECRET })
    t.equal(error.message, `DATABASE_URL must be a postgres:// or postgresql:// URL that parses (got "${got}")`)
  }
  for (const url of [DATABASE_URL, 'postgresql://u:p%40ss@db.example:6543/postgres?sslmode=require', 'postgres://u@h1,h2:5433/db']) {
    t.ok(parsesAsPostgresUrl(url), url)
    t.equal(loadConfig({ DATABASE_URL: url, JWT_SECRET: SECRET }).databaseUrl, url)
  }
})

t.test('the embedded database under NODE_ENV=production needs EMBEDDED_IN_PRODUCTION=true', async (t) => {
  const refusal = embeddedRefusal(loadConfig({ NODE_ENV: 'production' }))
  t.equal(refusal, 'DATABASE_URL is not set and NODE_ENV=production: set DATABASE_URL to the scheduler\'s database, ' +
    'or EMBEDDED_IN_PRODUCTION=true to run the embedded database with demo data')
  t.equal(embeddedRefusal(loadConfig({ NODE_ENV: 'production', EMBEDDED_IN_PRODUCTION: 'true' })), undefined, 'opted in')
  t.equal(embeddedRefusal(loadConfig({ NODE_ENV: 'production', DATABASE_URL, JWT_SECRET: SECRET })), undefined, 'a real database')
  t.equal(embeddedRefusal(loadConfig({})), undefined, 'outside production: the embedded default')
  t.equal(embeddedRefusal(loadConfig({ NODE_ENV: 'development' })), undefined)
  t.equal(loadConfig({ EMBEDDED_IN_PRODUCTION: '' }).embeddedInProduction, false, 'empty: unset, false')
})
