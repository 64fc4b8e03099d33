// A raw Server-Sent Events client over node:http, for the tests that look at the bytes on the wire: headers,
// `retry:`, comments, and what does or does not arrive. (test/routes/events.test.ts also uses the `eventsource`
// package, a real EventSource implementation, for what a browser-like client sees.)
import http from 'node:http'

export interface SseMessage {
  /** 'comment' for a `:` line, 'retry' for a block with only retry, else the event type ('message' when unnamed). */
  kind: string
  id?: string
  data?: string
  retry?: number
  comment?: string
}

export interface SseConnection {
  status: number
  headers: http.IncomingHttpHeaders
  messages: SseMessage[]
  /** Resolves with the first message (from now on, or already received when `fromIndex` says so) that matches. */
  next: (match: (message: SseMessage) => boolean, timeoutMs?: number, fromIndex?: number) => Promise<SseMessage>
  /** Resolves when the server ends the stream. */
  ended: Promise<void>
  /** A response that is not a stream (a problem): its whole body, once the server has ended it. */
  body: () => Promise<string>
  close: () => void
}

function parseBlock (block: string): SseMessage {
  const message: SseMessage = { kind: 'message' }
  const data: string[] = []
  let fields = 0
  for (const line of block.split('\n')) {
    if (line.startsWith(':')) {
      message.comment = line.slice(1).trim()
      continue
    }
    fields++
    const colon = line.indexOf(':')
    const field = colon === -1 ? line : line.slice(0, colon)
    const value = colon === -1 ? '' : line.slice(colon + 1).replace(/^ /, '')
    if (field === 'event') message.kind = value
    else if (field === 'id') message.id = value
    else if (field === 'data') data.push(value)
    else if (field === 'retry') message.retry = Number(value)
  }
  if (data.length > 0) message.data = data.join('\n')
  if (fields === 0) message.kind = 'comment'
  else if (message.data === undefined && message.retry !== undefined) message.kind = 'retry'
  return message
}

/** `localAddress`: the loopback address to connect from (127.0.0.2, …), to be another client address. */
export async function connectSse (url: string, headers: Record<string, string> = {}, options: { localAddress?: string } = {}): Promise<SseConnection> {
  return await new Promise((resolve, reject) => {
    const request = http.get(url, { headers: { accept: 'text/event-stream', ...headers }, ...options }, (response) => {
      const messages: SseMessage[] = []
      const waiters = new Set<() => void>()
      let buffer = ''
      let raw = ''
      let resolveEnded: () => void = () => {}
      const ended = new Promise<void>((resolve) => { resolveEnded = resolve })
      response.setEncoding('utf8')
      response.on('data', (chunk: string) => {
        buffer += chunk
        raw += chunk
        let end: number
        while ((end = buffer.indexOf('\n\n')) !== -1) {
          messages.push(parseBlock(buffer.slice(0, end)))
          buffer = buffer.slice(end + 2)
        }
        for (const wake of waiters) wake()
      })
      response.on('close', () => { resolveEnded(); for (const wake of waiters) wake() })
      response.on('error', () => {})
      const next = async (match: (message: SseMessage) => boolean, timeoutMs = 10_000, fromIndex = messages.length): Promise<SseMessage> =>
        await new Promise((resolve, reject) => {
          const check = (): void => {
            const found = messages.slice(fromIndex).find(match)
            if (found !== undefined) {
              done()
              resolve(found)
            } else if (response.closed) {
              done()
              reject(new Error(`the stream ended before a matching message; got ${JSON.stringify(messages)}`))
            }
          }
          const timer = setTimeout(() => { done(); reject(new Error(`no matching message within ${timeoutMs} ms; got ${JSON.stringify(messages)}`)) }, timeoutMs)
          const done = (): void => { clearTimeout(timer); waiters.delete(check) }
          waiters.add(check)
          check()
        })
      resolve({ status: response.statusCode ?? 0, headers: response.headers, messages, next, ended, close: () => { request.destroy() }, body: async () => { await ended; return raw } })
    })
    request.on('error', reject)
  })
}

export const isHeartbeat = (message: SseMessage): boolean => message.kind === 'heartbeat'

export interface HeartbeatData {
  heartbeat: Record<string, unknown> | null
  liveness: { state: string, status: string } & Record<string, unknown>
}

export const dataOf = (message: SseMessage): HeartbeatData => JSON.parse(message.data ?? 'null') as HeartbeatData
