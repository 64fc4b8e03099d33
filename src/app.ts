// The composition root: buildApp(config) owns every Fastify option, so tests run exactly what production runs.
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import Fastify, { type FastifyInstance } from 'fastify'
import { JWKS_DEFAULTS, streamRecheckMs } from './auth/jwks.js'
import type { AppConfig, TrustProxy } from './config.js'
import { enforceDeclaredAccess } from './http/access.js'
import { clientErrorHandler, HTTP_LIMITS, type HttpLimits } from './http/limits.js'
import { requestLogController, requestSerializer } from './http/logging.js'
import authLimitPlugin from './plugins/auth-limit.js'
import authPlugin from './plugins/auth.js'
import closingPlugin from './plugins/closing.js'
import dbPlugin from './plugins/db.js'
import errorsPlugin from './plugins/errors.js'
import eventsPlugin from './plugins/events.js'
import metricsPlugin from './plugins/metrics.js'
import securityHeadersPlugin from './plugins/security-headers.js'
import swaggerPlugin from './plugins/swagger.js'
import adminRoutes from './routes/admin.js'
import healthRoutes from './routes/health.js'
import eventsRoutes from './routes/events.js'
import heartbeatRoutes from './routes/heartbeat.js'
import metricsRoutes from './routes/metrics.js'
import statusRoutes from './routes/status.js'
import { SHARED_SCHEMAS } from './http/schemas.js'
import { validatorsWithExactBodies } from './http/validation.js'

export const BODY_LIMIT_BYTES = 16 * 1024
/** How long an event-stream client waits before reconnecting (the stream's `retry:` field). */
export const EVENTS_RETRY_MS = 3000

export interface BuildAppOptions {
  /** Where log lines go instead of stdout: a test reading the audit lines, or the readable format (src/http/logging.ts). */
  logStream?: { write: (line: string) => void }
  /** Shorter timeouts and failure window for tests (the defaults are HTTP_LIMITS). */
  limits?: Partial<HttpLimits>
}

/**
 * Fastify (5.12.8 on) refuses a numeric trustProxy: a hop count cannot check who the immediate peer is. The issue
 * asks for one, so a count here is our own rule, as Express's: the last N hops are believed, whoever connects, which
 * is why the start logs hopCountWarning.
 */
function trustProxyOption (trust: TrustProxy): boolean | string[] | ((address: string, hop: number) => boolean) {
  if (typeof trust === 'number') return (_address, hop) => hop < trust
  return typeof trust === 'boolean' ? trust : [...trust]
}

export const hopCountWarning = (trust: number | true): string =>
  `TRUST_PROXY=${String(trust)} trusts X-Forwarded-For from any peer: list the proxies' addresses unless only the proxy can reach this service`

export async function buildApp (config: AppConfig, options: BuildAppOptions = {}): Promise<FastifyInstance> {
  const limits = { ...HTTP_LIMITS, ...options.limits }
  const app = Fastify({
    logger: {
      level: config.logLevel,
      redact: { paths: ['req.headers.authorization', 'req.headers.apikey', 'req.headers.cookie'], censor: '[redacted]' },
      serializers: { req: requestSerializer },
      ...(options.logStream !== undefined ? { stream: options.logStream } : {})
    },
    logController: requestLogController(config.logRequests),
    // request.ip (the failed-authentication limit's key, the audit line's ip) is the forwarded client address only
    // through the proxies TRUST_PROXY names.
    trustProxy: trustProxyOption(config.trustProxy),
    bodyLimit: BODY_LIMIT_BYTES,
    requestTimeout: limits.requestTimeoutMs,
    connectionTimeout: limits.connectionTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    http: { maxHeaderSize: limits.maxHeaderBytes, connectionsCheckingInterval: limits.timeoutCheckIntervalMs },
    clientErrorHandler,
    // plugins/closing.ts answers requests that arrive while closing, as problem+json with Retry-After.
    return503OnClosing: false,
    ajv: {
      customOptions: {
        // An unknown PATCH field must be refused with its name, not silently dropped.
        removeAdditional: false,
        coerceTypes: 'array',
        useDefaults: true,
        allErrors: false,
        // Named OpenAPI examples on request bodies; @fastify/swagger moves them to the media type.
        keywords: ['x-examples']
      }
    },
    // The options above, except that request bodies are never coerced (see validation.ts).
    schemaController: { compilersFactory: { buildValidator: validatorsWithExactBodies() } }
  }).withTypeProvider<TypeBoxTypeProvider>()

  // 0 hops believes no X-Forwarded-For at all: nothing to warn about.
  if (config.trustProxy === true || (typeof config.trustProxy === 'number' && config.trustProxy > 0)) app.log.warn(hopCountWarning(config.trustProxy))

  for (const schema of SHARED_SCHEMAS) app.addSchema(schema)
  // First of the onRoute hooks, so that it sees each route's own gate, not one a plugin adds.
  enforceDeclaredAccess(app)

  await app.register(errorsPlugin)
  // Security headers before the closing plugin: its onRequest hook answers 503 during shutdown, and hooks run in the
  // order registered, so that 503 carries the headers too. Neither has a preClose of its own to order.
  await app.register(securityHeadersPlugin, { corsOrigins: config.corsOrigins })
  await app.register(closingPlugin)
  await app.register(metricsPlugin, { demoData: config.demoData })
  await app.register(dbPlugin, { url: config.databaseUrl, settings: config.db, socket: config.databaseSocket })
  await app.register(authLimitPlugin, { limit: config.authFailureLimitPerMinute, windowMs: limits.authFailureWindowMs })
  await app.register(authPlugin, { jwt: config.jwt, apiKeys: config.serviceApiKeys })
  await app.register(swaggerPlugin)
  await app.register(eventsPlugin, {
    grace: config.grace,
    ...config.events,
    demoData: config.demoData,
    recheckMs: streamRecheckMs(config.jwt.jwksCacheMaxAgeMs ?? JWKS_DEFAULTS.cacheMaxAgeMs)
  })

  // demoData: every verdict taken from the embedded database's row says so (src/server.ts decides).
  await app.register(heartbeatRoutes, { grace: config.grace, livenessPublic: config.livenessPublic, demoData: config.demoData })
  await app.register(adminRoutes, { grace: config.grace, demoData: config.demoData })
  await app.register(healthRoutes, { statementTimeoutMs: config.db.statementTimeoutMs })
  await app.register(metricsRoutes, { grace: config.grace, metricsPublic: config.metricsPublic })
  await app.register(eventsRoutes, { retryMs: EVENTS_RETRY_MS })
  await app.register(statusRoutes, { grace: config.grace, livenessPublic: config.livenessPublic, demoData: config.demoData })
  return app
}
