// Failed authentication counted per client address (auth/failure-table.ts): past the limit, a route that needs a
// signature check answers 429 to that address, so no cryptography is spent on a flood. A token already in the cache
// still works (its holder is not locked out by others), and public routes never look at the count.
import type { FastifyRequest, RouteOptions } from 'fastify'
import fp from 'fastify-plugin'
import { bucketsOf, FailureTable } from '../auth/failure-table.js'
import { ProblemError } from '../http/problems.js'
import { problem } from '../http/schemas.js'

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

/** Buckets (IPv4 addresses, IPv6 /64s and /48s) counted at once; see FailureTable for which are given up first. */
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
  const table = new FailureTable({ capacity: ADDRESSES_KEPT, windowMs, overflowThreshold: limit })

  app.decorate('authFailures', {
    refuseIfLimited: async (request: FastifyRequest) => {
      const ms = table.limitedFor(bucketsOf(request.ip, limit), Date.now())
      if (ms > 0) throw tooManyRequests(Math.max(1, Math.ceil(ms / 1000)))
    },
    count: async (request: FastifyRequest) => { table.fail(bucketsOf(request.ip, limit), Date.now()) }
  })

  // Every route that asks for a bearer token can answer 429: its schema (and so the OpenAPI document) says so.
  app.addHook('onRoute', (route: RouteOptions) => {
    const schema = route.schema as { security?: unknown[], response?: Record<string, unknown> } | undefined
    if (schema?.security === undefined || schema.security.length === 0 || schema.response === undefined) return
    schema.response[429] ??= problem('Too many failed authentications from this client address (AUTH_FAILURE_LIMIT_PER_MINUTE): credentials that need a signature check are refused until the minute ends (a token already verified is still served)', 429)
  })
}, { name: 'auth-limit' })
