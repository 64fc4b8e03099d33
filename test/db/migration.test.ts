// The migration against a real PostgreSQL server: the table it creates is the seed document's table, read from
// pg_catalog (information_schema hides tables from roles without privileges), with the roles, grants and RLS
// policies Supabase has. The expected values are written here from the seed, not imported from src/domain, so
// this file also catches a wrong src/domain/table.ts.
import t from 'tap'
import postgres, { type Sql } from 'postgres'
import { checkSchema, readCatalogTable } from '../../src/db/catalog.js'
import { grantApiLogin } from '../../src/embedded/database.js'
import { migrate } from '../../src/db/migrate.js'
import { compareTable } from '../../src/domain/table.js'
import { startTestDatabase } from '../helpers/database.js'
import { rowText, writeRow } from '../helpers/app.js'

const TABLE = 'public.eva_scheduler_heartbeat'

/** The seed's 13 columns, in order: name, format_type, NOT NULL, pg_get_expr of the default. */
const SEED_COLUMNS = [
  { name: 'id', type: 'integer', not_null: true, default: '1' },
  { name: 'instance_id', type: 'text', not_null: true, default: null },
  { name: 'started_at', type: 'timestamp with time zone', not_null: true, default: 'now()' },
  { name: 'last_poll_at', type: 'timestamp with time zone', not_null: false, default: null },
  { name: 'next_poll_at', type: 'timestamp with time zone', not_null: false, default: null },
  { name: 'poll_count', type: 'integer', not_null: true, default: '0' },
  { name: 'dispatch_count', type: 'integer', not_null: true, default: '0' },
  { name: 'error_count', type: 'integer', not_null: true, default: '0' },
  { name: 'circuit_breaker_state', type: 'text', not_null: false, default: "'CLOSED'::text" },
  { name: 'paused_reason', type: 'text', not_null: false, default: null },
  { name: 'status', type: 'text', not_null: true, default: "'running'::text" },
  { name: 'metadata', type: 'jsonb', not_null: false, default: "'{}'::jsonb" },
  { name: 'updated_at', type: 'timestamp with time zone', not_null: true, default: 'now()' }
]

/** The seed's three constraints, by name, as pg_get_constraintdef prints them. */
const SEED_CONSTRAINTS = [
  { name: 'eva_scheduler_heartbeat_id_check', definition: 'CHECK ((id = 1))' },
  { name: 'eva_scheduler_heartbeat_pkey', definition: 'PRIMARY KEY (id)' },
  {
    name: 'eva_scheduler_heartbeat_status_check',
    definition: "CHECK ((status = ANY (ARRAY['running'::text, 'stopping'::text, 'stopped'::text])))"
  }
]

const SEED_INDEXES = [
  { name: 'eva_scheduler_heartbeat_pkey', definition: 'CREATE UNIQUE INDEX eva_scheduler_heartbeat_pkey ON public.eva_scheduler_heartbeat USING btree (id)' }
]

/** The seed's two policies as pg_policies reports them. */
const SEED_POLICIES = [
  { policyname: 'eva_scheduler_heartbeat_authenticated_select', permissive: 'PERMISSIVE', roles: ['authenticated'], cmd: 'SELECT', qual: 'true', with_check: null },
  { policyname: 'eva_scheduler_heartbeat_service_role_all', permissive: 'PERMISSIVE', roles: ['service_role'], cmd: 'ALL', qual: 'true', with_check: 'true' }
]

const TABLE_PRIVILEGES = ['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER']

interface RoleRow { rolname: string, rolcanlogin: boolean, rolinherit: boolean, rolbypassrls: boolean, rolsuper: boolean }

async function columns (sql: Sql): Promise<unknown[]> {
  return [...await sql`
    select a.attname as name, pg_catalog.format_type(a.atttypid, a.atttypmod) as type, a.attnotnull as not_null,
           pg_catalog.pg_get_expr(d.adbin, d.adrelid) as default
    from pg_catalog.pg_attribute a
    left join pg_catalog.pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
    where a.attrelid = ${TABLE}::regclass and a.attnum > 0 and not a.attisdropped
    order by a.attnum`]
}

