// A cheap version stamp of the table's RLS policies: the xmin of each pg_policy row of the table, which every
// CREATE, ALTER and DROP POLICY changes. Reading it costs an index scan of pg_policy, where comparing the policies
// themselves (pg_policies, pg_get_expr) costs about as much as the heartbeat read; so a read carries the stamp, and
// only a new stamp sends the store to compare the policies with the mirror again.
import type { Sql } from 'postgres'
import { comparePolicies, type CatalogPolicy } from '../domain/policies.js'
import { transaction, type LocalSettings } from './transaction.js'

/** The stamp as an SQL expression, to embed in a statement so that it is read in that statement's snapshot. */
export const POLICY_VERSION = `(select coalesce(string_agg(p.oid::text || ':' || p.xmin::text, ',' order by p.oid), '')
    from pg_catalog.pg_policy p where p.polrelid = 'public.eva_scheduler_heartbeat'::regclass)`

export interface PolicyCheck {
  version: string
  /** Whether the policies this version stands for are the mirror's. */
  asMirrored: boolean
}

/** The stamp and whether the policies it stands for are the mirror's, read together in one statement. */
export async function readPolicyVersion (sql: Sql, settings: LocalSettings = {}): Promise<PolicyCheck> {
  // In a transaction of its own, as every statement of the API's pool (see transaction.ts), with a statement timeout:
  // pg_policies takes ACCESS SHARE on the table, so it waits behind a lock on it.
  const [row] = await transaction(sql, async (tx) => await tx<Array<{ version: string, policies: CatalogPolicy[] }>>`
    select ${tx.unsafe(POLICY_VERSION)} as version,
      (select coalesce(json_agg(p order by p.policyname), '[]')
       from (select policyname, permissive, roles::text[] as roles, cmd, qual, with_check
             from pg_catalog.pg_policies where schemaname = 'public' and tablename = 'eva_scheduler_heartbeat') p) as policies`, settings)
  if (row === undefined) throw new Error('the policy query returned no row')
  return { version: row.version, asMirrored: comparePolicies(row.policies).length === 0 }
}
