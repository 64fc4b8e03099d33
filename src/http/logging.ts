// How log lines look: JSON lines for machines (the default wherever standard output is not a terminal), readable
// lines for a person at a terminal. LOG_FORMAT forces either. Which requests are logged: LOG_REQUESTS.
import { LogController, type FastifyReply, type FastifyRequest } from 'fastify'
import type { Config } from '../config.js'

export type LogFormat = NonNullable<Config['logFormat']>

export function chooseLogFormat (setting: Config['logFormat'], stdoutIsTerminal: boolean): LogFormat {
  return setting ?? (stdoutIsTerminal ? 'pretty' : 'json')
}

/**
 * The stream a pretty logger writes to: one line per entry (time, level, message, a request as method, URL, status
 * and time, an error as its message, then the entry's other fields as compact JSON), in colour on a terminal; an
 * error's stack only when `stacks` (LOG_LEVEL debug or trace). Synchronous, so lines and the start banner keep their
 * order. pino-pretty (~4 MB resident) is loaded only here: a JSON-logging process never holds it.
 */
export async function prettyLogStream (colorize: boolean, stacks = false, destination: NodeJS.WritableStream = process.stdout): Promise<NodeJS.WritableStream> {
  const { PinoPretty } = await import('pino-pretty')
  return PinoPretty({
    colorize,
    destination,
    sync: true,
    singleLine: true,
    translateTime: 'SYS:HH:MM:ss.l',
    ignore: `pid,hostname,req,res,responseTime,reqId${stacks ? '' : ',err'}`,
    messageFormat: (log, messageKey) => prettyMessage(log, messageKey)
  })
}

/** The readable line's text: the message, then what the request, answer and error say in a few words. */
export function prettyMessage (log: Record<string, unknown>, messageKey = 'msg'): string {
  const parts = [String(log[messageKey] ?? '')]
  const req = log.req as { method?: string, url?: string, remoteAddress?: string } | undefined
  const res = log.res as { statusCode?: number } | undefined
  if (req !== undefined) parts.push(`${req.method ?? ''} ${req.url ?? ''}`)
  if (res?.statusCode !== undefined) parts.push(`→ ${res.statusCode}`)
  if (typeof log.responseTime === 'number') parts.push(`${log.responseTime.toFixed(1)} ms`)
  if (req?.remoteAddress !== undefined) parts.push(`from ${req.remoteAddress}`)
  if (typeof log.reqId === 'string') parts.push(`(${log.reqId})`)
  const err = log.err as { type?: string, message?: string } | undefined
  if (err !== undefined) parts.push(`— ${err.type ?? 'Error'}: ${err.message ?? ''}`)
  return parts.join(' ')
}

/**
 * Fastify's request lines, made cheap by default: two info lines for every request were about a fifth of the
 * throughput (issue 12). Unless LOG_REQUESTS is set, a successful answer logs nothing, and an answer of 400 or above
 * logs one line that carries the request too (it has no "incoming request" line before it). Errors, stream errors and
 * the other lines Fastify writes are untouched.
 */
export class FailuresOnlyLogController extends LogController {
  override incomingRequest (): void {}

  override requestCompleted (error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    if (error !== null && error !== undefined) {
      super.requestCompleted(error, request, reply)
      return
    }
    if (reply.statusCode < 400) return
    reply.log.info({ req: request, res: reply, responseTime: reply.elapsedTime }, 'request completed')
  }
}

/** What buildApp gives Fastify: its own controller (a line per request and per answer), or the failures-only one. */
export const requestLogController = (logRequests: boolean): LogController =>
  logRequests ? new LogController() : new FailuresOnlyLogController()

/** Query parameters that carry a credential in the wild (Supabase Realtime's `apikey`, OAuth's `access_token`, …). */
const SECRET_PARAMETERS = new Set(['apikey', 'access_token', 'token', 'jwt'])

/** The URL with the value of every credential-carrying query parameter (any case) replaced; the rest as it was. */
export function redactUrl (url: string): string {
  const start = url.indexOf('?')
  if (start === -1) return url
  const query = url.slice(start + 1).split('&').map((part) => {
    const equals = part.indexOf('=')
    const name = equals === -1 ? part : part.slice(0, equals)
    let decoded = name
    try {
      decoded = decodeURIComponent(name.replaceAll('+', ' '))
    } catch {}
    return SECRET_PARAMETERS.has(decoded.trim().toLowerCase()) ? `${name}=[redacted]` : part
  })
  return `${url.slice(0, start)}?${query.join('&')}`
}

/** Fastify's own request serializer, with credentials taken out of the URL: a refused `?apikey=` is logged at info. */
export function requestSerializer (request: FastifyRequest): Record<string, unknown> {
  return {
    method: request.method,
    url: redactUrl(request.url),
    version: request.headers['accept-version'],
    host: request.host,
    remoteAddress: request.ip,
    remotePort: request.socket?.remotePort
  }
}

interface OutageLogger {
  warn: (fields: object, message: string) => void
  info: (fields: object, message: string) => void
  debug: (fields: object, message: string) => void
}

/**
 * A failure that repeats while a dependency is down (the demo's polls, the event poller's reads): one warn line when
 * it starts, one info line when it ends, the repeats at debug. An outage starting within `quietMs` of the last
 * warn is logged at debug too, so a flapping database cannot fill the log.
 */
export function outageLog (log: OutageLogger, what: string, quietMs = 60_000, now = Date.now): { failed: (error: unknown) => void, succeeded: () => void } {
  let since: number | undefined
  let warnedAt = -Infinity
  return {
    failed (error) {
      if (since !== undefined || now() - warnedAt < quietMs) {
        log.debug({ err: error }, `${what} failed`)
      } else {
        warnedAt = now()
        log.warn({ err: error }, `${what} failed (repeats are logged at debug until it works again)`)
      }
      since ??= now()
    },
    succeeded () {
      if (since === undefined) return
      log.info({ downForMs: now() - since }, `${what} works again`)
      since = undefined
    }
  }
}
