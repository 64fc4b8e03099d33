// The one read (src/db/heartbeat.ts): a transaction whose role and claims travel as parameters, never in a
// statement's text (the server logs a failed statement's text, and a token's claims carry a user's email and whatever
// user_metadata they typed), whatever the claims hold; nothing it sets outlives it.
import postgres from 'postgres'
import t from 'tap'
import { readHeartbeat, type DbIdentity } from '../../src/db/heartbeat.js'
import { startTestDatabase } from '../helpers/database.js'

const db = await startTestDatabase()
t.teardown(db.close)
await db.admin`insert into public.eva_scheduler_heartbeat (id, instance_id) values (1, 'read-test') on conflict (id) do nothing`

const HOSTILE = "'); drop table public.eva_scheduler_heartbeat; -- \\' $$ ünïcødé 丁\\'"

for (const prepare of [true, false]) {
  t.test(`prepare ${String(prepare)}: the claims are parameters, read back exactly, and nothing outlives the transaction`, async (t) => {
    const sent: string[] = []
    const sql = postgres(db.apiUrl, { max: 1, prepare, fetch_types: false, onnotice: () => {}, debug: (_c, query) => { sent.push(query) } })
    t.teardown(async () => { await sql.end({ timeout: 1 }) })
    const marker = 'user-typed-8f3a'
    const user: DbIdentity = { role: 'authenticated', claims: { role: 'authenticated', sub: marker, email: `${marker}@example.com`, user_metadata: { bio: HOSTILE } } }
    const reading = await readHeartbeat(sql, user, { statementTimeoutMs: 2000 })
    t.equal(reading.row?.instance_id, 'read-test', 'the row is read')
    t.same(sent.map((text) => text.trim().split(/\s/)[0]?.toLowerCase()), ['begin', 'select', 'select', 'commit'], 'in one transaction: begin, the settings, the select, commit')
    t.notOk(sent.some((text) => text.includes(marker) || text.includes('drop table')), 'no statement\'s text holds the claims')

    const claims = await sql.begin(async (tx) => {
      await tx`select set_config('request.jwt.claims', ${JSON.stringify(user.claims)}, true)`
      const [row] = await tx<Array<{ claims: string }>>`select current_setting('request.jwt.claims') as claims`
      return row?.claims
    })
    t.same(JSON.parse(claims ?? 'null'), user.claims, 'the server sees the claims exactly as sent')
    const [after] = await sql<Array<{ role: string, claims: string | null }>>`select current_user as role, current_setting('request.jwt.claims', true) as claims`
    t.equal(after?.role, 'authenticator', 'the next statement on the connection is the login role again')
    t.notOk(after?.claims, 'and carries no claims')
  })
}
