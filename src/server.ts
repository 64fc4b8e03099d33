// The process: config → (embedded database) → buildApp → listen → graceful close. Kept thin on purpose.
import closeWithGrace from 'close-with-grace'
import postgres from 'postgres'
import { ConfigError, loadConfig, type AppConfig, type Config } from './config.js'
import { checkSchema } from './db/catalog.js'
import { startEmbeddedDatabase, type EmbeddedDatabase } from './db/embedded.js'
import { DemoScheduler } from './demo/scheduler.js'
import { loadOrCreateDevSecret } from './dev-secret.js'

function fail (message: string): never {
  process.stderr.write(`eva-heartbeat-api: ${message}\n`)
  process.exit(1)
}

/** With DATABASE_URL the table belongs to another application: check it, never create or alter it. */
async function checkExternalDatabase (config: Config & { databaseUrl: string }): Promise<void> {
  const sql = postgres(config.databaseUrl, { max: 1, connect_timeout: 10, onnotice: () => {} })
  try {
    const report = await checkSchema(sql)
    const problems = [...report.table, ...report.policies]
    if (problems.length > 0) fail(`DATABASE_URL: the table is not as expected: ${problems.join('; ')}`)
  } catch (error) {
    fail(`DATABASE_URL: cannot check the table: ${error instanceof Error ? error.message : String(error)}`)
  } finally {
    await sql.end({ timeout: 1 })
  }
}

async function main (): Promise<void> {
  let config: Config
  try {
    config = loadConfig()
  } catch (error) {
    if (error instanceof ConfigError) fail(error.message)
    throw error
  }

  const startedAt = performance.now()
  // The app's modules (Fastify, the schemas, swagger) load while the database starts or is checked: each takes a
  // good part of a second, and they need different processes' CPU.
  const appModule = import('./app.js')
  appModule.catch(() => {}) // awaited below; this only keeps a failure from counting as unhandled meanwhile
  let embedded: EmbeddedDatabase | undefined
  let appConfig: AppConfig
  if (config.databaseUrl === undefined) {
    embedded = await startEmbeddedDatabase(config.dataDir)
    const secret = config.jwt.secret ?? await loadOrCreateDevSecret(config.dataDir)
    appConfig = { ...config, databaseUrl: embedded.apiUrl, jwt: { ...config.jwt, secret } }
  } else {
    appConfig = { ...config, databaseUrl: config.databaseUrl }
    await checkExternalDatabase(appConfig)
  }

  const { buildApp } = await appModule
  const app = await buildApp(appConfig)
  const demo = embedded !== undefined && config.demo.enabled
    ? new DemoScheduler(embedded.admin, { intervalSeconds: config.demo.intervalSeconds, onError: (err) => app.log.warn({ err }, 'demo scheduler poll failed') })
    : undefined

  closeWithGrace({ delay: 10_000 }, async ({ signal, err }) => {
    if (err !== undefined) app.log.error({ err }, 'shutting down after an error')
    else app.log.info({ signal }, 'shutting down')
    await demo?.stop()
    await app.close()
    await embedded?.stop()
  })

  const address = await app.listen({ host: config.host, port: config.port })
  demo?.start()
  const readyMs = Math.round(performance.now() - startedAt)
  app.log.info({ address, readyMs, embedded: embedded !== undefined }, 'ready')
  if (embedded !== undefined) printBanner(address, embedded, config, readyMs)
}

function printBanner (address: string, embedded: EmbeddedDatabase, config: Config, readyMs: number): void {
  const demo = config.demo.enabled ? `, demo scheduler every ${config.demo.intervalSeconds} s` : ''
  process.stdout.write([
    '',
    `eva-heartbeat-api is listening on ${address} (ready in ${readyMs} ms)`,
    `  database: embedded PostgreSQL on 127.0.0.1:${embedded.server.port}, data in ${embedded.server.dataDir}${demo}`,
    '  try it:',
    `    curl -s ${address}/heartbeat/liveness`,
    '    TOKEN=$(npm run -s token -- --role authenticated)',
    `    curl -s -H "Authorization: Bearer $TOKEN" ${address}/heartbeat`,
    `  API docs: ${address}/docs`,
    ''
  ].join('\n') + '\n')
}

await main()
