// Reads the table's shape and policies from pg_catalog, which every role may read: the API's login role has no
// rights of its own (NOINHERIT), and information_schema would hide a table it has no privilege on.
import type { Sql, TransactionSql } from 'postgres'
import { comparePolicies, type CatalogPolicy } from '../domain/policies.js'
import { whyReadOnly, type Writability } from '../domain/read-only.js'
import { compareTable, type CatalogColumn, type CatalogTable } from '../domain/table.js'
import { transaction, type LocalSettings } from './transaction.js'

export async function readCatalogTable (sql: Sql | TransactionSql): Promise<CatalogTable> {
  const [table] = await sql<Array<{ oid: number, relrowsecurity: boolean }>>`
    select c.oid, c.relrowsecurity from pg_catalog.pg_class c
    join pg_catalog.pg_namespace n on n.oid = c.relnamespace
    where n.nspname = 'public' and c.relname = 'eva_scheduler_heartbeat' and c.relkind in ('r', 'p')`
  if (table === undefined) return { exists: false, rowSecurity: false, columns: [], constraints: [] }
  const columns = await sql<CatalogColumn[]>`
    select a.attname as name, pg_catalog.format_type(a.atttypid, a.atttypmod) as type, a.attnotnull as not_null,
           pg_catalog.pg_get_expr(d.adbin, d.adrelid) as default
    from pg_catalog.pg_attribute a
    left join pg_catalog.pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
    where a.attrelid = ${table.oid} and a.attnum > 0 and not a.attisdropped
    order by a.attnum`
  const constraints = await sql<Array<{ name: string, definition: string }>>`
    select conname as name, pg_catalog.pg_get_constraintdef(oid) as definition
    from pg_catalog.pg_constraint where conrelid = ${table.oid} order by conname`
  return { exists: true, rowSecurity: table.relrowsecurity, columns: [...columns], constraints: [...constraints] }
}

/** `roles` as JSON: the API's pool does not fetch array types (fetch_types: false, see client.ts). */
export async function readCatalogPolicies (sql: Sql | TransactionSql): Promise<CatalogPolicy[]> {
  const rows = await sql<CatalogPolicy[]>`
    select policyname, permissive, to_json(roles::text[]) as roles, cmd, qual, with_check
    from pg_catalog.pg_policies where schemaname = 'public' and tablename = 'eva_scheduler_heartbeat'
    order by policyname`
  return [...rows]
}

/** In the API's own transaction, as its login role: a role-level default_transaction_read_only shows here too. */
export async function readWritability (sql: Sql | TransactionSql): Promise<Writability> {
  const [row] = await sql<Array<{ in_recovery: boolean, read_only: boolean }>>`
    select pg_catalog.pg_is_in_recovery() as in_recovery, pg_catalog.current_setting('transaction_read_only') = 'on' as read_only`
  return { inRecovery: row?.in_recovery === true, transactionReadOnly: row?.read_only === true }
}

export interface SchemaReport {
  table: string[]
  policies: string[]
  /** Why writes are impossible (a hot standby, read-only transactions); undefined when the database takes them. */
  readOnly: string | undefined
}

/**
 * The table's shape against the seed and its policies against the API's mirror (empty lists when all agree), and
 * whether the database takes writes. One transaction, one statement at a time: never statements in parallel on one
 * connection (see transaction.ts). Give it a statement timeout: pg_get_expr and pg_policies take ACCESS SHARE on the
 * table, and wait behind any lock on it.
 */
export async function checkSchema (sql: Sql, settings: LocalSettings = {}): Promise<SchemaReport> {
  return await transaction(sql, async (tx) => {
    const table = await readCatalogTable(tx)
    const policies = table.exists ? comparePolicies(await readCatalogPolicies(tx)) : []
    return { table: compareTable(table), policies, readOnly: whyReadOnly(await readWritability(tx)) }
  }, settings)
}
