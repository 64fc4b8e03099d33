// The table as the seed document describes it, and the comparison with what pg_catalog reports.

export interface ExpectedColumn { name: string, type: string, notNull: boolean, default: string | null }

export const HEARTBEAT_COLUMNS: readonly ExpectedColumn[] = Object.freeze([
  { name: 'id', type: 'integer', notNull: true, default: '1' },
  { name: 'instance_id', type: 'text', notNull: true, default: null },
  { name: 'started_at', type: 'timestamp with time zone', notNull: true, default: 'now()' },
  { name: 'last_poll_at', type: 'timestamp with time zone', notNull: false, default: null },
  { name: 'next_poll_at', type: 'timestamp with time zone', notNull: false, default: null },
  { name: 'poll_count', type: 'integer', notNull: true, default: '0' },
  { name: 'dispatch_count', type: 'integer', notNull: true, default: '0' },
  { name: 'error_count', type: 'integer', notNull: true, default: '0' },
  { name: 'circuit_breaker_state', type: 'text', notNull: false, default: "'CLOSED'::text" },
  { name: 'paused_reason', type: 'text', notNull: false, default: null },
  { name: 'status', type: 'text', notNull: true, default: "'running'::text" },
  { name: 'metadata', type: 'jsonb', notNull: false, default: "'{}'::jsonb" },
  { name: 'updated_at', type: 'timestamp with time zone', notNull: true, default: 'now()' }
])

export const HEARTBEAT_CONSTRAINTS: Readonly<Record<string, string>> = Object.freeze({
  eva_scheduler_heartbeat_pkey: 'PRIMARY KEY (id)',
  eva_scheduler_heartbeat_id_check: 'CHECK ((id = 1))',
  eva_scheduler_heartbeat_status_check: "CHECK ((status = ANY (ARRAY['running'::text, 'stopping'::text, 'stopped'::text])))"
})

export interface CatalogColumn { name: string, type: string, not_null: boolean, default: string | null }
export interface CatalogTable { exists: boolean, rowSecurity: boolean, columns: CatalogColumn[], constraints: Array<{ name: string, definition: string }> }

/**
 * What the API needs of the table: every column it reads with the seed's type (a missing column or another type
 * breaks it), RLS on, the status CHECK it relies on. Defaults and extra columns are reported too: they mean the
 * table is not the one the seed describes.
 */
export function compareTable (actual: CatalogTable): string[] {
  if (!actual.exists) return ['table public.eva_scheduler_heartbeat does not exist']
  const problems: string[] = []
  for (const expected of HEARTBEAT_COLUMNS) {
    const column = actual.columns.find((c) => c.name === expected.name)
    if (column === undefined) {
      problems.push(`column ${expected.name} is missing`)
      continue
    }
    if (column.type !== expected.type) problems.push(`column ${expected.name} is ${column.type}, expected ${expected.type}`)
    if (column.not_null !== expected.notNull) problems.push(`column ${expected.name} is ${column.not_null ? 'NOT NULL' : 'nullable'}, expected ${expected.notNull ? 'NOT NULL' : 'nullable'}`)
    if (column.default !== expected.default) problems.push(`column ${expected.name} defaults to ${String(column.default)}, expected ${String(expected.default)}`)
  }
  for (const column of actual.columns) {
    if (!HEARTBEAT_COLUMNS.some((c) => c.name === column.name)) problems.push(`column ${column.name} is not in the seed`)
  }
  for (const [name, definition] of Object.entries(HEARTBEAT_CONSTRAINTS)) {
    const constraint = actual.constraints.find((c) => c.name === name)
    if (constraint === undefined) problems.push(`constraint ${name} is missing`)
    else if (constraint.definition !== definition) problems.push(`constraint ${name} is ${constraint.definition}, expected ${definition}`)
  }
  if (!actual.rowSecurity) problems.push('row level security is not enabled')
  return problems
}
