import { spawnSync } from 'node:child_process'
import t from 'tap'
import { startTestDatabase } from '../helpers/database.js'

const run = (env: Record<string, string | undefined>) =>
  spawnSync(process.execPath, ['--import', 'tsx', 'src/db/migrate-cli.ts'], { env: { ...process.env, ...env }, encoding: 'utf8' })

t.test('npm run db:migrate creates the table on an empty database, and again is harmless', async (t) => {
  const db = await startTestDatabase({ migrate: false })
  t.teardown(db.close)
  for (const attempt of [1, 2]) {
    const result = run({ DATABASE_URL: db.server.url })
    t.equal(result.status, 0, `attempt ${attempt} exits 0`)
    t.match(result.stdout, /applied 001_eva_scheduler_heartbeat\.sql/)
  }
  const [row] = await db.admin<Array<{ rls: boolean }>>`select relrowsecurity as rls from pg_class where relname = 'eva_scheduler_heartbeat'`
  t.equal(row?.rls, true)
})

t.test('without a usable DATABASE_URL it says so in one line and exits 1', async (t) => {
  const missing = run({ DATABASE_URL: undefined })
  t.equal(missing.status, 1)
  t.equal(missing.stderr.trim().split('\n').length, 1)
  t.match(missing.stderr, /DATABASE_URL must be a postgres:\/\/ URL/)
  const refused = run({ DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none' })
  t.equal(refused.status, 1)
  t.equal(refused.stderr.trim().split('\n').length, 1)
})
