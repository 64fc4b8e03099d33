// The HTTP side of the ops CLI: node's fetch against the API, answers parsed, failures turned into one line.

/** A failure the CLI reports as one line on stderr with this exit code. */
export class CliError extends Error {
  override name = 'CliError'
  constructor (message: string, readonly exitCode: number = 1) {
    super(message)
  }
}

/** Exit codes of every command but `check` (which uses Nagios's). */
export const EXIT_OK = 0
export const EXIT_FAILED = 1
export const EXIT_USAGE = 2

export interface ApiAnswer {
  status: number
  headers: Headers
  /** Parsed JSON when the answer was JSON (application/json, +json); undefined otherwise. */
  json: unknown
}

export interface ClientOptions {
  url: string
  token: string | undefined
  /** A secret API key (sb_secret_…), sent in the apikey header; never together with a token. */
  apiKey?: string | undefined
  timeoutMs: number
}

/** A usage error: exit 2, with a pointer to the help. */
export const usage = (message: string): CliError => new CliError(`${message} (eva-heartbeat --help for usage)`, EXIT_USAGE)

interface Problem { status?: unknown, code?: unknown, detail?: unknown }

/** The API's base URL, checked, with a trailing slash so that paths resolve under any prefix (…/eva/ behind a proxy). */
export function baseUrl (url: string): URL {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    throw usage(`--url must be an http(s) URL (got ${JSON.stringify(url)})`)
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw usage(`--url must be an http(s) URL (got ${JSON.stringify(url)})`)
  }
  if (!parsed.pathname.endsWith('/')) parsed.pathname += '/'
  parsed.search = ''
  parsed.hash = ''
  return parsed
}

/** "403 insufficient_scope: Role authenticated may not update the heartbeat." for a problem+json answer. */
export function describeFailure (answer: ApiAnswer): string {
  const problem = (typeof answer.json === 'object' && answer.json !== null ? answer.json : {}) as Problem
  if (typeof problem.code === 'string' && typeof problem.detail === 'string') {
    return `${answer.status} ${problem.code}: ${problem.detail}`
  }
  return `HTTP ${answer.status} ${answer.headers.get('content-type') ?? 'with no content type'}`
}

export class ApiClient {
  private readonly base: URL

  constructor (private readonly options: ClientOptions) {
    this.base = baseUrl(options.url)
  }

  get hasToken (): boolean {
    return this.options.token !== undefined || this.options.apiKey !== undefined
  }

  /** One request. Network failures and timeouts throw a CliError; every HTTP answer is returned, whatever its status. */
  async request (method: 'GET' | 'PATCH', path: string, options: { body?: unknown, headers?: Record<string, string>, query?: Record<string, string> } = {}): Promise<ApiAnswer> {
    const url = new URL(path, this.base)
    for (const [key, value] of Object.entries(options.query ?? {})) url.searchParams.set(key, value)
    const headers: Record<string, string> = { accept: 'application/json, application/health+json, application/problem+json', ...options.headers }
    if (this.options.token !== undefined) headers.authorization = `Bearer ${this.options.token}`
    if (this.options.apiKey !== undefined) headers.apikey = this.options.apiKey
    if (options.body !== undefined) headers['content-type'] = 'application/json'
    // Released once the answer is read: undici keeps a connection whose answer announced a body it never sent (a 304
    // with a Content-Length) busy and referenced until the timeout, which held the process open after its answer.
    const done = new AbortController()
    let response: Response
    try {
      response = await fetch(url, {
        method,
        headers,
        ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
        // Never followed: fetch drops Authorization on a cross-origin redirect but sends apikey on to wherever it points.
        redirect: 'manual',
        signal: AbortSignal.any([done.signal, AbortSignal.timeout(this.options.timeoutMs)])
      })
    } catch (error) {
      throw new CliError(unreachable(url, error, this.options.timeoutMs))
    }
    const type = response.headers.get('content-type') ?? ''
    let json: unknown
    try {
      const text = await response.text()
      json = /^application\/([\w.-]+\+)?json\b|^application\/health\+json\b/i.test(type) && text !== '' ? JSON.parse(text) : undefined
    } catch (error) {
      throw new CliError(unreachable(url, error, this.options.timeoutMs))
    } finally {
      done.abort()
    }
    if (isRedirect(response.status)) throw new CliError(redirected(url, response))
    return { status: response.status, headers: response.headers, json }
  }
}

/** 3xx but 304, which is the answer to If-None-Match rather than a pointer elsewhere. */
export const isRedirect = (status: number): boolean => status >= 300 && status < 400 && status !== 304

/** "http://api/heartbeat answered 302, a redirect to https://elsewhere/heartbeat, not followed: …" */
export function redirected (url: URL, answer: { status: number, headers: Headers }): string {
  const location = answer.headers.get('location')
  let target = 'a redirect with no Location'
  if (location !== null) {
    let resolved: string
    try {
      resolved = new URL(location, url).href
    } catch {
      resolved = JSON.stringify(location)
    }
    target = `a redirect to ${resolved.length > 300 ? `${resolved.slice(0, 300)}…` : resolved}`
  }
  return `${url.origin}${url.pathname} answered ${answer.status}, ${target}, not followed: point --url at the API itself`
}

function unreachable (url: URL, error: unknown, timeoutMs: number): string {
  const where = `${url.origin}${url.pathname}`
  if (error instanceof Error && (error.name === 'TimeoutError' || error.name === 'AbortError')) {
    return `no answer from ${where} within ${timeoutMs / 1000} s`
  }
  if (error instanceof SyntaxError) return `${where} answered JSON that does not parse`
  const cause = error instanceof Error ? (error.cause as { code?: unknown, message?: unknown } | undefined) : undefined
  const reason = typeof cause?.code === 'string' ? cause.code : typeof cause?.message === 'string' ? cause.message : error instanceof Error ? error.message : String(error)
  return `cannot reach ${where}: ${reason}`
}
