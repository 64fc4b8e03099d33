// The CLI's HTTP client against a real loopback server: nothing it opens outlives the answer it carried.
import { spawn } from 'node:child_process'
import { createServer } from 'node:http'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { LOADED_MARGIN_MS } from '../helpers/wait.js'

const CLIENT = fileURLToPath(new URL('../../src/cli/client.ts', import.meta.url))

t.test('a 304 that announces a body it never sends: the process ends as soon as its reads are done', async (t) => {
  // The API's 304 carries Content-Length: 4 (the "null" it does not send); fetch then keeps the connection busy, and
  // the process alive, until the request's timeout: 60 s here, so only a release after the answer ends it sooner.
  const server = createServer((_req, res) => {
    res.writeHead(304, { etag: '"e1"', 'content-type': 'application/json; charset=utf-8', 'content-length': '4' }).end()
  })
  server.keepAliveTimeout = 120_000 // the API's is 72 s: the server does not close them either
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { server.closeAllConnections(); server.close() })
  const address = server.address()
  const url = `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`
  // A process that only makes three reads through ApiClient and then has nothing left to do, as the bin after --wait.
  const script = `
    const { ApiClient } = await import(${JSON.stringify(CLIENT)})
    const client = new ApiClient({ url: ${JSON.stringify(url)}, token: 'x', timeoutMs: 60000 })
    for (let i = 0; i < 3; i++) console.log((await client.request('GET', 'heartbeat', { headers: { 'if-none-match': '"e1"' } })).status)`
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] })
  let stdout = ''
  let printedAt = performance.now()
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk; printedAt = performance.now() })
  const killer = setTimeout(() => { child.kill('SIGKILL') }, 120_000)
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve))
  clearTimeout(killer)
  const lingerMs = performance.now() - printedAt
  t.equal(code, 0)
  t.equal(stdout, '304\n304\n304\n', 'three 304s')
  t.ok(lingerMs < LOADED_MARGIN_MS, `the process ended ${Math.round(lingerMs)} ms after its last answer, not at the 60 s timeout`)
})