async function constraints (sql: Sql): Promise<unknown[]> {
  // contype 'n' (NOT NULL as a constraint, PostgreSQL 18) is nullability, checked with the columns.
  return [...await sql`
    select conname as name, pg_catalog.pg_get_constraintdef(oid) as definition
    from pg_catalog.pg_constraint where conrelid = ${TABLE}::regclass and contype <> 'n' order by conname`]
}

async function indexes (sql: Sql): Promise<unknown[]> {
  return [...await sql`
    select c.relname as name, pg_catalog.pg_get_indexdef(i.indexrelid) as definition
    from pg_catalog.pg_index i join pg_catalog.pg_class c on c.oid = i.indexrelid
    where i.indrelid = ${TABLE}::regclass order by c.relname`]
}

async function policies (sql: Sql): Promise<unknown[]> {
  return [...await sql`
    select policyname, permissive, roles::text[] as roles, cmd, qual, with_check
    from pg_catalog.pg_policies where schemaname = 'public' and tablename = 'eva_scheduler_heartbeat'
    order by policyname`]
}

async function rowSecurity (sql: Sql): Promise<{ relrowsecurity: boolean, relforcerowsecurity: boolean } | undefined> {
  const [row] = await sql<Array<{ relrowsecurity: boolean, relforcerowsecurity: boolean }>>`
    select relrowsecurity, relforcerowsecurity from pg_catalog.pg_class where oid = ${TABLE}::regclass`
  return row
}

async function roles (sql: Sql): Promise<RoleRow[]> {
  return [...await sql<RoleRow[]>`
    select rolname, rolcanlogin, rolinherit, rolbypassrls, rolsuper from pg_catalog.pg_roles
    where rolname in ('anon', 'authenticated', 'service_role', 'authenticator') order by rolname`]
}

async function memberships (sql: Sql, member: string): Promise<string[]> {
  const rows = await sql<Array<{ rolname: string }>>`
    select r.rolname from pg_catalog.pg_auth_members m
    join pg_catalog.pg_roles r on r.oid = m.roleid
    join pg_catalog.pg_roles u on u.oid = m.member
    where u.rolname = ${member} order by r.rolname`
  return rows.map((row) => row.rolname)
}

async function privileges (sql: Sql, role: string): Promise<Record<string, boolean>> {
  const result: Record<string, boolean> = {}
  for (const privilege of TABLE_PRIVILEGES) {
    const [row] = await sql<Array<{ allowed: boolean }>>`select has_table_privilege(${role}, ${TABLE}, ${privilege}) as allowed`
    result[privilege] = row?.allowed ?? false
  }
  return result
}

/** Everything the migration decides, as one value to compare before and after running it again. */
async function snapshot (sql: Sql): Promise<unknown> {
  return {
    columns: await columns(sql),
    constraints: await constraints(sql),
    indexes: await indexes(sql),
    rowSecurity: await rowSecurity(sql),
    policies: await policies(sql),
    roles: await roles(sql),
    authenticator: await memberships(sql, 'authenticator'),
    grants: {
      anon: await privileges(sql, 'anon'),
      authenticated: await privileges(sql, 'authenticated'),
      service_role: await privileges(sql, 'service_role'),
      authenticator: await privileges(sql, 'authenticator')
    }
  }
}

const db = await startTestDatabase({ migrate: false })
t.teardown(db.close)

