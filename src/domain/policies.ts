// The table's two RLS policies, declared once. Routes ask `mayPerform`, nothing else; /readyz compares this
// declaration with pg_policies so that a change in the database cannot silently leave the API behind.

export type TableAction = 'select' | 'update'
export type PolicyCommand = 'SELECT' | 'INSERT' | 'UPDATE' | 'DELETE' | 'ALL'

export interface PolicyMirror {
  name: string
  command: PolicyCommand
  roles: readonly string[]
  using: string | null
  withCheck: string | null
}

export const TABLE_NAME = 'eva_scheduler_heartbeat'

export const HEARTBEAT_POLICIES: readonly PolicyMirror[] = Object.freeze([
  { name: 'eva_scheduler_heartbeat_authenticated_select', command: 'SELECT', roles: ['authenticated'], using: 'true', withCheck: null },
  { name: 'eva_scheduler_heartbeat_service_role_all', command: 'ALL', roles: ['service_role'], using: 'true', withCheck: 'true' }
])

/** The roles the API can switch into: every role some policy names. */
export const API_ROLES = ['authenticated', 'service_role'] as const
export type ApiRole = typeof API_ROLES[number]

const COMMAND_FOR: Record<TableAction, PolicyCommand> = { select: 'SELECT', update: 'UPDATE' }

/** Whether a policy lets `role` do `action`: the policy's command is the action's or ALL, and it names the role. */
export function mayPerform (role: string, action: TableAction, policies: readonly PolicyMirror[] = HEARTBEAT_POLICIES): boolean {
  return policies.some((policy) =>
    (policy.command === 'ALL' || policy.command === COMMAND_FOR[action]) &&
    (policy.roles.includes(role) || policy.roles.includes('public')))
}

export function isApiRole (role: string): role is ApiRole {
  return (API_ROLES as readonly string[]).includes(role)
}

/** One row of pg_policies for the table, as the catalog gives it. */
export interface CatalogPolicy {
  policyname: string
  permissive: string
  roles: string[]
  cmd: string
  qual: string | null
  with_check: string | null
}

/** Differences between the declared mirror and the catalog, one human sentence each; empty when they agree. */
export function comparePolicies (catalog: readonly CatalogPolicy[], mirror: readonly PolicyMirror[] = HEARTBEAT_POLICIES): string[] {
  const drift: string[] = []
  const normalise = (expr: string | null): string | null => expr === null ? null : expr.replace(/^\((.*)\)$/s, '$1').trim()
  for (const expected of mirror) {
    const actual = catalog.find((row) => row.policyname === expected.name)
    if (actual === undefined) {
      drift.push(`policy ${expected.name} is missing`)
      continue
    }
    if (actual.cmd !== expected.command) drift.push(`policy ${expected.name} is for ${actual.cmd}, expected ${expected.command}`)
    if (actual.permissive !== 'PERMISSIVE') drift.push(`policy ${expected.name} is ${actual.permissive}, expected PERMISSIVE`)
    const roles = [...actual.roles].sort().join(',')
    if (roles !== [...expected.roles].sort().join(',')) drift.push(`policy ${expected.name} applies to {${roles}}, expected {${expected.roles.join(',')}}`)
    if (normalise(actual.qual) !== expected.using) drift.push(`policy ${expected.name} uses (${String(actual.qual)}), expected (${String(expected.using)})`)
    if (normalise(actual.with_check) !== expected.withCheck) drift.push(`policy ${expected.name} checks (${String(actual.with_check)}), expected (${String(expected.withCheck)})`)
  }
  for (const extra of catalog) {
    if (!mirror.some((policy) => policy.name === extra.policyname)) drift.push(`policy ${extra.policyname} is not in the API's mirror`)
  }
  return drift
}
