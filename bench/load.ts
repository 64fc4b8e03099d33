// The load generators: wrk (C, Debian's `wrk` package) where it is installed, autocannon (Node, in this process)
// otherwise. A generator in Node competes with the server for the machine's cores, so wrk's figures are the ones to
// compare with the issues'.
import { spawn, spawnSync } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import autocannon from 'autocannon'

export interface LoadRequest {
  url: string
  method: 'GET' | 'PATCH'
  headers: Record<string, string>
  body?: string
  connections: number
  seconds: number
  /** wrk only: its threads (the runs use one). */
  threads: number
  /** Each connection waits this long between an answer and its next request: a paced client, not the most it can take. */
  delayMs?: number
}

export interface LoadResult {
  requests: number
  seconds: number
  /** Milliseconds. */
  p50: number
  p99: number
  /** Connection errors and timeouts. */
  errors: number
  /** Answers whose status was not the one expected (wrk: not 2xx or 3xx). */
  unexpected: number
}

export type LoadTool = 'wrk' | 'autocannon'

/** wrk when the `wrk` command runs, else autocannon. */
export function availableTool (): LoadTool {
  const probe = spawnSync('wrk', ['--version'], { stdio: 'ignore' })
  return probe.error === undefined ? 'wrk' : 'autocannon'
}

const lua = (value: string): string => JSON.stringify(value) // a JSON string is a valid Lua string literal here

/** The request, and a summary line as JSON when the run is done (no Lua runs per response: wrk stays at full speed). */
function wrkScript (request: LoadRequest): string {
  const lines = [`wrk.method = ${lua(request.method)}`]
  for (const [name, value] of Object.entries(request.headers)) lines.push(`wrk.headers[${lua(name)}] = ${lua(value)}`)
  if (request.body !== undefined) {
    lines.push(`wrk.body = ${lua(request.body)}`)
    lines.push('wrk.headers["content-type"] = "application/json"')
  }
  if (request.delayMs !== undefined) lines.push(`delay = function () return ${Math.round(request.delayMs)} end`)
  lines.push(`done = function (summary, latency, requests)
  local e = summary.errors
  io.write(string.format('\\nBENCH {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout, latency:percentile(50), latency:percentile(99)))
end`)
  return lines.join('\n') + '\n'
}

async function runWrk (request: LoadRequest): Promise<LoadResult> {
  const dir = await mkdtemp(path.join(tmpdir(), 'eva-bench-wrk-'))
  try {
    const script = path.join(dir, 'request.lua')
    await writeFile(script, wrkScript(request))
    const args = ['-t', String(request.threads), '-c', String(request.connections), '-d', `${request.seconds}s`, '--timeout', '10s', '-s', script, request.url]
    const output = await new Promise<string>((resolve, reject) => {
      const child = spawn('wrk', args, { stdio: ['ignore', 'pipe', 'pipe'] })
      let text = ''
      child.stdout.on('data', (chunk: Buffer) => { text += chunk.toString() })
      child.stderr.on('data', (chunk: Buffer) => { text += chunk.toString() })
      child.on('error', reject)
      child.on('exit', (code) => { code === 0 ? resolve(text) : reject(new Error(`wrk exited ${String(code)}:\n${text}`)) })
    })
    const line = /^BENCH (\{.*\})$/m.exec(output)?.[1]
    if (line === undefined) throw new Error(`wrk printed no summary:\n${output}`)
    const s = JSON.parse(line) as Record<string, number>
    const n = (key: string): number => s[key] ?? 0
    return {
      requests: n('requests'),
      seconds: n('duration_us') / 1e6,
      p50: n('p50_us') / 1000,
      p99: n('p99_us') / 1000,
      errors: n('connect') + n('read') + n('write') + n('timeout'),
      unexpected: n('status')
    }
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

async function runAutocannon (request: LoadRequest, expect: number): Promise<LoadResult> {
  const result = await autocannon({
    url: request.url,
    method: request.method,
    headers: { ...request.headers, ...(request.body !== undefined ? { 'content-type': 'application/json' } : {}) },
    body: request.body,
    connections: request.connections,
    duration: request.seconds,
    pipelining: 1,
    ...(request.delayMs !== undefined ? { overallRate: Math.round(request.connections * 1000 / Math.max(1, request.delayMs)) } : {})
  })
  const requests = result['1xx'] + result['2xx'] + result['3xx'] + result['4xx'] + result['5xx']
  const matching = result.statusCodeStats?.[String(expect) as `${number}`]?.count ?? 0
  return { requests, seconds: result.duration, p50: result.latency.p50, p99: result.latency.p99, errors: result.errors, unexpected: requests - matching }
}

export async function runLoad (tool: LoadTool, request: LoadRequest, expect: number): Promise<LoadResult> {
  return tool === 'wrk' ? await runWrk(request) : await runAutocannon(request, expect)
}
