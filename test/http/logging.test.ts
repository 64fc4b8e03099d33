// Log lines a person can read: the server run under a real terminal (util-linux `script` gives it a pseudo-terminal)
// prints readable lines and keeps its start banner; LOG_FORMAT forces JSON on a terminal and readable lines
// elsewhere. Without a terminal and without LOG_FORMAT the lines are JSON, as every other process test reads them.
import { spawn } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { Writable } from 'node:stream'
import t from 'tap'
import { chooseLogFormat, outageLog, prettyLogStream, prettyMessage } from '../../src/http/logging.js'
import { TEST_SECRET, writeRow } from '../helpers/app.js'
import { startTestDatabase } from '../helpers/database.js'
import { embeddedDataDir, environment, ROOT, startServer, type Tap } from '../helpers/server-process.js'
import { findTool, needs } from '../helpers/tools.js'
import { delay, eventually } from '../helpers/wait.js'

// A readable line: the local time, the level, the message.
const PRETTY_READY = /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: ready \{"address":"http:\/\/127\.0\.0\.1:\d+","readyMs":\d+/m
const ANSI = /\x1b\[[0-9;]*m/g // eslint-disable-line no-control-regex

const script = findTool('script')

t.test('the format: LOG_FORMAT if set, else readable on a terminal and JSON elsewhere', async (t) => {
  t.equal(chooseLogFormat(undefined, true), 'pretty')
  t.equal(chooseLogFormat(undefined, false), 'json')
  t.equal(chooseLogFormat('json', true), 'json')
  t.equal(chooseLogFormat('pretty', false), 'pretty')
})

/** The server with a terminal for its standard output; its output as the terminal shows it, colours removed. */
function onTerminal (t: Tap, env: Record<string, string>): { output: () => string, stop: () => Promise<number | null> } {
  const child = spawn(script as string, ['-qefc', `exec ${process.execPath} --import tsx src/server.ts`, '/dev/null'], {
    cwd: ROOT, env: environment(env), stdio: ['pipe', 'pipe', 'pipe']
  })
  let output = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => { output += chunk })
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => { resolve(code) }))
  // SIGTERM to the server itself (script's child), as a service manager would send it.
  const stop = async (): Promise<number | null> => {
    if (child.exitCode === null && child.pid !== undefined) {
      const children = await readFile(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8').catch(() => '')
      for (const pid of children.trim().split(/\s+/).filter((p) => p !== '')) process.kill(Number(pid), 'SIGTERM')
    }
    return await Promise.race([exited, delay(15_000).then(() => { child.kill('SIGKILL'); return null })])
  }
  t.teardown(stop)
  return { output: () => output.replace(ANSI, '').replaceAll('\r\n', '\n'), stop }
}

const addressIn = (output: string): string => /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(output)?.[1] ?? ''

