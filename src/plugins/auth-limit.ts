// Failed authentication, counted per client address with @fastify/rate-limit (its in-memory store, its IPv6 /64
// grouping). The address is request.ip: the TCP peer, or behind proxies named in TRUST_PROXY the client address they
// forward. After AUTH_FAILURE_LIMIT_PER_MINUTE failures within the window, every route that authenticates answers
// that address 429 until the window ends for any credential that needs a signature check — a new good token too: no
// cryptography is spent on a flood. A token verified before (in the token cache) is served all the same: it costs no
// check, and its holder must not be locked out by others' failures. Routes that do not authenticate (public liveness,
// /livez, /docs, and /readyz without a credential) never look at the count, so a monitor polling them is never limited.
import rateLimit from '@fastify/rate-limit'
import type { FastifyRequest, RouteOptions } from 'fastify'
import fp from 'fastify-plugin'
import { ProblemError } from '../errors.js'
import { problem } from '../schemas.js'

declare module 'fastify' {
  interface FastifyInstance {
    authFailures: AuthFailures
  }
}

export interface AuthFailures {
  /** Throws the 429 when this request's address has used up its failures in the current window. */
  refuseIfLimited: (request: FastifyRequest) => Promise<void>
  /** Counts one failed authentication against this request's address. */
  count: (request: FastifyRequest) => Promise<void>
}

export interface AuthLimitOptions {
  /** Failures allowed per window; 0 turns the limit off. */
  limit: number
  windowMs: number
}

/** Distinct addresses remembered at once (least recently seen forgotten first). */
const ADDRESSES_KEPT = 10_000

export const tooManyRequests = (retryAfterSeconds: number): ProblemError =>
  new ProblemError(429, 'too_many_requests', 'Too many requests',
    `Too many failed authentications from this address; try again in ${retryAfterSeconds} s.`,
    { 'retry-after': String(retryAfterSeconds) })

const OFF: AuthFailures = Object.freeze({ refuseIfLimited: async () => {}, count: async () => {} })

export default fp<AuthLimitOptions>(async (app, { limit, windowMs }) => {
  if (limit === 0) {
    app.decorate('authFailures', OFF)
    return
  }
  // global: false — the plugin itself limits no route; only the two calls below touch the count.
  await app.register(rateLimit, { global: false, max: limit, timeWindow: windowMs, cache: ADDRESSES_KEPT })
  const failures = app.createRateLimit()

  app.decorate('authFailures', {
    refuseIfLimited: async (request: FastifyRequest) => {
      const state = await failures(request, { increment: false })
      if (!state.isAllowed && state.remaining === 0) throw tooManyRequests(Math.max(1, state.ttlInSeconds))
    },
    count: async (request: FastifyRequest) => { await failures(request) }
  })

  // Every route that asks for a bearer token can answer 429: its schema (and so the OpenAPI document) says so.
  app.addHook('onRoute', (route: RouteOptions) => {
    const schema = route.schema as { security?: unknown[], response?: Record<string, unknown> } | undefined
    if (schema?.security === undefined || schema.security.length === 0 || schema.response === undefined) return
    schema.response[429] ??= problem('Too many failed authentications from this client address (AUTH_FAILURE_LIMIT_PER_MINUTE): credentials that need a signature check are refused until the minute ends (a token already verified is still served)', 429)
  })
}, { name: 'auth-limit' })
