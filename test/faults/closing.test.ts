// A request that reaches the real process while it shuts down (on a keep-alive connection busy when SIGTERM came) is
// answered 503 as every 503 is: application/problem+json with Retry-After, never Fastify's own `{"error": …}`.
import net from 'node:net'
import t from 'tap'
import { bearer, TEST_SECRET, writeRow } from '../helpers/app.js'
import { startTestDatabase } from '../helpers/database.js'
import { holdTableLock, waitingOnLocks } from '../helpers/faults.js'
import { startServer } from '../helpers/server-process.js'
import { eventually } from '../helpers/wait.js'

const db = await startTestDatabase()
t.teardown(db.close)
await writeRow(db.admin, { lastPollAgo: 1, nextPollIn: 3600 })

async function refused (port: number): Promise<boolean> {
  return await new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port }, () => { socket.destroy(); resolve(false) })
    socket.once('error', () => { resolve(true) })
  })
}

interface RawResponse { status: number, headers: Record<string, string>, body: string }

/** The HTTP/1.1 responses in `text`, in order (Content-Length framed, as Fastify sends them). */
function responses (text: string): RawResponse[] {
  const out: RawResponse[] = []
  let rest = text
  while (rest.startsWith('HTTP/1.1 ')) {
    const end = rest.indexOf('\r\n\r\n')
    const [statusLine = '', ...lines] = rest.slice(0, end).split('\r\n')
    const headers = Object.fromEntries(lines.map((line) => {
      const colon = line.indexOf(':')
      return [line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim()]
    }))
    const length = Number(headers['content-length'] ?? 0)
    const bodyStart = end + 4
    out.push({ status: Number(statusLine.split(' ')[1]), headers, body: Buffer.from(rest.slice(bodyStart)).subarray(0, length).toString() })
    rest = Buffer.from(rest.slice(bodyStart)).subarray(length).toString()
  }
  return out
}

t.test('SIGTERM, then a request on a busy keep-alive connection: 503 problem+json with Retry-After', async (t) => {
  // LOG_REQUESTS: the second request's arrival is seen in the log (its answer waits behind the first's on this
  // connection); a long statement timeout: the first request waits on the lock for as long as this test needs.
  const server = startServer(t, {
    DATABASE_URL: db.apiUrl, JWT_SECRET: TEST_SECRET, PORT: '0', LOG_LEVEL: 'info', LOG_REQUESTS: 'true', DB_STATEMENT_TIMEOUT_MS: '60000'
  })
  const { address } = await server.ready()
  const port = Number(new URL(address).port)
  const { authorization } = await bearer('authenticated')
  const lock = await holdTableLock(db.admin)
  t.teardown(lock.release)

  const socket = net.connect({ host: '127.0.0.1', port })
  let received = ''
  socket.setEncoding('latin1').on('data', (chunk: string) => { received += chunk })
  const ended = new Promise<void>((resolve) => socket.once('close', () => { resolve() }))
  socket.write(`GET /heartbeat HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: ${authorization}\r\n\r\n`)
  await eventually(async () => await waitingOnLocks(db.admin) === 1, 10_000, 'the first request waits on the lock')

  server.child.kill('SIGTERM')
  await eventually(async () => await refused(port), 10_000, 'new connections are refused: the close has begun')
  socket.write('GET /heartbeat/liveness HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')
  // Logged as an incoming request, or (Fastify's own 503) as one refused because the server is closing.
  await eventually(() => server.logLines().some((line) => (line.req as { url?: string } | undefined)?.url === '/heartbeat/liveness' ||
    String(line.msg).includes('server is closing')), 20_000, 'the second request reached the process').catch((error: unknown) => {
    t.comment(`stdout: ${server.stdout}\nstderr: ${server.stderr}`)
    throw error
  })
  await lock.release()
  await ended

  const [first, second] = responses(received)
  t.equal(first?.status, 200, 'the request in flight when SIGTERM came is served')
  t.equal(second?.status, 503, 'the one that arrived during the close: 503')
  t.equal(second?.headers['content-type'], 'application/problem+json; charset=utf-8')
  t.equal(second?.headers['retry-after'], '5')
  t.equal(second?.headers.connection, 'close')
  t.equal(second?.headers['x-content-type-options'], 'nosniff', 'with the security headers every answer carries')
  t.match(JSON.parse(second?.body ?? '{}'), { status: 503, code: 'shutting_down', type: 'urn:eva-heartbeat-api:problem:shutting_down' })
  t.same(await server.exited, { code: 0, signal: null }, 'and the process exits 0')
})
