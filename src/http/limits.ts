// What one client may send and how long it may take, and the answers Node's HTTP parser gives before any route runs
// (headers too large, a request that does not arrive in time, bytes that are not HTTP): problem+json like every
// other error, instead of Fastify's default JSON.
import { STATUS_CODES } from 'node:http'
import type { Socket } from 'node:net'
import { PROBLEM_TYPE_BASE, type Problem } from './problems.js'

export interface HttpLimits {
  /** Request header section, all headers together (Node's own default, made explicit): an 8 KiB token fits. */
  maxHeaderBytes: number
  /** The whole request (headers and body) must arrive within this; an event stream's request arrives at once, so it is never cut by it. */
  requestTimeoutMs: number
  /** A socket with nothing sent either way for this long is closed (event streams send a keep-alive comment well before). */
  connectionTimeoutMs: number
  /** An idle keep-alive connection is closed after this: longer than the usual 60 s of proxies and load balancers, so they close first. */
  keepAliveTimeoutMs: number
  /** How often Node looks for requests past requestTimeout (its default, 30 s). */
  timeoutCheckIntervalMs: number
  /** The window in which failed authentications are counted (AUTH_FAILURE_LIMIT_PER_MINUTE per window). */
  authFailureWindowMs: number
}

export const HTTP_LIMITS: Readonly<HttpLimits> = Object.freeze({
  maxHeaderBytes: 16 * 1024,
  requestTimeoutMs: 30_000,
  connectionTimeoutMs: 60_000,
  keepAliveTimeoutMs: 72_000,
  timeoutCheckIntervalMs: 30_000,
  authFailureWindowMs: 60_000
})

const PARSER_PROBLEMS: Record<string, [number, string, string, string]> = {
  HPE_HEADER_OVERFLOW: [431, 'headers_too_large', 'Request headers too large', `The request's headers are larger than ${HTTP_LIMITS.maxHeaderBytes / 1024} KiB together.`],
  ERR_HTTP_REQUEST_TIMEOUT: [408, 'request_timeout', 'Request timeout', 'The request did not arrive in time.']
}
const NOT_HTTP: [number, string, string, string] = [400, 'bad_request', 'Bad request', 'The request is not valid HTTP/1.1.']

/** Fastify's clientErrorHandler: the connection is answered once and closed, as Node itself does. */
export function clientErrorHandler (error: Error & { code?: string }, socket: Socket): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return
  const [status, code, title, detail] = PARSER_PROBLEMS[error.code ?? ''] ?? NOT_HTTP
  const problem: Problem = { type: PROBLEM_TYPE_BASE + code, title, status, detail, code }
  const body = JSON.stringify(problem)
  if (socket.writable) {
    socket.write([
      `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? title}`,
      'Content-Type: application/problem+json',
      `Content-Length: ${Buffer.byteLength(body)}`,
      'X-Content-Type-Options: nosniff',
      'Cache-Control: no-store',
      'Connection: close',
      '',
      body
    ].join('\r\n'))
  }
  socket.destroy()
}
