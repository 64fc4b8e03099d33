// The public reader's read is one message with its role and claims written into the text as literals
// (src/db/heartbeat.ts); a token's claims never are: the server logs a failed statement's text, and a token's claims
// carry a user's email and whatever user_metadata they typed.
import postgres from 'postgres'
import t from 'tap'
import { readHeartbeat, roleSettings, sqlLiteral, type DbIdentity } from '../../src/db/heartbeat.js'
import { startTestDatabase } from '../helpers/database.js'

const db = await startTestDatabase()
t.teardown(db.close)
await db.admin`insert into public.eva_scheduler_heartbeat (id, instance_id) values (1, 'literal-test') on conflict (id) do nothing`

const HOSTILE = [
  "'); drop table public.eva_scheduler_heartbeat; --",
  "\\'; select 1; --",
  'back\\slash \\\\ and \\n not a newline',
  "E'\\x41' $$ $tag$ \" ` ;",
  ''
]

t.test('sqlLiteral reads back as exactly the text, whatever standard_conforming_strings says', async (t) => {
  for (const setting of ['on', 'off']) {
    const conn = await db.admin.reserve()
    try {
      await conn.unsafe(`set standard_conforming_strings = ${setting}`)
      for (const [index, text] of HOSTILE.entries()) {
        const [row] = await conn.unsafe<Array<{ v: string }>>(`select ${sqlLiteral(text)} as v`)
        t.equal(row?.v, text, `standard_conforming_strings=${setting}: hostile string ${index}`)
      }
    } finally {
      await conn.unsafe('reset standard_conforming_strings')
      conn.release()
    }
  }
  // Outside printable ASCII a client encoding such as GBK could eat a backslash: refused before anything is sent.
  for (const text of ['ünïcødé', '丁\\\'', 'line\nbreak', 'nul\0', '\u2028']) {
    t.throws(() => sqlLiteral(text), /printable ASCII/)
  }
})

t.test('the public reader\'s one message: the server sees its role and claims exactly, and nothing outlives it', async (t) => {
  const reader: DbIdentity = { role: 'authenticated', claims: { role: 'authenticated', sub: 'eva-heartbeat-api' }, constantClaims: true }
  const conn = await db.admin.reserve()
  t.teardown(() => { conn.release() })
  const results = await conn.unsafe(`${roleSettings(reader)};
    select current_setting('request.jwt.claims') as claims, current_user as role`) as unknown as [unknown, Array<{ claims: string, role: string }>]
  t.same(JSON.parse(results[1][0]?.claims ?? 'null'), reader.claims)
  t.equal(results[1][0]?.role, 'authenticated')
  const [after] = await conn<Array<{ role: string, claims: string | null }>>`select current_user as role, current_setting('request.jwt.claims', true) as claims`
  t.equal(after?.role, 'postgres', 'the next statement on the connection is the login role again')
  t.notOk(after?.claims, 'and carries no claims')
})

t.test('a token\'s claims never appear in a statement\'s text; the public reader\'s go in one message', async (t) => {
  const sent: string[] = []
  const sql = postgres(db.apiUrl, { max: 1, fetch_types: false, onnotice: () => {}, debug: (_c, query) => { sent.push(query) } })
  t.teardown(async () => { await sql.end({ timeout: 1 }) })
  const marker = 'user-typed-8f3a'
  const user: DbIdentity = { role: 'authenticated', claims: { role: 'authenticated', sub: marker, email: `${marker}@example.com`, user_metadata: { bio: HOSTILE[0] } } }
  const reading = await readHeartbeat(sql, user)
  t.equal(reading.row?.id, 1, 'a token\'s reader reads the row')
  t.ok(sent.length >= 3, `in a transaction of its own (${sent.length} statements)`)
  t.notOk(sent.some((text) => text.includes(marker)), 'and no statement\'s text holds its claims')
  t.throws(() => roleSettings(user), /never written/, 'roleSettings refuses a token\'s claims outright')

  sent.length = 0
  const publicReading = await readHeartbeat(sql, { role: 'authenticated', claims: { role: 'authenticated', sub: 'eva-heartbeat-api' }, constantClaims: true })
  t.equal(publicReading.row?.id, 1, 'the public reader reads the row')
  t.equal(sent.length, 1, 'in one message')
  t.match(sent[0], /set_config\('role', E'authenticated', true\).*;\s*select/s)
})
