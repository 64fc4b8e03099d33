#!/usr/bin/env node
// eva-heartbeat: the ops command line. It talks to the HTTP API, never to the database.
import { parseArgs } from 'node:util'
import { SignJWT } from 'jose'
import { loadConfig } from './config.js'
import { readDevSecret } from './dev-secret.js'

const USAGE = `usage: eva-heartbeat token --role authenticated|service_role [--ttl SECONDS] [--sub SUBJECT]`

async function token (args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: { role: { type: 'string' }, ttl: { type: 'string', default: '3600' }, sub: { type: 'string' } }
  })
  const role = values.role
  if (role === undefined || role === '') throw new Error('--role is required (authenticated or service_role)')
  const ttl = Number(values.ttl)
  if (!Number.isInteger(ttl) || ttl <= 0) throw new Error('--ttl must be a whole number of seconds above 0')
  const config = loadConfig()
  const secret = config.jwt.secret ?? await readDevSecret(config.dataDir)
  if (secret === undefined) throw new Error(`no JWT_SECRET and no development secret in ${config.dataDir}: run npm start once first`)
  let jwt = new SignJWT({ role, ...(config.jwt.audience !== undefined ? { aud: config.jwt.audience } : {}) })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setIssuedAt()
    .setExpirationTime(`${ttl}s`)
    .setSubject(values.sub ?? `cli:${role}`)
  if (config.jwt.issuer !== undefined) jwt = jwt.setIssuer(config.jwt.issuer)
  process.stdout.write(await jwt.sign(new TextEncoder().encode(secret)) + '\n')
}

async function main (argv: string[]): Promise<void> {
  const [command, ...rest] = argv
  switch (command) {
    case 'token': return await token(rest)
    default: throw new Error(USAGE)
  }
}

main(process.argv.slice(2)).catch((error: unknown) => {
  process.stderr.write(`eva-heartbeat: ${error instanceof Error ? error.message : String(error)}\n`)
  process.exitCode = 2
})
