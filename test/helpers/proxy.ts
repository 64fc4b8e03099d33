// A real reverse proxy in front of the app (nginx or HAProxy from Debian's packages), started by the test on a
// loopback port with a config written to a temporary directory, and a client that connects from a chosen loopback
// address (127.0.0.2, 127.0.0.3, …: Linux routes all of 127/8 to lo), so that several clients sit behind one proxy.
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { startDaemon } from './tools.js'

interface Teardown { teardown: (fn: () => unknown) => void }

function tempDir (t: Teardown, prefix: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), prefix))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  return dir
}

/**
 * nginx in the foreground, one process, forwarding to `upstream` and appending the peer to X-Forwarded-For. `cache`:
 * a shared cache too (it keeps what Cache-Control and Vary let it), its X-Cache-Status saying HIT when it answered.
 */
export async function startNginx (t: Teardown, nginx: string, upstream: string, options: { cache?: boolean } = {}): Promise<string> {
  const dir = tempDir(t, 'eva-nginx-')
  for (const sub of ['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi', 'cache']) mkdirSync(path.join(dir, sub))
  const cache = options.cache === true
  const { base } = await startDaemon(t, nginx, (port) => {
    writeFileSync(path.join(dir, 'nginx.conf'), `
daemon off;
master_process off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 128; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  ${cache ? `proxy_cache_path ${dir}/cache keys_zone=shared:1m;` : ''}
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass ${upstream};
      proxy_http_version 1.1;
      ${cache ? 'proxy_cache shared; add_header X-Cache-Status $upstream_cache_status always;' : 'proxy_buffering off;'}
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    }
  }
}
`)
    return ['-p', dir, '-c', path.join(dir, 'nginx.conf'), '-e', path.join(dir, 'error.log')]
  }, '/livez')
  return base
}

/** HAProxy in the foreground, `option forwardfor` (which adds an X-Forwarded-For header naming the peer). */
export async function startHaproxy (t: Teardown, haproxy: string, upstream: URL): Promise<string> {
  const dir = tempDir(t, 'eva-haproxy-')
  const { base } = await startDaemon(t, haproxy, (port) => {
    writeFileSync(path.join(dir, 'haproxy.cfg'), `
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend api
  bind 127.0.0.1:${port}
  option forwardfor
  default_backend app
backend app
  server app ${upstream.hostname}:${upstream.port}
`)
    return ['-db', '-f', path.join(dir, 'haproxy.cfg')]
  }, '/livez')
  return base
}

export interface Answer { status: number, body: string, json: () => Record<string, unknown> }

/** One request on a fresh connection from `from` (a loopback address). */
export async function requestFrom (from: string, url: string, options: { method?: string, headers?: Record<string, string>, body?: string } = {}): Promise<Answer> {
  return await new Promise((resolve, reject) => {
    const request = http.request(url, { method: options.method ?? 'GET', headers: options.headers, localAddress: from, agent: false }, (response) => {
      let body = ''
      response.setEncoding('utf8')
      response.on('data', (chunk: string) => { body += chunk })
      response.on('end', () => { resolve({ status: response.statusCode ?? 0, body, json: () => JSON.parse(body) as Record<string, unknown> }) })
      response.on('error', reject)
    })
    request.on('error', reject)
    request.end(options.body)
  })
}
