// Writes openapi/openapi.json from the route schemas (`npm run openapi`), or with --check fails when the committed
// file differs from what the code generates (CI's drift check). Built with the default configuration; the database
// is never contacted (postgres.js connects lazily).
import { readFile, writeFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { buildApp } from '../src/app.js'
import { loadConfig, type AppConfig } from '../src/config.js'

export const OPENAPI_FILE = fileURLToPath(new URL('../openapi/openapi.json', import.meta.url))

export async function generateOpenApi (): Promise<string> {
  const config = loadConfig({
    DATABASE_URL: 'postgres://openapi@127.0.0.1:1/openapi',
    JWT_SECRET: 'openapi-generation-only-0000000000000000',
    LOG_LEVEL: 'silent'
  }) as AppConfig
  const app = await buildApp(config)
  try {
    await app.ready()
    return JSON.stringify(app.swagger(), null, 2) + '\n'
  } finally {
    await app.close()
  }
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const generated = await generateOpenApi()
  if (process.argv.includes('--check')) {
    const committed = await readFile(OPENAPI_FILE, 'utf8').catch(() => '')
    if (committed !== generated) {
      process.stderr.write('openapi/openapi.json differs from the route schemas: run `npm run openapi` and commit it.\n')
      process.exit(1)
    }
    process.stdout.write('openapi/openapi.json is up to date.\n')
  } else {
    await writeFile(OPENAPI_FILE, generated)
    process.stdout.write(`wrote ${OPENAPI_FILE}\n`)
  }
}