t.test('a fresh database has no table until the migration runs', async (t) => {
  const [row] = await db.admin<Array<{ table: string | null }>>`select to_regclass(${TABLE})::text as table`
  t.equal(row?.table, null)
  t.same(compareTable(await readCatalogTable(db.admin)), ['table public.eva_scheduler_heartbeat does not exist'])
  t.same(await migrate(db.admin), ['001_eva_scheduler_heartbeat.sql'], 'the one migration file ran')
  // The role it created logs in with the cluster's password, as the embedded start sets it after migrating.
  await grantApiLogin(db.admin, db.server)
})

t.test('the table is the seed\'s, column by column', async (t) => {
  t.same(await columns(db.admin), SEED_COLUMNS)
})

t.test('the seed\'s three constraints and its one index', async (t) => {
  t.same(await constraints(db.admin), SEED_CONSTRAINTS)
  t.same(await indexes(db.admin), SEED_INDEXES)
})

t.test('row level security is on, with the seed\'s two policies', async (t) => {
  t.same(await rowSecurity(db.admin), { relrowsecurity: true, relforcerowsecurity: false })
  t.same(await policies(db.admin), SEED_POLICIES)
})

t.test('the roles are Supabase\'s', async (t) => {
  t.same(await roles(db.admin), [
    { rolname: 'anon', rolcanlogin: false, rolinherit: false, rolbypassrls: false, rolsuper: false },
    { rolname: 'authenticated', rolcanlogin: false, rolinherit: false, rolbypassrls: false, rolsuper: false },
    { rolname: 'authenticator', rolcanlogin: true, rolinherit: false, rolbypassrls: false, rolsuper: false },
    { rolname: 'service_role', rolcanlogin: false, rolinherit: false, rolbypassrls: true, rolsuper: false }
  ])
  t.same(await memberships(db.admin, 'authenticator'), ['authenticated', 'service_role'],
    'the login role switches into authenticated and service_role')
})

t.test('grants: the API roles have the table, the login role has nothing of its own', async (t) => {
  const all = Object.fromEntries(TABLE_PRIVILEGES.map((p) => [p, true]))
  t.same(await privileges(db.admin, 'anon'), all)
  t.same(await privileges(db.admin, 'authenticated'), all)
  t.same(await privileges(db.admin, 'service_role'), all)
  t.same(await privileges(db.admin, 'authenticator'), Object.fromEntries(TABLE_PRIVILEGES.map((p) => [p, false])),
    'NOINHERIT: no rights until it sets a role')
  for (const role of ['anon', 'authenticated', 'service_role']) {
    const [row] = await db.admin<Array<{ usage: boolean }>>`select has_schema_privilege(${role}, 'public', 'USAGE') as usage`
    t.equal(row?.usage, true, `${role} may use schema public`)
  }
})

t.test('the API\'s own comparison agrees, as superuser and as the login role', async (t) => {
  t.same(compareTable(await readCatalogTable(db.admin)), [])
  t.same(await checkSchema(db.admin), { table: [], policies: [] })
  const api = postgres(db.apiUrl, { max: 1, onnotice: () => {} })
  t.teardown(async () => { await api.end({ timeout: 1 }) })
  t.same(await checkSchema(api), { table: [], policies: [] }, 'pg_catalog shows the table to a role without rights')
})

t.test('running the migration again changes nothing and keeps the row', async (t) => {
  await writeRow(db.admin, { instance_id: 'scheduler-0badc0de', paused_reason: null, metadata: { keep: [1, 2, 3] } })
  const row = await rowText(db.admin)
  t.not(row, null)
  const before = await snapshot(db.admin)
  t.same(await migrate(db.admin), ['001_eva_scheduler_heartbeat.sql'])
  t.same(await migrate(db.admin), ['001_eva_scheduler_heartbeat.sql'])
  t.same(await snapshot(db.admin), before)
  t.equal(await rowText(db.admin), row, 'the row is byte for byte the same')
})

