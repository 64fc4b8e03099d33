// `npm run db:migrate`: applies db/migrations to DATABASE_URL, for those starting from nothing. Run it as a role
// that may create roles and tables (a superuser); never against a database where another application owns the table.
import { createSql } from './client.js'
import { migrate } from './migrate.js'

const url = process.env.DATABASE_URL
if (url === undefined || !/^postgres(ql)?:\/\//.test(url)) {
  process.stderr.write('db:migrate: DATABASE_URL must be a postgres:// URL of a role that may create roles and tables\n')
  process.exit(1)
}
const sql = createSql(url, { max: 1 })
try {
  const files = await migrate(sql)
  process.stdout.write(`db:migrate: applied ${files.join(', ')}\n`)
} catch (error) {
  process.stderr.write(`db:migrate: ${error instanceof Error ? error.message.split('\n')[0] ?? '' : String(error)}\n`)
  process.exitCode = 1
} finally {
  await sql.end({ timeout: 2 })
}
