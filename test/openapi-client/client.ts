// A client of this API written only against types that openapi-typescript generated from openapi/openapi.json
// (./generated/schema.d.ts, made by test/openapi-client.test.ts), calling every operation through openapi-fetch.
// test/openapi-client.test.ts type-checks this file with tsc (./tsconfig.json) and runs it against a started server.
// Kept out of the project's own tsconfig: the generated file exists only once that test has written it.
import createClient from 'openapi-fetch'
import type { components, operations, paths } from './generated/schema.js'

export type Liveness = components['schemas']['Liveness']
type Heartbeat = components['schemas']['HeartbeatResponse']
type Problem = components['schemas']['Problem']

/** What each operation answered, for the test to check against the server and the database. */
export interface Answers {
  liveness: { status: number, body: Liveness | undefined }
  livenessHead: number
  badRequest: { status: number, problem: Problem | undefined }
  heartbeat: { status: number, body: Heartbeat | undefined, etag: string | null }
  notModified: number
  heartbeatHead: number
  unauthorized: { status: number, problem: Problem | undefined }
  pause: { status: number, body: Heartbeat | undefined }
  staleIfMatch: { status: number, problem: Problem | undefined }
  resume: { status: number, body: Heartbeat | undefined }
  metrics: { status: number, text: string | undefined }
  events: { status: number, firstChunk: string }
  livez: { status: number, body: operations['getLivez']['responses'][200]['content']['application/health+json'] | undefined }
  readyz: { status: number, ready: 'pass' | 'fail' | undefined }
  root: { status: number, location: string | null }
  statusPage: { status: number, html: string | undefined }
  badge: { status: number, svg: string | undefined }
  shields: { status: number, body: components['schemas']['ShieldsEndpoint'] | undefined }
  heads: Record<string, number>
}

export async function callEveryOperation (baseUrl: string, tokens: { reader: string, service: string }): Promise<Answers> {
  const client = createClient<paths>({ baseUrl })
  const asReader = { authorization: `Bearer ${tokens.reader}` }
  const asService = { authorization: `Bearer ${tokens.service}` }

  const liveness = await client.GET('/heartbeat/liveness', { params: { query: { grace: 120 } } })
  // The state is the schema's union, not a string: a typo here would not compile.
  const state: Liveness['state'] | undefined = liveness.data?.state
  void state
  const badRequest = await client.GET('/heartbeat/liveness', { params: { query: { grace: 100_000 } } })

  const heartbeat = await client.GET('/heartbeat', { headers: asReader })
  const etag = heartbeat.response.headers.get('etag')
  const notModified = await client.GET('/heartbeat', { headers: { ...asReader, 'if-none-match': etag ?? '' } })
  const unauthorized = await client.GET('/heartbeat')

  const pause = await client.PATCH('/heartbeat', { headers: asService, params: { header: { 'if-match': etag ?? undefined } }, body: { status: 'stopping', paused_reason: 'generated client' } })
  const staleIfMatch = await client.PATCH('/heartbeat', { headers: asService, params: { header: { 'if-match': etag ?? undefined } }, body: { circuit_breaker_state: 'OPEN' } })
  const resume = await client.PATCH('/heartbeat', { headers: asService, body: { status: 'running', paused_reason: null } })

  const metrics = await client.GET('/metrics', { headers: asReader, parseAs: 'text' })

  const controller = new AbortController()
  const events = await client.GET('/heartbeat/events', { headers: asReader, parseAs: 'stream', signal: controller.signal })
  let firstChunk = ''
  if (events.data != null) {
    const reader = events.data.getReader()
    const decoder = new TextDecoder()
    // Up to the end of the first event (the stream opens with retry:, then the current state).
    while (!/event:[^]*\n\n/.test(firstChunk)) {
      const { value, done } = await reader.read()
      if (done) break
      firstChunk += decoder.decode(value, { stream: true })
    }
    controller.abort()
  }

  const livez = await client.GET('/livez')
  const readyz = await client.GET('/readyz')
  const root = await client.GET('/', { redirect: 'manual' })
  const statusPage = await client.GET('/status', { parseAs: 'text' })
  const badge = await client.GET('/heartbeat/badge.svg', { params: { query: { label: 'eva' } }, parseAs: 'text' })
  const shields = await client.GET('/heartbeat/shields.json', { params: { query: { label: 'eva' } } })

  // Every HEAD operation the document lists, each typed by its own path.
  const heads: Record<string, number> = {
    '/heartbeat': (await client.HEAD('/heartbeat', { headers: asReader })).response.status,
    '/heartbeat/liveness': (await client.HEAD('/heartbeat/liveness', {})).response.status,
    '/heartbeat/events': (await client.HEAD('/heartbeat/events', { headers: asReader, parseAs: 'stream' })).response.status,
    '/metrics': (await client.HEAD('/metrics', { headers: asReader, parseAs: 'text' })).response.status,
    '/livez': (await client.HEAD('/livez')).response.status,
    '/readyz': (await client.HEAD('/readyz')).response.status,
    '/': (await client.HEAD('/', { redirect: 'manual' })).response.status,
    '/status': (await client.HEAD('/status', { parseAs: 'text' })).response.status,
    '/heartbeat/badge.svg': (await client.HEAD('/heartbeat/badge.svg', { parseAs: 'text' })).response.status,
    '/heartbeat/shields.json': (await client.HEAD('/heartbeat/shields.json', { parseAs: 'text' })).response.status
  }

  // The generated types refuse what the document does not allow: each line below would compile with loose types.
  if (baseUrl === '') {
    // @ts-expect-error no such path
    await client.GET('/heartbeat/nothing')
    // @ts-expect-error grace is a number of seconds
    await client.GET('/heartbeat/liveness', { params: { query: { grace: 'soon' } } })
    // @ts-expect-error status is one of three values
    await client.PATCH('/heartbeat', { body: { status: 'sleeping' } })
  }

  return {
    liveness: { status: liveness.response.status, body: liveness.data },
    livenessHead: heads['/heartbeat/liveness'] ?? 0,
    // Liveness' errors are a problem (400) or the verdict itself (503): told apart by the problem's code.
    badRequest: { status: badRequest.response.status, problem: badRequest.error !== undefined && 'code' in badRequest.error ? badRequest.error : undefined },
    heartbeat: { status: heartbeat.response.status, body: heartbeat.data, etag },
    notModified: notModified.response.status,
    heartbeatHead: heads['/heartbeat'] ?? 0,
    unauthorized: { status: unauthorized.response.status, problem: unauthorized.error },
    pause: { status: pause.response.status, body: pause.data },
    staleIfMatch: { status: staleIfMatch.response.status, problem: staleIfMatch.error },
    resume: { status: resume.response.status, body: resume.data },
    metrics: { status: metrics.response.status, text: metrics.data },
    events: { status: events.response.status, firstChunk },
    livez: { status: livez.response.status, body: livez.data },
    readyz: { status: readyz.response.status, ready: readyz.data?.status ?? readyz.error?.status },
    root: { status: root.response.status, location: root.response.headers.get('location') },
    statusPage: { status: statusPage.response.status, html: statusPage.data },
    badge: { status: badge.response.status, svg: badge.data },
    shields: { status: shields.response.status, body: shields.data },
    heads
  }
}
