// How log lines look: JSON lines for machines (the default wherever standard output is not a terminal), readable
// lines for a person at a terminal. LOG_FORMAT forces either. Which requests are logged: LOG_REQUESTS.
import { LogController, type FastifyReply, type FastifyRequest } from 'fastify'
import type { Config } from './config.js'

export type LogFormat = NonNullable<Config['logFormat']>

export function chooseLogFormat (setting: Config['logFormat'], stdoutIsTerminal: boolean): LogFormat {
  return setting ?? (stdoutIsTerminal ? 'pretty' : 'json')
}

/**
 * The stream a pretty logger writes to: one line per entry (time, level, message, then the entry's other fields),
 * in colour on a terminal. Synchronous, so that log lines and the start banner reach the terminal in order.
 * pino-pretty (~4 MB resident) is loaded only here: a JSON-logging process never holds it.
 */
export async function prettyLogStream (colorize: boolean): Promise<NodeJS.WritableStream> {
  const { PinoPretty } = await import('pino-pretty')
  return PinoPretty({ colorize, sync: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' })
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
