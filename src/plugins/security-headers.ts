// Response headers for a JSON API (helmet's, worked out once) and, only when CORS_ORIGINS lists origins, CORS
// (@fastify/cors). /docs is the one HTML page: the swagger plugin gives it a policy of its own that lets the UI load
// (plugins/swagger.ts); a route that sets one of these headers itself overrides it.
import cors from '@fastify/cors'
import fp from 'fastify-plugin'
import helmet, { type HelmetOptions } from 'helmet'

export interface SecurityHeadersOptions {
  /** Empty: no CORS headers on any answer, and OPTIONS is not answered. */
  corsOrigins: readonly string[]
}

/** What a browser page on an allowed origin may send and read. */
export const CORS = {
  methods: ['GET', 'HEAD', 'PATCH'],
  // apikey: Supabase clients send their publishable key in it beside the user's bearer token.
  allowedHeaders: ['Authorization', 'apikey', 'Content-Type', 'If-Match', 'If-None-Match', 'Last-Event-ID'],
  exposedHeaders: ['ETag', 'Retry-After'],
  maxAgeSeconds: 600
}

export const HELMET_OPTIONS: Readonly<HelmetOptions> = {
  // The answers are JSON, problem+json, health+json, Prometheus text and an event stream: nothing in them may load
  // anything or be framed. (helmet's defaults are written for HTML pages.)
  contentSecurityPolicy: { useDefaults: false, directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] } },
  xFrameOptions: { action: 'deny' },
  // Off: the service speaks plain HTTP (on loopback by default); HSTS belongs to whatever terminates TLS in front.
  strictTransportSecurity: false
  // Kept from helmet's defaults: X-Content-Type-Options nosniff, Cross-Origin-Resource-Policy same-origin,
  // Cross-Origin-Opener-Policy same-origin, Referrer-Policy no-referrer, X-DNS-Prefetch-Control off,
  // X-Permitted-Cross-Domain-Policies none, X-Download-Options noopen, Origin-Agent-Cluster, X-XSS-Protection 0,
  // and no X-Powered-By (which Fastify never sends).
}

/**
 * The headers helmet sets with these options, lower-cased. None depends on the request, so they are taken once
 * from helmet itself instead of running it (and, through @fastify/helmet, building it again) on every request.
 */
export function helmetHeaders (options: Readonly<HelmetOptions> = HELMET_OPTIONS): Readonly<Record<string, string>> {
  const headers: Record<string, string> = {}
  const response = {
    setHeader: (name: string, value: string | number | readonly string[]) => { headers[name.toLowerCase()] = String(value) },
    removeHeader: () => {}
  }
  helmet(options)({} as never, response as never, () => {})
  return Object.freeze(headers)
}

export default fp<SecurityHeadersOptions>(async (app, { corsOrigins }) => {
  const headers = helmetHeaders()
  app.addHook('onRequest', (_request, reply, done) => {
    void reply.headers(headers)
    done()
  })
  if (corsOrigins.length === 0) return
  await app.register(cors, {
    // Exact matches only: no patterns, no reflection of whatever Origin is sent.
    origin: [...corsOrigins],
    methods: CORS.methods,
    allowedHeaders: CORS.allowedHeaders,
    exposedHeaders: CORS.exposedHeaders,
    // Bearer tokens, never cookies: the browser never sends credentials on its own.
    credentials: false,
    maxAge: CORS.maxAgeSeconds,
    // An OPTIONS without the preflight headers gets an empty 204 rather than a text/plain 400.
    strictPreflight: false
  })
}, { name: 'security-headers' })