t.test('on a terminal: readable lines, the start banner as before, and JSON when LOG_FORMAT=json', needs(script, 'script', 'bsdutils'), async (t) => {
  t.test('the embedded default, LOG_FORMAT unset', async (t) => {
    const dataDir = await embeddedDataDir(t, 'eva-logging-')
    const server = onTerminal(t, { DATA_DIR: dataDir, PORT: '0', DEMO_INTERVAL_SECONDS: '1', LOG_REQUESTS: 'true' })
    await eventually(() => server.output().includes('API docs:'), 60_000, 'the banner')
    const address = addressIn(server.output())
    t.match(address, /^http:/, 'the listening line is readable')
    t.equal((await fetch(`${address}/livez`)).status, 200)
    t.equal(await server.stop(), 0, 'SIGTERM: exit 0')
    const output = server.output()
    t.match(output, PRETTY_READY, 'the ready line')
    t.match(output, /^\[[\d:.]+\] INFO: incoming request GET \/livez from 127\.0\.0\.1 \(req-1\)$/m, 'a request: one line')
    t.notMatch(output, /^ {4}(reqId|req|res|address|signal|err): /m, 'no continuation lines')
    t.match(output, /^\[[\d:.]+\] INFO: shutting down \{"signal":"SIGTERM"\}$/m, 'the shutdown')
    t.notMatch(output, /^\{/m, 'no JSON line')
    t.match(output, `\neva-heartbeat-api is listening on ${address} (ready in `, 'the banner')
    t.match(output, `\n  try it:\n    curl -s ${address}/heartbeat/liveness\n    TOKEN=$(DATA_DIR=${dataDir} npm run -s token -- --role authenticated)\n`)
    t.ok(output.indexOf('INFO: ready') < output.indexOf('eva-heartbeat-api is listening on'), 'the ready line, then the banner')
  })

  t.test('LOG_FORMAT=json: JSON lines on a terminal too', async (t) => {
    const db = await startTestDatabase()
    t.teardown(db.close)
    await writeRow(db.admin)
    const server = onTerminal(t, { DATABASE_URL: db.apiUrl, JWT_SECRET: TEST_SECRET, PORT: '0', LOG_FORMAT: 'json' })
    await eventually(() => server.output().includes('"msg":"ready"'), 60_000, 'the ready line')
    t.equal(await server.stop(), 0, 'SIGTERM: exit 0')
    const lines = server.output().split('\n').filter((line) => line !== '')
    t.ok(lines.length >= 3, `${lines.length} lines`)
    for (const line of lines) t.doesNotThrow(() => JSON.parse(line), line.slice(0, 60))
    t.notMatch(server.output(), PRETTY_READY)
  })
})

t.test('without a terminal, LOG_FORMAT=pretty: readable lines, no colours', async (t) => {
  const db = await startTestDatabase()
  t.teardown(db.close)
  await writeRow(db.admin)
  const server = startServer(t, { DATABASE_URL: db.apiUrl, JWT_SECRET: TEST_SECRET, PORT: '0', LOG_FORMAT: 'pretty', LOG_REQUESTS: 'true' })
  await eventually(() => PRETTY_READY.test(server.stdout), 60_000, 'the ready line')
  t.equal((await fetch(`${addressIn(server.stdout)}/heartbeat/liveness`)).status, 200)
  await eventually(() => server.stdout.includes('request completed'), 10_000, 'the request logged')
  t.same(await server.stop(), { code: 0, signal: null })
  t.notMatch(server.stdout, ANSI, 'no colour codes')
  t.notMatch(server.stdout, /^\{/m, 'no JSON line')
  t.match(server.stdout, /^\[[\d:.]+\] INFO: incoming request GET \/heartbeat\/liveness from 127\.0\.0\.1 \(req-1\)$/m, 'a request is one line')
  t.match(server.stdout, /^\[[\d:.]+\] INFO: request completed → 200 [\d.]+ ms \(req-1\)$/m, 'and its answer another')
  t.notMatch(server.stdout, /^ {4}/m, 'no continuation lines')
})

t.test('readable lines: a request, an error and an audit entry are one line each', async (t) => {
  t.equal(prettyMessage({ msg: 'request completed', reqId: 'req-7', req: { method: 'PATCH', url: '/heartbeat', remoteAddress: '10.0.0.9' }, res: { statusCode: 401 }, responseTime: 0.25 }),
    'request completed PATCH /heartbeat → 401 0.3 ms from 10.0.0.9 (req-7)')
  t.equal(prettyMessage({ msg: 'demo scheduler poll failed', err: { type: 'Error', message: 'connect ECONNREFUSED 127.0.0.1:5432' } }),
    'demo scheduler poll failed — Error: connect ECONNREFUSED 127.0.0.1:5432')
  t.equal(prettyMessage({ msg: 'heartbeat changed', audit: { who: 'ops' } }), 'heartbeat changed')
  const lines: string[] = []
  const sink = new Writable({ write (chunk, _encoding, done) { lines.push(String(chunk)); done() } })
  const { pino } = await import('pino')
  const log = pino({}, await prettyLogStream(false, false, sink))
  log.info({ audit: { who: 'ops', role: 'service_role', ip: '127.0.0.1', changes: { status: { from: 'running', to: 'stopping' } } } }, 'heartbeat changed')
  log.warn({ err: new Error('down') }, 'poll failed')
  const text = lines.join('')
  t.equal(text.trim().split('\n').length, 2, text)
  t.match(text, /INFO: heartbeat changed \{"audit":\{"who":"ops"/)
  t.notMatch(text, /at .*\.ts:\d+/, 'no stack below debug')
})

t.test('an outage is one warn line when it starts and one info line when it ends; repeats and flaps go to debug', async (t) => {
  const lines: string[] = []
  const logger = {
    warn: (_: object, message: string) => { lines.push(`warn ${message}`) },
    info: (fields: object, message: string) => { lines.push(`info ${message} ${JSON.stringify(fields)}`) },
    debug: (_: object, message: string) => { lines.push(`debug ${message}`) }
  }
  let clock = 0
  const outage = outageLog(logger, 'poll', 60_000, () => clock)
  outage.succeeded()
  t.same(lines, [], 'nothing while it works')
  for (let i = 0; i < 5; i++) { outage.failed(new Error('down')); clock += 5_000 }
  outage.succeeded()
  outage.succeeded()
  t.same(lines, [
    'warn poll failed (repeats are logged at debug until it works again)',
    'debug poll failed', 'debug poll failed', 'debug poll failed', 'debug poll failed',
    'info poll works again {"downForMs":25000}'
  ])
  lines.length = 0
  outage.failed(new Error('down again'))
  t.same(lines, ['debug poll failed'], 'a new outage within a minute of the last warn: debug')
  outage.succeeded()
  clock += 60_000
  lines.length = 0
  outage.failed(new Error('down later'))
  t.match(lines, [/^warn poll failed/], 'a minute later: warn again')
})
