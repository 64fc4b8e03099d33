// The CLI's commands in-process (runCli, the function the bin calls) against the real app: the cases that need no
// separate process — usage errors, options passed on, timeouts, answers that are not the API's.
import { createServer, type Server } from 'node:http'
import { createServer as createTcpServer } from 'node:net'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import t from 'tap'
import { jwtVerify } from 'jose'
import { freePort } from '../../src/embedded/local-postgres.js'
import { bearer, rowText, startTestApp, TEST_SECRET, writeRow } from '../helpers/app.js'
import { runCliCaptured, type CliRun } from '../helpers/cli.js'

const { app, db } = await startTestApp(t)
const url = await app.listen({ host: '127.0.0.1', port: 0 })
const serviceToken = (await bearer('service_role')).authorization.replace(/^Bearer /, '')

async function run (args: string[], env: Record<string, string> = {}): Promise<CliRun> {
  return await runCliCaptured(args, { EVA_HEARTBEAT_URL: url, ...env })
}

async function listening (server: Server | ReturnType<typeof createTcpServer>): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  t.teardown(() => { server.close() })
  return `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`
}

t.test('usage errors: exit 2, one line on stderr, nothing sent', async (t) => {
  await writeRow(db.admin)
  const before = await rowText(db.admin)
  const token = ['--token', serviceToken]
  const cases: Array<[string[], RegExp]> = [
    [[], /a command is required/],
    [['restart'], /unknown command "restart"/],
    [['resume', '--force', ...token], /Unknown option '--force'/],
    [['resume', '--reason', 'x', ...token], /resume does not take --reason/],
    [['check', '--if-match', '"x"'], /check does not take --if-match/],
    [['token', '--url', url], /token does not take --url/],
    [['resume', 'now', ...token], /resume takes no argument "now"/],
    [['pause', ...token], /pause needs --reason TEXT/],
    [['pause', '--reason', ' \t ', ...token], /pause needs --reason TEXT/],
    [['breaker', ...token], /breaker takes one of open, close, half-open/],
    [['breaker', 'sideways', ...token], /breaker takes one of open, close, half-open/],
    [['breaker', 'open', 'close', ...token], /breaker takes one of open, close, half-open/],
    [['resume'], /resume needs a service_role token: --token-file PATH or EVA_HEARTBEAT_TOKEN/],
    [['resume', '--token', '   '], /resume needs a service_role token/],
    [['status'], /status needs an authenticated or service_role token/],
    [['resume', '--url', 'not a url', ...token], /--url must be an http\(s\) URL \(got "not a url"\)/],
    [['check', '--url', 'ftp://example.com/'], /--url must be an http\(s\) URL/],
    [['check', '--timeout', '0'], /--timeout must be a number of seconds above 0 \(got "0"\)/],
    [['check', '--timeout', 'soon'], /--timeout must be a number of seconds above 0/],
    [['check', '--grace=-1'], /--grace must be a number of seconds from 0 to 86400/],
    [['check', '--grace', '86401'], /--grace must be a number of seconds from 0 to 86400/],
    [['check', '--grace', ''], /--grace must be a number of seconds/],
    [['token'], /--role is required/],
    [['token', '--role', 'service_role', '--ttl', '0'], /--ttl must be a number of seconds above 0/],
    [['token', '--role', 'service_role', '--ttl', '1.5'], /--ttl must be a whole number/],
    [['pause', '--reason', 'x', '--wait', '0', ...token], /--wait must be a number of seconds above 0 to 86400 \(got "0"\)/],
    [['pause', '--reason', 'x', '--wait=86401', ...token], /--wait must be a number of seconds above 0 to 86400/],
    [['resume', '--wait', '1.2.3', ...token], /--wait must be a number of seconds/],
    [['resume', '--wait', '-1', ...token], /Unknown option '-1'/],
    [['resume', '--wait', 'soon', ...token], /resume takes no argument "soon"/],
    [['resume', '--wait=', ...token], /resume takes no argument ""/],
    [['breaker', 'open', '--wait', ...token], /breaker does not take --wait/],
    [['check', '--wait'], /check does not take --wait/]
  ]
  for (const [args, message] of cases) {
    const result = await run(args)
    const name = args.map((arg) => arg === serviceToken ? 'TOKEN' : arg).join(' ') || '(nothing)'
    t.equal(result.code, 2, `${name}: exit 2`)
    t.equal(result.stdout, '', `${name}: nothing on stdout`)
    t.match(result.stderr, /^eva-heartbeat: [^\n]+ \(eva-heartbeat --help for usage\)\n$/, `${name}: one line`)
    t.match(result.stderr, message, `${name}: says what is wrong`)
  }
  t.equal(await rowText(db.admin), before, 'row unchanged')
  t.equal((await run(['help'])).code, 0, 'help is a command too')
})

t.test('check passes --grace and --token on, and --json describes the result', async (t) => {
  await writeRow(db.admin, { lastPollAgo: 300, nextPollIn: -240 })
  let result = await run(['check'])
  t.equal(result.code, 2, 'stale with the server\'s grace')
  result = await run(['check', '--grace', '600', '--json'])
  t.equal(result.code, 1, 'late within ?grace=600')
  const body = JSON.parse(result.stdout) as Record<string, unknown>
  t.match(body, { exit_code: 1, label: 'WARNING', summary: /^HEARTBEAT WARNING - late, /, liveness: { state: 'late', grace_seconds: 600 } })
  result = await run(['check', '--json', '--url', `http://127.0.0.1:${await freePort()}`])
  t.equal(result.code, 3)
  t.match(JSON.parse(result.stdout), { exit_code: 3, label: 'UNKNOWN', summary: /cannot reach/, liveness: null })
})

