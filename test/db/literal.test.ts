// The read carries the caller's role and claims as SQL literals (src/db/heartbeat.ts: one simple-protocol message, no
// parameters). Claims come from a verified token, but a token's user_metadata is whatever the user typed at sign-up:
// every hostile string must reach the server exactly as it was, under either standard_conforming_strings.
import t from 'tap'
import { createSql } from '../../src/db/client.js'
import { readHeartbeat, roleSettings, sqlLiteral } from '../../src/db/heartbeat.js'
import { startTestDatabase } from '../helpers/database.js'

const db = await startTestDatabase()
t.teardown(db.close)

const HOSTILE = [
  "'); drop table public.eva_scheduler_heartbeat; --",
  "\\'; select 1; --",
  'back\\slash \\\\ and \\n not a newline',
  "E'\\x41' $$ $tag$ \" ` ;",
  'ünïcødé ✓ 🫀 \u2028 \u00a0',
  'line\nbreak\ttab\r',
  ''
]

t.test('sqlLiteral reads back as exactly the text, whatever standard_conforming_strings says', async (t) => {
  for (const setting of ['on', 'off']) {
    const conn = await db.admin.reserve()
    try {
      await conn.unsafe(`set standard_conforming_strings = ${setting}`)
      for (const [index, text] of HOSTILE.entries()) {
        const [row] = await conn.unsafe<Array<{ v: string }>>(`select ${sqlLiteral(text)} as v`)
        // The name carries the index, not the text: U+2028 in an assertion's name would break the TAP line.
        t.equal(row?.v, text, `standard_conforming_strings=${setting}: hostile string ${index}`)
      }
    } finally {
      await conn.unsafe('reset standard_conforming_strings')
      conn.release()
    }
  }
  t.throws(() => sqlLiteral('nul\0'), /NUL/, 'NUL, which no PostgreSQL text can hold, is refused before anything is sent')
})

t.test('the claims a transaction sees are the token\'s, byte for byte, and the role is the caller\'s', async (t) => {
  const claims = { role: 'authenticated', sub: HOSTILE[0], user_metadata: { name: HOSTILE[1], bio: HOSTILE[2], more: HOSTILE.slice(3) } }
  const conn = await db.admin.reserve()
  t.teardown(() => { conn.release() })
  const results = await conn.unsafe(`${roleSettings({ role: 'authenticated', claims })};
    select current_setting('request.jwt.claims') as claims, current_user as role`) as unknown as [unknown, Array<{ claims: string, role: string }>]
  t.same(JSON.parse(results[1][0]?.claims ?? 'null'), claims)
  t.equal(results[1][0]?.role, 'authenticated')
  const [after] = await conn<Array<{ role: string, claims: string | null }>>`select current_user as role, current_setting('request.jwt.claims', true) as claims`
  t.equal(after?.role, 'postgres', 'nothing outlives the message: the next statement on the connection is the login role again')
  t.notOk(after?.claims, 'and carries no claims')
})

t.test('a read with hostile claims reads the row, and leaves the table as it was', async (t) => {
  await db.admin`insert into public.eva_scheduler_heartbeat (id, instance_id) values (1, 'literal-test') on conflict (id) do nothing`
  const sql = createSql(db.apiUrl, { poolMax: 1, statementTimeoutMs: 5000, prepare: false })
  t.teardown(async () => { await sql.end({ timeout: 1 }) })
  const reading = await readHeartbeat(sql, { role: 'authenticated', claims: { role: 'authenticated', sub: HOSTILE[0], x: HOSTILE[1] } })
  t.equal(reading.row?.id, 1)
  const [count] = await db.admin<Array<{ n: number }>>`select count(*)::int as n from public.eva_scheduler_heartbeat`
  t.equal(count?.n, 1)
})
