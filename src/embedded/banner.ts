// What the embedded default prints once it listens: where it is, that its data is a demo, and how to try it.
import path from 'node:path'
import { SUPERUSER } from './os-user.js'

export interface BannerFacts {
  address: string
  readyMs: number
  /** The embedded server's port, its data directory and its password file. */
  server: { port: number, dataDir: string, passwordFile: string }
  /** DATA_DIR as configured. */
  dataDir: string
  demo: { enabled: boolean, intervalSeconds: number }
}

/** A word for a POSIX shell: as it is when it needs no quotes, else single-quoted. */
export function shellWord (text: string): string {
  return /^[\w@%+=:,./-]+$/.test(text) ? text : `'${text.replaceAll("'", "'\\''")}'`
}

export function bannerText ({ address, readyMs, server, dataDir, demo }: BannerFacts): string {
  const scheduler = demo.enabled ? `, demo scheduler every ${demo.intervalSeconds} s` : ''
  // The token command must find the same development secret: name DATA_DIR when it is not the default.
  const env = dataDir === '.data' ? '' : `DATA_DIR=${shellWord(path.resolve(dataDir))} `
  return [
    '',
    `eva-heartbeat-api is listening on ${address} (ready in ${readyMs} ms)`,
    `  database: embedded PostgreSQL on 127.0.0.1:${server.port}, data in ${server.dataDir}${scheduler}`,
    `  its logins: user ${SUPERUSER} (superuser) or authenticator, password in ${server.passwordFile}`,
    '  DEMO DATA: the row is the embedded database\'s, not your scheduler\'s, and every verdict says "demo";',
    '    set DATABASE_URL to monitor a real scheduler',
    '  try it:',
    `    curl -s ${address}/heartbeat/liveness`,
    `    TOKEN=$(${env}npm run -s token -- --role authenticated)`,
    `    curl -s -H "Authorization: Bearer $TOKEN" ${address}/heartbeat`,
    `  API docs: ${address}/docs`,
    ''
  ].join('\n') + '\n'
}
