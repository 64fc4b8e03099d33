// The CLI and redirects: an answer that points elsewhere is never followed with the token or key (fetch drops
// Authorization across origins but not apikey). A real server on one loopback port redirects to a second one, which
// records every request it gets: it must get none, and the CLI exits non-zero naming where it was sent.
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http'
import t from 'tap'
import { runCliCaptured } from '../helpers/cli.js'

const KEY = 'sb_secret_N7UND0UgjKTVK-Uodkm0Hg_xSvEMPvz'
const TOKEN = 'eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.c2lnbmF0dXJl'

async function listening (server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { server.closeAllConnections(); server.close() })
  const address = server.address()
  return `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`
}

const received: Array<{ method: string | undefined, url: string | undefined, headers: IncomingHttpHeaders }> = []
const elsewhere = await listening(createServer((req, res) => {
  received.push({ method: req.method, url: req.url, headers: req.headers })
  res.writeHead(200, { 'content-type': 'application/json' }).end('{}')
}))
// 302 for reads, 307 (which keeps the method and body) for writes: what a hijacked proxy or a moved host answers.
const redirector = await listening(createServer((req, res) => {
  res.writeHead(req.method === 'GET' ? 302 : 307, { location: `${elsewhere}${req.url ?? '/'}` }).end()
}))

t.beforeEach(() => { received.length = 0 })

t.test('a redirect is not followed with a token or key: nothing reaches the other server, and the CLI says where it pointed', async (t) => {
  const cases: Array<[string, string[], Record<string, string>, number]> = [
    ['status with a key', ['status'], { EVA_HEARTBEAT_API_KEY: KEY }, 1],
    ['pause with a key', ['pause', '--reason', 'incident'], { EVA_HEARTBEAT_API_KEY: KEY }, 1],
    ['breaker with a token', ['breaker', 'open'], { EVA_HEARTBEAT_TOKEN: TOKEN }, 1],
    ['check with a token', ['check'], { EVA_HEARTBEAT_TOKEN: TOKEN }, 3],
    ['resume --wait with a key', ['resume', '--wait', '1'], { EVA_HEARTBEAT_API_KEY: KEY }, 3]
  ]
  for (const [name, args, env, code] of cases) {
    const result = await runCliCaptured(args, { EVA_HEARTBEAT_URL: redirector, ...env })
    t.equal(result.code, code, `${name}: exit ${code}`)
    const said = result.stdout + result.stderr
    t.match(said, /answered (302|307), a redirect to http:\/\/127\.0\.0\.1:\d+\/heartbeat[^\s]*, not followed/, `${name}: names the redirect`)
    t.ok(said.includes(`${elsewhere}/heartbeat`), `${name}: names the location`)
    t.notOk(said.includes(KEY) || said.includes(TOKEN), `${name}: not the credential`)
  }
  t.same(received, [], 'the other server received no request at all, so neither apikey nor Authorization')
})

t.test('a relative Location is named as the URL it resolves to; a redirect with none says so', async (t) => {
  const relative = await listening(createServer((_req, res) => { res.writeHead(301, { location: '/moved/here' }).end() }))
  let result = await runCliCaptured(['status'], { EVA_HEARTBEAT_URL: relative, EVA_HEARTBEAT_API_KEY: KEY })
  t.equal(result.code, 1)
  t.equal(result.stderr, `eva-heartbeat: ${relative}/heartbeat answered 301, a redirect to ${relative}/moved/here, not followed: point --url at the API itself\n`)
  const bare = await listening(createServer((_req, res) => { res.writeHead(303).end() }))
  result = await runCliCaptured(['check'], { EVA_HEARTBEAT_URL: bare })
  t.equal(result.code, 3, 'check: UNKNOWN')
  t.equal(result.stdout, `HEARTBEAT UNKNOWN - ${bare}/heartbeat/liveness answered 303, a redirect with no Location, not followed: point --url at the API itself\n`)
})