t.test('two processes migrating at the same time do not trip over each other', async (t) => {
  const second = postgres(db.server.url, { max: 1, onnotice: () => {} })
  t.teardown(async () => { await second.end({ timeout: 1 }) })
  const before = await snapshot(db.admin)
  const results = await Promise.allSettled([migrate(db.admin), migrate(second), migrate(db.admin)])
  t.same(results.map((r) => r.status), ['fulfilled', 'fulfilled', 'fulfilled'])
  t.same(await snapshot(db.admin), before)
})

t.test('RLS really limits the login role\'s roles', async (t) => {
  await writeRow(db.admin, { instance_id: 'scheduler-12345678', status: 'running' })
  const row = await rowText(db.admin)
  const api = postgres(db.apiUrl, { max: 1, onnotice: () => {} })
  t.teardown(async () => { await api.end({ timeout: 1 }) })

  await t.rejects(api`select id from public.eva_scheduler_heartbeat`, { code: '42501' },
    'without a role the login role may not read the table')

  const authenticated = await api.begin(async (tx) => {
    await tx`set local role authenticated`
    const seen = await tx<Array<{ instance_id: string }>>`select instance_id from public.eva_scheduler_heartbeat`
    const updated = await tx`update public.eva_scheduler_heartbeat set paused_reason = 'hijacked' where id = 1`
    const deleted = await tx`delete from public.eva_scheduler_heartbeat where id = 1`
    return { seen: seen.map((r) => r.instance_id), updated: updated.count, deleted: deleted.count }
  })
  t.same(authenticated, { seen: ['scheduler-12345678'], updated: 0, deleted: 0 }, 'authenticated reads, and writes nothing')
  t.equal(await rowText(db.admin), row, 'the row is untouched')

  // The login role is not granted anon (the API never uses it): the superuser switches into it.
  const anon = await db.admin.begin(async (tx) => {
    await tx`set local role anon`
    const seen = await tx`select id from public.eva_scheduler_heartbeat`
    const updated = await tx`update public.eva_scheduler_heartbeat set paused_reason = 'hijacked' where id = 1`
    return { seen: seen.count, updated: updated.count }
  })
  t.same(anon, { seen: 0, updated: 0 }, 'anon sees and changes nothing')
  t.equal(await rowText(db.admin), row, 'the row is untouched')

  const service = await api.begin(async (tx) => {
    await tx`set local role service_role`
    const updated = await tx`update public.eva_scheduler_heartbeat set paused_reason = 'deploy', status = 'stopping' where id = 1`
    return updated.count
  })
  t.equal(service, 1, 'service_role updates the row')
  const [after] = await db.admin<Array<{ status: string, paused_reason: string | null }>>`
    select status, paused_reason from public.eva_scheduler_heartbeat where id = 1`
  t.same(after, { status: 'stopping', paused_reason: 'deploy' })

  await t.rejects(api.begin(async (tx) => {
    await tx`set local role service_role`
    await tx`update public.eva_scheduler_heartbeat set status = 'paused' where id = 1`
  }), { code: '23514', constraint_name: 'eva_scheduler_heartbeat_status_check' }, 'the status CHECK holds for service_role too')
})

t.test('roles that already exist, with other attributes, do not stop the migration', async (t) => {
  const other = await startTestDatabase({ migrate: false })
  t.teardown(other.close)
  await other.admin.unsafe(`
    create role anon login inherit;
    create role authenticated login inherit;
    create role service_role nobypassrls;
    create role authenticator nologin inherit;`)
  const existing = await roles(other.admin)
  t.same(await migrate(other.admin), ['001_eva_scheduler_heartbeat.sql'])
  t.same(await roles(other.admin), existing, 'roles the migration did not create keep their attributes')
  t.same(await memberships(other.admin, 'authenticator'), ['authenticated', 'service_role'])
  t.same(await columns(other.admin), SEED_COLUMNS)
  t.same(await policies(other.admin), SEED_POLICIES)
  t.same(await checkSchema(other.admin), { table: [], policies: [] })
  t.same(await migrate(other.admin), ['001_eva_scheduler_heartbeat.sql'], 'and again')
})