t.test('writes: --if-match, and the API\'s 400 passed on', async (t) => {
  await writeRow(db.admin)
  const res = await app.inject({ method: 'GET', url: '/heartbeat', headers: await bearer('authenticated') })
  let result = await run(['breaker', 'half-open', '--if-match', String(res.headers.etag)], { EVA_HEARTBEAT_TOKEN: serviceToken })
  t.equal(result.code, 0, 'the current ETag: the change goes through')
  t.match(result.stdout, /^breaker HALF_OPEN: .*verdict degraded \(warn\)\n$/)
  result = await run(['breaker', 'half-open', '--if-match', String(res.headers.etag)], { EVA_HEARTBEAT_TOKEN: serviceToken })
  t.equal(result.code, 1, 'the same ETag again is stale')
  t.match(result.stderr, /^eva-heartbeat: 412 precondition_failed: /)
  const before = await rowText(db.admin)
  result = await run(['pause', '--reason', 'x'.repeat(501)], { EVA_HEARTBEAT_TOKEN: serviceToken })
  t.equal(result.code, 1)
  t.equal(result.stderr, 'eva-heartbeat: 400 invalid_request: body paused_reason must be at most 500 characters after trimming (got 501).\n')
  t.equal(await rowText(db.admin), before)
  result = await run(['pause', '--reason', 'line one\nline two', '--json'], { EVA_HEARTBEAT_TOKEN: serviceToken })
  t.equal(result.code, 0)
  t.equal((JSON.parse(result.stdout) as { heartbeat: { paused_reason: string } }).heartbeat.paused_reason, 'line one\nline two')
})

t.test('an API that never answers: the timeout, then UNKNOWN or exit 1', async (t) => {
  const sockets: Array<{ destroy: () => void }> = []
  const silent = createTcpServer((socket) => { sockets.push(socket) })
  t.teardown(() => { for (const socket of sockets) socket.destroy() })
  const silentUrl = await listening(silent)
  let result = await run(['check', '--url', silentUrl, '--timeout', '0.3'])
  t.equal(result.code, 3)
  t.equal(result.stdout, `HEARTBEAT UNKNOWN - no answer from ${silentUrl}/heartbeat/liveness within 0.3 s\n`)
  result = await run(['resume', '--url', silentUrl, '--timeout', '0.3'], { EVA_HEARTBEAT_TOKEN: serviceToken })
  t.equal(result.code, 1)
  t.equal(result.stderr, `eva-heartbeat: no answer from ${silentUrl}/heartbeat within 0.3 s\n`)
})

t.test('something that is not the API: UNKNOWN or exit 1, never a crash', async (t) => {
  const html = createServer((_req, res) => { res.writeHead(200, { 'content-type': 'text/html' }).end('<h1>hello</h1>') })
  const htmlUrl = await listening(html)
  let result = await run(['check', '--url', htmlUrl])
  t.equal(result.code, 3)
  t.equal(result.stdout, 'HEARTBEAT UNKNOWN - HTTP 200 text/html\n')
  result = await run(['status', '--url', htmlUrl], { EVA_HEARTBEAT_TOKEN: serviceToken })
  t.equal(result.code, 1)
  t.equal(result.stderr, 'eva-heartbeat: HTTP 200 text/html\n')

  const broken = createServer((_req, res) => { res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":') })
  const brokenUrl = await listening(broken)
  result = await run(['check', '--url', brokenUrl])
  t.equal(result.code, 3)
  t.match(result.stdout, /^HEARTBEAT UNKNOWN - http:\/\/127\.0\.0\.1:\d+\/heartbeat\/liveness answered JSON that does not parse\n$/)

  result = await run(['check', '--url', `${url}/prefix/`])
  t.equal(result.code, 3, 'a wrong path prefix: the API\'s own 404')
  t.match(result.stdout, /^HEARTBEAT UNKNOWN - 404 not_found: There is no GET \/prefix\/heartbeat\/liveness here\.\n$/)
})

t.test('token: signed with JWT_SECRET, or the development secret in DATA_DIR', async (t) => {
  let result = await run(['token', '--role', 'authenticated'], { JWT_SECRET: TEST_SECRET })
  t.equal(result.code, 0)
  const { payload } = await jwtVerify(result.stdout.trim(), new TextEncoder().encode(TEST_SECRET))
  t.match(payload, { role: 'authenticated', sub: 'cli:authenticated' })
  t.equal((payload.exp ?? 0) - (payload.iat ?? 0), 3600, 'one hour by default')

  result = await run(['token', '--role', 'service_role', '--json'], { JWT_SECRET: TEST_SECRET, JWT_AUDIENCE: 'eva', JWT_ISSUER: 'https://issuer.example' })
  const minted = JSON.parse(result.stdout) as { token: string }
  const verified = await jwtVerify(minted.token, new TextEncoder().encode(TEST_SECRET), { audience: 'eva', issuer: 'https://issuer.example' })
  t.equal(verified.payload.role, 'service_role', 'aud and iss follow the configuration')

  const empty = await mkdtemp(path.join(tmpdir(), 'eva-cli-'))
  t.teardown(async () => { await rm(empty, { recursive: true, force: true }) })
  result = await run(['token', '--role', 'authenticated'], { DATA_DIR: empty })
  t.equal(result.code, 1)
  t.equal(result.stderr, `eva-heartbeat: no JWT_SECRET and no development secret in ${empty}: run npm start once first\n`)
})
